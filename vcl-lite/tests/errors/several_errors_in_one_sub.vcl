sub vcl_recv {
    set req.http.X-Device = "mobile";
    set req.uri = "/";
    if (req.http.Cookie) {
        set req.ttl = "10s";
        return (pass);
    }
    unset req.url;
    return (lookup);
}
