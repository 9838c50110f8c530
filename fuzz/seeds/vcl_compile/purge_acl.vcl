# Only trusted addresses may PURGE (and BAN); everyone else gets a 405.
vcl 4.1;

acl purgers {
    "localhost";
    "10.0.0.0"/8;
    "192.168.0.0"/16;
    ! "10.0.0.66";      # except the old build box
    "2001:db8::"/32;
}

sub vcl_recv {
    if (req.method == "PURGE" || req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        if (req.method == "PURGE") {
            return (purge);
        }
        return (ban);
    }
}

sub vcl_purge {
    return (synth(200, "Purged " + req.url));
}

sub vcl_synth {
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    synthetic(resp.status + " " + resp.reason + {"
"});
    return (deliver);
}
