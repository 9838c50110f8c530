sub vcl_recv {
    if (req.request == "PURGE") {
        return (purge);
    }
}
