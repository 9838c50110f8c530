sub vcl_recv {
    return (hash);
}

sub normalize {
    set req.http.host = std.tolower(req.http.host);
}
