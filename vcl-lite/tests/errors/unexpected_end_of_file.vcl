sub vcl_recv {
    if (req.url ~ "^/static/") {
        set req.http.X-Static =
