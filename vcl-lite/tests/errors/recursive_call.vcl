sub vcl_recv {
    call a;
}

sub a {
    call b;
}

sub b {
    if (req.restarts == 0) {
        call a;
    }
}
