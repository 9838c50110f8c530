vcl 4.1;

sub vcl_recv {
    if (req.url ~ "^/admin") {
        return (pass)
    }
}

acl purgers {
    "localhost"
    "10.0.0.0"/8;
}

sub vcl_deliver {
    set resp.http.X-Cache = "HIT";
}

sub vcl_backend_response {
    if (beresp.status == 200 {
        set beresp.ttl = 1h;
    }
}
