sub vcl_recv {
    set req.http.b = std.real(s = "1.5", integer = 2);
}
