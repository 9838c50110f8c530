vcl 4.1;
import std;
# Patterns answered without the regex engine (vcl-lite's quick runs):
# a text and a run of one set, anchored or not.
sub vcl_recv {
    set req.http.Host = regsub(std.tolower(req.http.Host), ":[0-9]+$", "");
    set req.http.X-Port = regsub(req.http.Host, "^[^:]*:", "");
    set req.url = regsub(req.url, "[?&]+$", "");
    set req.http.X-V = regsub(req.url, "^/v[0-9]+", "\0!");
    if (req.url ~ "x+" || req.http.X-Forwarded-For ~ ", [0-9.]+$") {
        set req.http.X-Run = regsub(req.url, "a[b-d]{2,}", "<\0>");
    }
}
