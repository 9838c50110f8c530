sub vcl_recv {
    call normalise;
}

sub normalize {
    set req.http.host = std.tolower(req.http.host);
}
