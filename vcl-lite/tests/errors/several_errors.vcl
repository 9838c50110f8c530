vcl 4.1;

sub vcl_recv {
    if (req.uri ~ "^/admin") {
        return (pass);
    }
}

sub vcl_backend_response {
    set beresp.ttl = 120;
}

sub vcl_deliver {
    set resp.http.X-Age = obj.ag;
}
