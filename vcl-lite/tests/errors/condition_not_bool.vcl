sub vcl_deliver {
    if (obj.hits) {
        set resp.http.X-Cache = "HIT";
    }
}
