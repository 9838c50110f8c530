vcl 4.1;

import purge;

sub vcl_recv {
    if (req.method == "PURGE") {
        set req.http.n = purge.hard();
        return (synth(200));
    }
}
