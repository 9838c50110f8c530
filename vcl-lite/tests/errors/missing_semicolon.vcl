sub vcl_recv {
    set req.http.X-Policy = "static"
    return (hash);
}
