sub vcl_recv {
    set req.http.host = std.lower(req.http.host);
}
