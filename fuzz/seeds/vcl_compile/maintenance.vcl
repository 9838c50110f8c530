# A maintenance switch: set the flag below to "on" and reload the policy.
# The office still sees the site; everyone else gets a 503 page.
vcl 4.1;

acl office {
    "203.0.113.0"/24;
}

sub vcl_recv {
    set req.http.X-Maintenance = "off";
    if (req.http.X-Maintenance == "on" && client.ip !~ office) {
        unset req.http.X-Maintenance;
        return (synth(503, "Down for maintenance"));
    }
    unset req.http.X-Maintenance;
}

sub vcl_synth {
    if (resp.status == 503) {
        set resp.http.Retry-After = "600";
        set resp.http.Content-Type = "text/html; charset=utf-8";
        synthetic({"<!doctype html>
<title>Maintenance</title>
<h1>We'll be back soon</h1>
<p>The site is being updated. Please try again in a few minutes.</p>
"});
        return (deliver);
    }
}
