vcl 4.1;
import directors;

backend web1 { .host = "127.0.0.1"; }

sub vcl_init {
    new cluster = directors.fallback();
    cluster.add_backend(web1);
    web1.add_backend(web1);
}

sub vcl_recv {
    set req.backend_hint = clustr.backend();
}

sub vcl_miss {
    set req.backend_hint = cluster.backend(req.url);
}

sub vcl_pass {
    set req.backend_hint = cluster.pick();
}
