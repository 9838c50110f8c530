vcl 4.1;

import std;

sub vcl_recv {
    cookie.parse(req.http.Cookie);
}
