sub vcl_backend_response {
    set beresp.ttl = 1.5;
}
