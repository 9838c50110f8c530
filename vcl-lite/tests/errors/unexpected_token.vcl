sub vcl_recv {
    if (req.url ~ "^/admin") {
        return (pass);
    } else (req.url ~ "^/api") {
        return (pass);
    }
}
