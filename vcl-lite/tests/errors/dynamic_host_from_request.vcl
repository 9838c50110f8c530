vcl 4.1;
import dynamic;
backend default { .host = "127.0.0.1"; }
sub vcl_init {
    new app = dynamic.director(port = "8080", tll = 60s);
    new web = dynamic.director(port = "8080");
}
sub vcl_recv {
    set req.backend_hint = web.backend(req.http.Host);
}
