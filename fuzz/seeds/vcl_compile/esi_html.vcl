# Assemble ESI (<esi:include src="..."/>) in HTML pages only.
vcl 4.1;

sub vcl_recv {
    # Tell the application that lacquer processes ESI.
    set req.http.Surrogate-Capability = "lacquer=ESI/1.0";
}

sub vcl_backend_response {
    if (beresp.http.Content-Type ~ "^text/html" || beresp.http.Surrogate-Control ~ "ESI/1\.0") {
        set beresp.do_esi = true;
        unset beresp.http.Surrogate-Control;
    }
}
