# Grace tuning: serve stale content for up to an hour while one background
# fetch refreshes it, and keep objects a day for conditional revalidation.
vcl 4.1;

sub vcl_recv {
    # Clients that explicitly want fresh content accept little staleness.
    if (req.http.Cache-Control ~ "no-cache") {
        set req.grace = 10s;
    }
}

sub vcl_backend_response {
    set beresp.grace = 1h;
    set beresp.keep = 1d;
    if (beresp.status >= 500 && bereq.retries < 1) {
        return (retry);
    }
}

sub vcl_backend_error {
    if (bereq.retries < 2) {
        return (retry);
    }
    set beresp.http.Content-Type = "text/plain";
    synthetic("backend unavailable");
    return (deliver);
}

sub vcl_hit {
    if (obj.ttl >= 0s) {
        return (deliver);
    }
    if (obj.ttl + obj.grace > 0s) {
        # Stale but within grace: deliver it, a refresh runs in the background.
        return (deliver);
    }
}

sub vcl_deliver {
    set resp.http.X-Age = obj.age;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
