sub vcl_recv {
    call strip_cookies;
}

sub vcl_backend_response {
    call strip_cookies;
}

sub strip_cookies {
    unset req.http.Cookie;
}
