sub vcl_recv {
    set req.http.n = std.integer(req.http.n, "zero");
}
