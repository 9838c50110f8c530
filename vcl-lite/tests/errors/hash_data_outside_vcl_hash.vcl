sub vcl_recv {
    hash_data(req.http.Cookie);
}
