sub vcl_recv {
    call normalize;
}

sub normalize {
    unset req.http.Cookie;
}

sub normalize {
    unset req.http.Authorization;
}
