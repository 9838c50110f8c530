sub vcl_deliver {
    if (obj.hits + " hits" == "0 hits") {
        set resp.http.X-Cache = "MISS";
    }
}
