sub vcl_recv {
    if (now + now > now) {
        return (pass);
    }
}
