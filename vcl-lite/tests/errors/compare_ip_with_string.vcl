sub vcl_recv {
    if (client.ip == "127.0.0.1") {
        return (pass);
    }
}
