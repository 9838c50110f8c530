sub vcl_recv {
    req.http.X-Forwarded-Proto = "https";
}
