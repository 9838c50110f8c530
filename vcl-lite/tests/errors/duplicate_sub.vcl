sub vcl_recv {
    return (hash);
}

sub vcl_recv {
    return (pass);
}
