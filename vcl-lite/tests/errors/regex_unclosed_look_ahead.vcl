sub vcl_recv {
    # WordPress: drop every wordpress_* cookie but the test cookie.
    set req.http.Cookie = regsuball(req.http.Cookie, "wordpress_(?!test_cookie[a-zA-Z0-9_]+", "");
}
