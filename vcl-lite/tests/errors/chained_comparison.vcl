sub vcl_backend_response {
    if (200 <= beresp.status < 300) {
        set beresp.ttl = 1h;
    }
}
