vcl 4.1;

import std;
import directors from "/usr/lib/varnish/vmods/libvmod_directors.so";
import bodyaccess;
import cookie;

sub vcl_recv {
    set req.http.x += "y";
}
