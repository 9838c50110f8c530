sub vcl_backend_fetch {
    set req.url = "/backend" + bereq.url;
}
