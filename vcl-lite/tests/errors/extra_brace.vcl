sub vcl_recv {
    if (req.method == "POST") {
        return (pass);
    }
    }
    return (hash);
}
