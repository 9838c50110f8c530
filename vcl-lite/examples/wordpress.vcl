# WordPress: cache pages for visitors, never for logged-in users.
# The cookie clean-up uses a look-ahead (PCRE), which vcl-lite runs on its
# bounded backtracking engine; every other pattern here runs in linear time.
acl purgers {
    "localhost";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        return (purge);
    }
    if (req.url ~ "^/wp-(admin|login)" || req.http.Cookie ~ "wordpress_logged_in_") {
        return (pass);
    }
    # Drop WordPress's own cookies but the test cookie, and tidy what is left.
    set req.http.Cookie = regsuball(req.http.Cookie,
        "(^|;\s*)(wordpress_(?!test_cookie)[a-zA-Z0-9_]+|wp-postpass_[a-zA-Z0-9_]+)=[^;]*", "");
    set req.http.Cookie = regsub(req.http.Cookie, "^;\s*", "");
    if (req.http.Cookie ~ "^\s*$") {
        unset req.http.Cookie;
    }
}
