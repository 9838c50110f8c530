sub vcl_deliver {
    if (resp.status >= 500) {
        return (pass);
    }
}
