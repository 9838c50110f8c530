sub vcl_deliver {
    std.cache_req_body(1MB);
}
