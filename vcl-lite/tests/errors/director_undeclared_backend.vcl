vcl 4.1;
import directors;

backend web1 { .host = "127.0.0.1"; }
backend web2 { .host = "127.0.0.2"; }

sub vcl_init {
    new cluster = directors.random();
    cluster.add_backend(web1, 2);
    cluster.add_backend(web3);
    cluster.add_backend("web2");
    cluster.add_backend(web2, weight = -1);
}

sub vcl_recv {
    cluster.add_backend(web2);
}

sub vcl_miss {
    set req.backend_hint = "web1";
}
