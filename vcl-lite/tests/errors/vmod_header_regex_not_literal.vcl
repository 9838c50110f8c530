vcl 4.1;

import header;

sub vcl_deliver {
    header.remove(resp.http.Set-Cookie, req.http.x-drop);
}
