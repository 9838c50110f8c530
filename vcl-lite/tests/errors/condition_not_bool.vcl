sub vcl_deliver {
    if (std.random(0, 1)) {
        set resp.http.X-Cache = "HIT";
    }
}
