vcl 4.1;

backend web1 { .host = "127.0.0.1"; }

sub vcl_init {
    new cluster = directors.round_robin();
    cluster.add_backend(web1);
}

sub vcl_recv {
    new other = directors.random();
}
