sub vcl_backend_fech {
    return (fetch);
}
