sub vcl_recv {
    if (req.http.X-Version < "2") {
        return (pass);
    }
}
