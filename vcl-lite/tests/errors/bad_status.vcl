sub vcl_recv {
    return (synth(1200, "Custom"));
}
