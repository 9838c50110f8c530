sub vcl_deliver {
    set obj.hits = 0;
}
