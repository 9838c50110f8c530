sub vcl_recv {
    set req.http.x = std.log("hello");
}
