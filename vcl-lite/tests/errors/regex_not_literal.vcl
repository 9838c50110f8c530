sub vcl_recv {
    if (req.url ~ req.http.X-Pattern) {
        return (pass);
    }
}
