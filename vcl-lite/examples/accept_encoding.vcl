# Normalise Accept-Encoding so that `Vary: Accept-Encoding` keeps at most
# three variants instead of one per browser spelling. Only useful with
# `compression.enabled = false`: by default lacquer normalises
# Accept-Encoding itself after vcl_recv and keeps one copy for all clients.
vcl 4.1;

sub vcl_recv {
    if (req.http.Accept-Encoding) {
        if (req.url ~ "(?i)\.(jpe?g|png|gif|webp|woff2|mp4|gz|zip)$") {
            # Already compressed.
            unset req.http.Accept-Encoding;
        } elsif (req.http.Accept-Encoding ~ "\bbr\b") {
            set req.http.Accept-Encoding = "br";
        } elsif (req.http.Accept-Encoding ~ "\bgzip\b") {
            set req.http.Accept-Encoding = "gzip";
        } else {
            unset req.http.Accept-Encoding;
        }
    }
}
