sub vcl_recv {
    return (lookup_cache);
}
