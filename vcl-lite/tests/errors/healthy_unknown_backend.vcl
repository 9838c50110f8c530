backend web {
    .host = "127.0.0.1";
}

sub vcl_recv {
    if (!std.healthy(wbe)) {
        return (synth(503));
    }
}
