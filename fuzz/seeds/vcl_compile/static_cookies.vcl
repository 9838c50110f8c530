# Static files do not depend on cookies: drop them both ways, so they are
# cached once for everyone.
vcl 4.1;

sub vcl_recv {
    if (req.url ~ "(?i)\.(css|js|png|jpe?g|gif|webp|svg|ico|woff2?)(\?.*)?$") {
        unset req.http.Cookie;
        unset req.http.Authorization;
        return (hash);
    }
    # Analytics cookies never matter to the application.
    if (req.http.Cookie) {
        set req.http.Cookie = regsuball(req.http.Cookie, "(^|;\s*)(_ga[^=]*|_gid|_fbp)=[^;]*", "");
        set req.http.Cookie = regsub(req.http.Cookie, "^;\s*", "");
        if (req.http.Cookie ~ "^\s*$") {
            unset req.http.Cookie;
        }
    }
}

sub vcl_backend_response {
    if (bereq.url ~ "(?i)\.(css|js|png|jpe?g|gif|webp|svg|ico|woff2?)(\?.*)?$") {
        unset beresp.http.Set-Cookie;
    }
}
