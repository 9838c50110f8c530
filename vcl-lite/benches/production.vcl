vcl 4.1;

# A realistic production policy, about 300 lines, written for the benches:
# the kind of VCL a shop in front of a PHP application runs (cookie
# stripping, tracking parameters, purge and tag bans from the application,
# device and language variants, grace while the backend is sick, ESI, gzip,
# custom error pages, debug headers). It compiles on Varnish 7.1 and on
# vcl-lite alike, so the load bench runs it on both.
#
# Used by `cargo bench -p vcl-lite --bench eval` (time per request in the
# interpreter) and by the load bench's `lacquer-policy` / `varnish-policy`
# servers (`cargo bench --bench load -- --only lacquer,lacquer-policy`), which
# replace the backend's port with the bench origin's.

import std;

backend app {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
    .max_connections = 512;
}

acl purgers {
    "127.0.0.1";
    "::1";
    "10.0.0.0"/8;
    "192.168.0.0"/16;
}

acl office {
    "203.0.113.0"/24;
    "198.51.100.7";
}

sub vcl_recv {
    # Health check for the load balancer in front: never reaches the app.
    if (req.url == "/lb-health") {
        return (synth(200, "OK"));
    }

    # One host name per site; the port a proxy in front added is noise.
    if (req.http.Host) {
        set req.http.Host = regsub(std.tolower(req.http.Host), ":[0-9]+$", "");
        if (req.http.Host ~ "^www\.") {
            set req.http.X-Canonical-Host = regsub(req.http.Host, "^www\.", "");
        }
    }

    # Variants the pages really differ by (before PURGE, so a purge hashes
    # like the page it names).
    if (req.http.User-Agent ~ "(?i)(ipad|tablet|kindle|playbook)") {
        set req.http.X-Device = "tablet";
    } else if (req.http.User-Agent ~ "(?i)(mobi|iphone|android|blackberry|opera mini)") {
        set req.http.X-Device = "mobile";
    } else {
        set req.http.X-Device = "desktop";
    }
    if (req.http.Accept-Language ~ "^de") {
        set req.http.X-Lang = "de";
    } else if (req.http.Accept-Language ~ "^fr") {
        set req.http.X-Lang = "fr";
    } else {
        set req.http.X-Lang = "en";
    }

    if (req.http.X-Forwarded-Proto !~ "^https?$") {
        set req.http.X-Forwarded-Proto = "http";
    }

    # The application's invalidation requests.
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        return (purge);
    }
    if (req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        if (req.http.X-Cache-Tags) {
            ban("obj.http.X-Cache-Tags ~ " + req.http.X-Cache-Tags);
        } else if (req.http.X-Ban-Url) {
            ban("obj.http.X-Url ~ " + req.http.X-Ban-Url + " && obj.http.X-Host == " + req.http.Host);
        } else {
            return (synth(400, "X-Cache-Tags or X-Ban-Url required"));
        }
        return (synth(200, "Banned"));
    }

    if (req.method != "GET" &&
        req.method != "HEAD" &&
        req.method != "PUT" &&
        req.method != "POST" &&
        req.method != "PATCH" &&
        req.method != "OPTIONS" &&
        req.method != "DELETE") {
        return (pipe);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }

    # Maintenance: the office still sees the site.
    if (req.http.X-Maintenance && client.ip !~ office) {
        return (synth(503, "Down for maintenance"));
    }

    # Tracking parameters make every link unique; the app ignores them.
    if (req.url ~ "(\?|&)(utm_[a-z]+|gclid|fbclid|mc_cid|mc_eid|_ga|yclid)=") {
        set req.url = regsuball(req.url, "(utm_[a-z]+|gclid|fbclid|mc_cid|mc_eid|_ga|yclid)=[^&]*&?", "");
        set req.url = regsub(req.url, "[?&]+$", "");
    }
    set req.url = std.querysort(req.url);
    # Fragments never reach the server anyway.
    if (req.url ~ "#") {
        set req.url = regsub(req.url, "#.*$", "");
    }

    # Pages that must never be cached.
    if (req.url ~ "^/(admin|account|checkout|cart|login|logout|api/session)(/|$|\?)") {
        return (pass);
    }
    if (req.url ~ "[?&](nocache|preview)=") {
        return (pass);
    }
    if (req.http.Authorization) {
        return (pass);
    }

    # Static files: cookies are noise, and they are the same on every device.
    if (req.url ~ "^[^?]*\.(7z|avi|bmp|bz2|css|csv|doc|docx|eot|flac|flv|gif|gz|ico|jpeg|jpg|js|less|mka|mkv|mov|mp3|mp4|mpeg|mpg|odt|ogg|ogm|opus|otf|pdf|png|ppt|pptx|rar|rtf|svg|svgz|swf|tar|tbz|tgz|ttf|txt|txz|wav|webm|webp|woff|woff2|xls|xlsx|xml|xz|zip)(\?.*)?$") {
        unset req.http.Cookie;
        set req.http.X-Static = "1";
    }

    # Cookies the application never reads: analytics, consent banners.
    if (req.http.Cookie) {
        set req.http.Cookie = ";" + req.http.Cookie;
        set req.http.Cookie = regsuball(req.http.Cookie, "; +", ";");
        set req.http.Cookie = regsuball(req.http.Cookie, ";(__utm[a-z]+|_ga[_a-zA-Z0-9]*|_gid|_gat|_fbp|_hj[a-zA-Z]+|has_js|cookie_consent)=[^;]*", "");
        set req.http.Cookie = regsub(req.http.Cookie, "^;\s*", "");
        if (req.http.Cookie ~ "^\s*$") {
            unset req.http.Cookie;
        }
    }
    # A session cookie means a personal page.
    if (req.http.Cookie ~ "(^|;\s*)(PHPSESSID|SESS[a-z0-9]+|wordpress_logged_in_[a-z0-9]+)=") {
        return (pass);
    }
    # Whatever cookies are left do not change the page.
    unset req.http.Cookie;

    # Only the encodings the cache stores.
    if (req.http.Accept-Encoding) {
        if (req.http.Accept-Encoding ~ "gzip") {
            set req.http.Accept-Encoding = "gzip";
        } else {
            unset req.http.Accept-Encoding;
        }
    }

    # Tell the application the cache assembles ESI.
    set req.http.Surrogate-Capability = "cache=ESI/1.0";

    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.Host) {
        hash_data(req.http.Host);
    } else {
        hash_data(server.ip);
    }
    if (!req.http.X-Static) {
        hash_data(req.http.X-Device);
        hash_data(req.http.X-Lang);
    }
    if (req.http.X-Forwarded-Proto) {
        hash_data(req.http.X-Forwarded-Proto);
    }
    return (lookup);
}

sub vcl_hit {
    if (obj.ttl >= 0s) {
        return (deliver);
    }
    # Stale: a little while when the backend is well, much longer when not.
    if (std.healthy(app) && obj.ttl + 15s > 0s) {
        return (deliver);
    }
    if (!std.healthy(app) && obj.ttl + obj.grace > 0s) {
        return (deliver);
    }
    return (pass);
}

sub vcl_miss {
    return (fetch);
}

sub vcl_pass {
    return (fetch);
}

sub vcl_purge {
    return (synth(200, "Purged"));
}

sub vcl_backend_fetch {
    unset bereq.http.X-Static;
    if (bereq.method == "GET") {
        unset bereq.http.Content-Length;
    }
    return (fetch);
}

sub vcl_backend_response {
    # For the ban lurker: bans on these test the object, not the request.
    set beresp.http.X-Url = bereq.url;
    set beresp.http.X-Host = bereq.http.Host;

    if (beresp.http.Surrogate-Control ~ "ESI/1.0") {
        unset beresp.http.Surrogate-Control;
        set beresp.do_esi = true;
    }
    if (beresp.http.Content-Type ~ "^(text/|application/(json|javascript|xml)|image/svg)") {
        set beresp.do_gzip = true;
    }

    # Errors: keep serving what we had, and never cache them long.
    if (beresp.status >= 500 && bereq.is_bgfetch) {
        return (abandon);
    }
    if (beresp.status >= 500) {
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (beresp.status == 404) {
        set beresp.ttl = 60s;
    }
    if (beresp.status == 301 || beresp.status == 302) {
        set beresp.ttl = 10m;
    }

    # Static files are fingerprinted by the build: a day is safe, cookies never.
    if (bereq.url ~ "^[^?]*\.(css|js|gif|jpe?g|png|svg|webp|woff2?|ico)(\?.*)?$") {
        unset beresp.http.Set-Cookie;
        if (beresp.ttl < 1d) {
            set beresp.ttl = 1d;
        }
    }

    if (beresp.http.Set-Cookie) {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    if (beresp.http.Cache-Control ~ "(private|no-store)") {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    if (beresp.ttl <= 0s) {
        set beresp.ttl = 120s;
    }

    # Serve stale for six hours when the backend is down, and keep the
    # validators a day so refreshes are 304s.
    set beresp.grace = 6h;
    set beresp.keep = 1d;
    return (deliver);
}

sub vcl_backend_error {
    set beresp.http.Content-Type = "text/html; charset=utf-8";
    set beresp.http.Retry-After = "5";
    set beresp.body = {"<!DOCTYPE html>
<html><head><title>Temporarily unavailable</title></head>
<body><h1>We will be right back</h1><p>The shop is being updated.</p></body></html>
"};
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    if (client.ip ~ office) {
        set resp.http.X-Cache-Hits = obj.hits;
        set resp.http.X-Cache-Url = req.url;
    } else {
        unset resp.http.X-Cache-Tags;
    }
    unset resp.http.X-Url;
    unset resp.http.X-Host;
    unset resp.http.X-Powered-By;
    unset resp.http.Server;
    unset resp.http.X-Varnish;
    unset resp.http.Via;
    return (deliver);
}

sub vcl_synth {
    if (resp.status == 200 && req.url == "/lb-health") {
        set resp.http.Content-Type = "text/plain";
        set resp.body = "OK";
        return (deliver);
    }
    set resp.http.Content-Type = "text/html; charset=utf-8";
    set resp.http.Cache-Control = "no-store";
    set resp.body = "<!DOCTYPE html><html><head><title>" + resp.status + " " + resp.reason +
        "</title></head><body><h1>" + resp.status + " " + resp.reason + "</h1></body></html>";
    return (deliver);
}
