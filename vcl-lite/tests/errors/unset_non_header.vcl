sub vcl_backend_response {
    unset beresp.ttl;
}
