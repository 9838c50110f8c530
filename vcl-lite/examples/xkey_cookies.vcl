# A shop behind lacquer with Varnish's usual vmods: only the cookies the
# application reads reach it (and the cache key), tracking Set-Cookie
# lines never leave, and the application invalidates by surrogate key
# (FOSHttpCache's xkey handler).
vcl 4.1;

import cookie;
import header;
import xkey;

acl invalidators {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.http.xkey-purge || req.http.xkey-softpurge) {
        if (client.ip !~ invalidators) {
            return (synth(405, "Not allowed"));
        }
        if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        } else {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        }
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    if (req.http.Cookie) {
        cookie.parse(req.http.Cookie);
        # A logged-in visitor's pages are their own.
        if (cookie.isset("session")) {
            return (pass);
        }
        cookie.keep("currency,lang");
        set req.http.Cookie = cookie.get_string();
        if (req.http.Cookie == "") {
            unset req.http.Cookie;
        }
    }
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    hash_data(req.http.host);
    # The kept cookies change the page: one copy per currency and language.
    hash_data(cookie.get("currency"));
    hash_data(cookie.get("lang"));
    return (lookup);
}

sub vcl_backend_response {
    # Tracking cookies never reach clients; an answer left without any
    # Set-Cookie is cacheable.
    header.remove(beresp.http.Set-Cookie, "^(_ga|_gid|_fbp)=");
}

sub vcl_deliver {
    # The keys are for the cache, not for clients (vmod xkey leaves the
    # header; FOSHttpCache unsets it here too).
    unset resp.http.xkey;
}
