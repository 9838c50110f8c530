vcl 4.1;

sub vcl_recv {
    call normalise_host;
}

sub vcl_deliver {
    call cleanup_headers;
}

sub normalize_host {
    set req.http.host = std.tolower(req.http.host);
}
