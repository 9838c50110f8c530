sub vcl_deliver {
    call vcl_builtin_recv;
}
