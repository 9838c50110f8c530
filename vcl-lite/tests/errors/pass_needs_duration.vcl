sub vcl_backend_response {
    if (beresp.http.Set-Cookie) {
        return (pass(10s, 1h));
    }
}
