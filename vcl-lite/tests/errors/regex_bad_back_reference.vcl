sub vcl_recv {
    if (req.url ~ "^/(\w+)/\2$") {
        return (pass);
    }
}
