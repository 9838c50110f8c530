vcl 4.1;
import directors;

backend web1 { .host = "127.0.0.1"; }

sub vcl_init {
    new cluster = directors.round_robn();
    cluster.add_backend(web1);
    new other = example.thing();
}
