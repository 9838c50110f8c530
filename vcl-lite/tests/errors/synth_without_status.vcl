sub vcl_recv {
    return (synth);
}
