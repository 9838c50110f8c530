sub vcl_recv {
    /* strip tracking parameters
    set req.url = regsuball(req.url, "[?&]utm_[a-z]+=[^&]*", "");
}
