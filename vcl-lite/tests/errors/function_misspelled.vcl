sub vcl_recv {
    if (std.ban_eror() == "") {
        return (pass);
    }
}
