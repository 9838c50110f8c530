sub vcl_recv {
    set req.http.n = std.integer(req.http.n, s = req.http.m, fallback = 0);
}
