sub vcl_recv {
    return pass;
}
