# TTLs by path, overriding what the application says.
vcl 4.1;

sub vcl_backend_response {
    if (bereq.url ~ "^/assets/") {
        # Fingerprinted file names: they never change.
        set beresp.ttl = 1y;
    } elseif (bereq.url ~ "^/api/") {
        set beresp.ttl = 5s;
        set beresp.grace = 30s;
    } elsif (bereq.url ~ "^/news/") {
        set beresp.ttl = 2m;
    } else if (beresp.http.Cache-Control !~ "(s-)?max-age") {
        # The application said nothing: a short default, not forever.
        set beresp.ttl = 10m;
    }
    # Never store errors for long, and let the application override with
    # X-Lacquer-TTL: 30s.
    if (beresp.status >= 500) {
        set beresp.ttl = 0s;
        return (pass(10s));
    }
    set beresp.ttl = std.duration(beresp.http.X-Lacquer-TTL, beresp.ttl);
    unset beresp.http.X-Lacquer-TTL;
    return (deliver);
}

sub vcl_deliver {
    set resp.http.X-Cache-Hits = obj.hits;
}
