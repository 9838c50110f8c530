sub vcl_recv {
    else {
        return (pass);
    }
}
