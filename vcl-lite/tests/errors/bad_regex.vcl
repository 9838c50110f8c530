sub vcl_recv {
    if (req.url ~ "^/(images|css/") {
        return (hash);
    }
}
