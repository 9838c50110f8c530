sub vcl_recv {
    # (?(2)…) asks whether group 2 matched; there is only one group.
    set req.http.X-Kind = regsub(req.url, "^/(api)?(?(2)/v\d+|/web)", "\1");
}
