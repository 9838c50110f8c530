sub vcl_recv {
    if (req.method = "GET") {
        return (hash);
    }
}
