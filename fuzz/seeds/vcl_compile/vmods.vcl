vcl 4.1;
import cookie;
import header;
import var;
import xkey;
import purge;
import proxy;

sub vcl_init { var.global_set("g", "1"); }

sub vcl_recv {
    cookie.parse(req.http.Cookie);
    cookie.keep("lang,currency");
    cookie.filter("x");
    cookie.filter_re("^_g");
    cookie.keep_re("^[a-z]");
    cookie.set("z", "9");
    cookie.delete("y");
    var.set("lang", cookie.get("lang"));
    var.set_int("n", std.integer(req.http.n, 0) + 1);
    var.set_duration("d", 10s);
    var.set_ip("ip", client.ip);
    set req.http.Cookie = cookie.get_string() + cookie.get_re("^c") + cookie.isset("z");
    set req.http.x = var.get("lang") + var.get_int("n") + var.get_real("r") + var.get_duration("d") + var.get_ip("ip") + var.global_get("g");
    set req.http.p = proxy.alpn() + proxy.authority() + proxy.is_ssl() + proxy.ssl_verify_result() + proxy.client_cert_cn();
    if (req.http.xkey-purge) {
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    header.append(req.http.x-list, "a");
    header.remove(req.http.x-list, "^b");
    cookie.clean();
    var.clear();
}

sub vcl_hit { set req.http.h = purge.soft(0s, 10s, 1m) + purge.hard(); }

sub vcl_backend_response {
    header.remove(beresp.http.Set-Cookie, "^(?!(session=))");
    header.copy(beresp.http.xkey, beresp.http.x-keys);
    set beresp.http.x-first = header.get(beresp.http.Set-Cookie, "session=") + cookie.format_rfc1123(now, 1d);
}
