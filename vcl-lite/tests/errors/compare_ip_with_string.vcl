sub vcl_recv {
    if (client.ip == req.http.X-Real-IP) {
        return (pass);
    }
}
