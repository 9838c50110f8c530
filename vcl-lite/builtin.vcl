# The bodies of Varnish 7's split built-in subroutines, as far as vcl-lite
# can express them: `call vcl_builtin_recv;` in a policy's vcl_recv runs
# this file's vcl_recv (and likewise for each hook). As in Varnish, none
# ends with a `return` of its own: the calling subroutine goes on unless
# one of the checks below returns. What differs from Varnish is listed in
# README.md ("Calling the built-in subroutines"). lacquer runs this
# vcl_recv, where a policy's own falls through to it, as Rust
# (src/policy/vcl/builtin_recv.rs, tested against this text): change both.
vcl 4.1;

sub vcl_recv {
    if (req.http.host ~ "[A-Z]") {
        set req.http.host = std.tolower(req.http.host);
    }
    if (req.method == "PRI") {
        # HTTP/2's connection preface sent as a request.
        return (synth(405));
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "PUT" &&
        req.method != "POST" && req.method != "TRACE" && req.method != "OPTIONS" &&
        req.method != "DELETE" && req.method != "PATCH") {
        # Unknown methods (PURGE and BAN included, unless the policy
        # handles them) go to the backend as they are.
        return (pipe);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    if (req.http.Authorization) {
        return (pass);
    }
    if (req.http.Cookie) {
        return (pass);
    }
}

sub vcl_hash {
    # lacquer's key (as default.vcl): without a Host header, the empty
    # string (Varnish uses server.ip).
    hash_data(req.url);
    hash_data(req.http.host);
}

sub vcl_backend_response {
    if (beresp.status != 206 && beresp.status != 416) {
        unset beresp.http.Content-Range;
    }
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.ttl <= 0s ||
        beresp.http.Set-Cookie ||
        beresp.http.Surrogate-Control ~ "(?i)no-store" ||
        (!beresp.http.Surrogate-Control &&
         beresp.http.Cache-Control ~ "(?i)no-cache|no-store|private") ||
        beresp.http.Vary == "*") {
        # Varnish's param.uncacheable_ttl default.
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;
        return (deliver);
    }
}

sub vcl_purge {
    return (synth(200, "Purged"));
}

sub vcl_synth {
    set resp.http.Content-Type = "text/html; charset=utf-8";
    set resp.http.Retry-After = "5";
    set resp.body = {"<!DOCTYPE html>
<html>
  <head>
    <title>"} + resp.status + " " + resp.reason + {"</title>
  </head>
  <body>
    <h1>Error "} + resp.status + " " + resp.reason + {"</h1>
    <p>"} + resp.reason + {"</p>
    <hr>
    <p>lacquer</p>
  </body>
</html>
"};
}

sub vcl_backend_error {
    set beresp.http.Content-Type = "text/html; charset=utf-8";
    set beresp.http.Retry-After = "5";
    set beresp.body = {"<!DOCTYPE html>
<html>
  <head>
    <title>"} + beresp.status + " " + beresp.reason + {"</title>
  </head>
  <body>
    <h1>Error "} + beresp.status + " " + beresp.reason + {"</h1>
    <p>"} + beresp.reason + {"</p>
    <hr>
    <p>lacquer</p>
  </body>
</html>
"};
}

# vcl_builtin_hit, _miss, _pass, _purge, _deliver, _backend_fetch: empty in
# Varnish 7 too (vcl_backend_fetch's `unset bereq.body` for GET: lacquer
# sends no body with a GET fetch).
