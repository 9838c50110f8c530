sub vcl_backend_response {
    set beresp.grace = 3600;
}
