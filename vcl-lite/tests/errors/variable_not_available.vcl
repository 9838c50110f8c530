sub vcl_recv {
    if (beresp.ttl > 1h) {
        return (pass);
    }
}
