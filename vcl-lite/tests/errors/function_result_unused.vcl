sub vcl_recv {
    std.tolower(req.url);
}
