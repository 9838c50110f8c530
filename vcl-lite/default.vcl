# lacquer's built-in policy, written in vcl-lite.
#
# What lacquer runs when no policy file is given (`lacquer run` without
# `-f`): this file documents that behaviour and is what
# `vcl_lite::DEFAULT_POLICY` holds. A policy file that leaves out a
# subroutine, or ends one without `return`, gets Varnish's built-in VCL
# (`builtin.vcl`) instead, as on Varnish.
vcl 4.1;

sub vcl_recv {
    if (req.method == "PURGE") {
        # Checked against the purge ACL of lacquer's settings.
        return (purge);
    }
    if (req.method == "BAN") {
        # The ban expression is in the X-Ban header (same ACL as purges).
        return (ban);
    }
    if (req.method == "GET" || req.method == "HEAD") {
        # Requests with Cookie or Authorization are looked up too: the
        # response's Cache-Control decides whether it is stored.
        return (hash);
    }
    return (pass);
}

sub vcl_hash {
    hash_data(req.url);
    hash_data(req.http.host);
    return (lookup);
}
