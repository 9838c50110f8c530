sub vcl_recv {
    if (req.url ~ "/(\w+)/\1(/|$)" || req.url ~ "(?<!www\.)example\.com" || req.url ~ "^/a++a") {
        set req.url = regsuball(req.url, "(?<=/)v\d+/", "");
    }
    set req.http.X = regsub(req.url, "foo\Kbar(?=baz)|(?>a+)b|(a)?(?(1)b|c)", "\1\0");
    if (req.url ~ "^(?:(a|aa)+\1c|a+b)") {
        return (hash);
    }
}
