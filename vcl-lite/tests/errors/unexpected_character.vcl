sub vcl_recv {
    if (req.http.Cookie & req.http.Authorization) {
        return (pass);
    }
}
