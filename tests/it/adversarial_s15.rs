//! Adversarial checks of three changes: the request fields' summary of the
//! names present (`ReqFields`), the skipped `set req.http.Host` to the
//! text it has, and the skipped `set req.url` to the URL itself. Each test
//! states what Varnish 7.1 (and lacquer before the changes) does.
use crate::common::*;
use std::time::Duration;

/// Echoes what the origin saw of a few fields; cacheable.
fn echo(origin: &Origin, path: &str) {
    origin.route(path, |seen, n| {
        let f = |name: &str| seen.header_or_none(name);
        Reply::ok(format!(
            "v{n} host={} m={} new={} r={} a={} dev={}",
            f("host"),
            f("x-m"),
            f("x-new"),
            f("x-r"),
            f("x-a"),
            f("x-dev")
        ))
        .header("cache-control", "max-age=60")
    });
}

/// A field changed by vmod header / std.collect (a change lacquer makes
/// to the map as a `HeaderMap`, not through the policy's `set`) is read
/// as it is right after, in the same subroutine: the summary made when the
/// subroutine started must not answer "absent" for a name it did not see.
#[tokio::test]
async fn fields_changed_by_vmods_are_read_in_the_same_sub() {
    let origin = Origin::start().await;
    echo(&origin, "/v");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        import header;
        sub vcl_recv {
            header.append(req.http.X-New, "appended");
            if (req.http.X-New) { set req.http.X-Saw-New = req.http.X-New; }
            std.collect(req.http.X-M);
            if (req.http.X-M == "a, b") { set req.http.X-Saw-M = "joined"; }
            header.append(req.http.X-M, "c");
            unset req.http.X-M;
            if (req.http.X-M) { set req.http.X-M-Left = "yes"; }
            return (hash);
        }
        sub vcl_hash {
            hash_data(req.url);
            hash_data(req.http.X-New);
            hash_data(req.http.X-Saw-M);
            return (lookup);
        }
        sub vcl_deliver {
            set resp.http.X-Saw-New = req.http.X-Saw-New;
            set resp.http.X-Saw-M = req.http.X-Saw-M;
            set resp.http.X-M-Left = req.http.X-M-Left;
        }"#,
    )
    .await;
    let a = lq.addr();
    let r = get_with(a, "/v", &[("x-m", "a"), ("x-m", "b")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-saw-new"), Some("appended"));
    assert_eq!(r.header("x-saw-m"), Some("joined"));
    assert_eq!(r.header("x-m-left"), Some(""), "unset after append");
    assert!(r.text().contains("new=appended"), "{}", r.text());
    assert!(r.text().contains("m=none"), "{}", r.text());
}

/// `Vary` on a field the policy sets for some clients and removes for
/// others: one variant per value the policy made, hits after.
#[tokio::test]
async fn vary_on_a_field_the_policy_made_or_removed() {
    let origin = Origin::start().await;
    origin.route("/vary", |seen, n| {
        Reply::ok(format!("v{n} dev={}", seen.header_or_none("x-dev")))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Dev")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            unset req.http.X-Dev;
            if (req.http.User-Agent ~ "Mobile") {
                set req.http.X-Dev = "m";
            }
        }"#,
    )
    .await;
    let a = lq.addr();
    let m1 = get_with(a, "/vary", &[("user-agent", "Mobile"), ("x-dev", "forged")]).await;
    assert_eq!(m1.text(), "v1 dev=m");
    let d1 = get_with(a, "/vary", &[("user-agent", "Desk"), ("x-dev", "m")]).await;
    assert_eq!(d1.text(), "v2 dev=none");
    let m2 = get_with(a, "/vary", &[("user-agent", "Mobile")]).await;
    assert_eq!(m2.text(), "v1 dev=m");
    let d2 = get_with(a, "/vary", &[("user-agent", "Desk")]).await;
    assert_eq!(d2.text(), "v2 dev=none");
    assert_eq!(origin.hits("/vary"), 2);
}

/// Fields set before `return (restart)` are read after it, in `vcl_recv`
/// and `vcl_hash`, and a `std.rollback(req)` after them hides them again
/// (and brings back what was removed).
#[tokio::test]
async fn restarts_and_rollback_read_the_fields_as_they_are() {
    let origin = Origin::start().await;
    echo(&origin, "/r2");
    echo(&origin, "/rb");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            if (req.url == "/rb") {
                set req.http.X-R = "set";
                unset req.http.X-A;
                set req.url = "/elsewhere";
                std.rollback(req);
                if (req.http.X-R) { return (synth(500, "X-R survived rollback")); }
                if (!req.http.X-A) { return (synth(500, "X-A lost by rollback")); }
                return (hash);
            }
            if (req.restarts == 0) {
                set req.http.X-R = "before-restart";
                set req.url = "/r2";
                return (restart);
            }
            if (!req.http.X-R) { return (synth(500, "X-R lost by restart")); }
            return (hash);
        }
        sub vcl_hash {
            hash_data(req.url);
            hash_data(req.http.X-R);
            return (lookup);
        }"#,
    )
    .await;
    let a = lq.addr();
    let r = get(a, "/r1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("r=before-restart"), "{}", r.text());
    let again = get(a, "/r1").await;
    assert_eq!(again.text(), r.text(), "a hit after the restart");
    assert_eq!(origin.hits("/r2"), 1);
    let rb = get_with(a, "/rb", &[("x-a", "kept")]).await;
    assert_eq!(rb.status, 200, "{}", rb.text());
    assert!(rb.text().contains("r=none a=kept"), "{}", rb.text());
}

/// `set req.http.Host` to the Host it reads, for hosts with capitals, a
/// port, an IPv6 literal and an absolute-form target: the origin sees the
/// host lacquer keyed by, and each host has its own object.
#[tokio::test]
async fn host_set_to_itself_for_unusual_hosts() {
    let origin = Origin::start().await;
    echo(&origin, "/h");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            set req.http.Host = regsub(std.tolower(req.http.Host), ":[0-9]+$", "");
            set req.http.X-Key-Host = req.http.Host;
            return (hash);
        }
        sub vcl_deliver {
            set resp.http.X-Key-Host = req.http.X-Key-Host;
        }"#,
    )
    .await;
    let a = lq.addr();
    let req = |target: &str, host: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    let wait = Duration::from_secs(3);
    let plain = raw(a, req("/h", "a.example").as_bytes(), wait).await;
    assert!(plain.contains("v1 host=a.example "), "{plain}");
    let caps = raw(a, req("/h", "A.Example").as_bytes(), wait).await;
    assert!(caps.contains("v1 host=a.example "), "same host: {caps}");
    let port = raw(a, req("/h", "a.example:8080").as_bytes(), wait).await;
    // The port is cut off by the policy: the key's host is a.example.
    assert!(port.contains("v1 host=a.example "), "{port}");
    let absolute = raw(a, req("http://b.example/h", "a.example").as_bytes(), wait).await;
    assert!(
        absolute.contains("host=b.example "),
        "authority wins: {absolute}"
    );
    assert!(absolute.contains("v2 "), "own object: {absolute}");
    let v6 = raw(a, req("/h", "[::1]").as_bytes(), wait).await;
    assert!(v6.contains("host=[::1] "), "{v6}");
    let v6_port = raw(a, req("/h", "[::1]:8080").as_bytes(), wait).await;
    assert!(v6_port.contains("host=[::1] "), "{v6_port}");
    assert_eq!(origin.hits("/h"), 3);
}

/// `set req.url` to the URL it has, reached by expressions returning it
/// unchanged (regsub without a match, querysort of a sorted query) or a
/// copy of it, then a real change in a later statement: the origin sees
/// the last one, and objects are keyed by it.
#[tokio::test]
async fn url_set_to_itself_then_changed() {
    let origin = Origin::start().await;
    echo(&origin, "/u?a=1&b=2");
    echo(&origin, "/w?a=1&b=2");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            set req.url = regsub(req.url, "^/nomatch", "/x");
            set req.url = std.querysort(req.url);
            set req.url = req.url + "";
            set req.url = req.url;
            if (req.url ~ "^/v") {
                set req.url = regsub(req.url, "^/v", "/w");
                set req.url = req.url;
            }
            return (hash);
        }
        sub vcl_deliver {
            set resp.http.X-Url = req.url;
        }"#,
    )
    .await;
    let a = lq.addr();
    let u = get(a, "/u?b=2&a=1").await;
    assert!(u.text().starts_with("v1 "), "{}", u.text());
    assert_eq!(u.header("x-url"), Some("/u?a=1&b=2"));
    let u2 = get(a, "/u?a=1&b=2").await;
    assert!(u2.text().starts_with("v1 "), "one object: {}", u2.text());
    let v = get(a, "/v?a=1&b=2").await;
    assert_eq!(v.header("x-url"), Some("/w?a=1&b=2"));
    assert_eq!(origin.hits("/u?a=1&b=2"), 1);
    assert_eq!(origin.hits("/w?a=1&b=2"), 1);
}

/// ESI fragments run `vcl_recv` on a request copied from the page's: the
/// fields the page's `vcl_recv` set are read there as set, and the ones a
/// fragment's own `vcl_recv` sets reach its backend request.
#[tokio::test]
async fn esi_fragments_read_fields_in_their_own_vcl_recv() {
    let origin = Origin::start().await;
    origin.route("/page", |_, _| {
        Reply::ok("<p><esi:include src=\"/frag\"/></p>").header("cache-control", "max-age=60")
    });
    origin.route("/frag", |seen, _| {
        Reply::ok(format!(
            "frag p={} f={}",
            seen.header_or_none("x-p"),
            seen.header_or_none("x-f")
        ))
        .header("cache-control", "max-age=60")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.esi_level == 0) {
                set req.http.X-P = "page";
            } else {
                if (req.http.X-P) { set req.http.X-F = "saw:" + req.http.X-P; }
                else { set req.http.X-F = "no-x-p"; }
            }
        }
        sub vcl_backend_response {
            if (bereq.url == "/page") { set beresp.do_esi = true; }
        }"#,
    )
    .await;
    let a = lq.addr();
    let page = get(a, "/page").await;
    let text = page.text();
    assert!(text.starts_with("<p>frag p="), "{text}");
    // Varnish copies the page's request (as vcl_recv left it, with X-P)
    // into the fragment's; either way the fragment's own X-F must agree
    // with the X-P the origin saw.
    let p = origin.last("/frag").unwrap().header_or_none("x-p");
    let f = origin.last("/frag").unwrap().header_or_none("x-f");
    if p == "none" {
        assert_eq!(f, "no-x-p", "{text}");
    } else {
        assert_eq!(f, format!("saw:{p}"), "{text}");
    }
}

/// A field present only under a name whose summary bit collides with an
/// absent one, and many fields: every present field is read, every absent
/// one is not.
#[tokio::test]
async fn many_fields_each_read_as_present_or_absent() {
    let origin = Origin::start().await;
    echo(&origin, "/many");
    // Names of every length 3..40 ending in each of a few bytes: some are
    // sent, the policy tests all of them.
    let mut sent = Vec::new();
    let mut tested = String::new();
    for len in 3..40usize {
        for last in ['a', 'z', '0', '-'] {
            let name = format!("x{}{last}", "q".repeat(len - 2));
            if (len + last as usize).is_multiple_of(3) {
                sent.push(name.clone());
            }
            tested.push_str(&format!(
                "if (req.http.{name}) {{ set req.http.X-Count = req.http.X-Count + \"+{name}\"; }}\n"
            ));
        }
    }
    let policy = format!(
        r#"vcl 4.1;
        sub vcl_recv {{
            set req.http.X-Count = "";
            {tested}
            return (synth(200, "counted"));
        }}
        sub vcl_synth {{
            set resp.http.X-Count = req.http.X-Count;
        }}"#
    );
    let lq = with_policy(origin.addr, &policy).await;
    let a = lq.addr();
    let headers: Vec<(&str, &str)> = sent.iter().map(|n| (n.as_str(), "1")).collect();
    let r = get_with(a, "/many", &headers).await;
    let mut expected = String::new();
    for len in 3..40usize {
        for last in ['a', 'z', '0', '-'] {
            let name = format!("x{}{last}", "q".repeat(len - 2));
            if sent.contains(&name) {
                expected.push_str(&format!("+{name}"));
            }
        }
    }
    assert_eq!(r.header("x-count"), Some(expected.as_str()));
}

/// `set bereq.url` in `vcl_pipe` changes the URL the pipe sends, as in
/// Varnish 7.1 (found by this file's first run: lacquer's pipe view refused
/// every `bereq.url` write, and the policy failed with a 503); a write of
/// the same text (a `regsub` that does not match) changes nothing.
#[tokio::test]
async fn vcl_pipe_sets_bereq_url() {
    let origin = Origin::start().await;
    origin.route("/thing", |seen, n| {
        Reply::ok(format!(
            "{} v{n} piped={}",
            seen.method,
            seen.headers.contains_key("x-piped")
        ))
    });
    origin.route("/other", |seen, n| {
        Reply::ok(format!(
            "{} other v{n} piped={}",
            seen.method,
            seen.headers.contains_key("x-piped")
        ))
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_pipe {
            set bereq.url = regsub(bereq.url, "^/nomatch", "/x");
            if (req.http.X-Move) {
                set bereq.url = regsub(bereq.url, "^/thing", "/other");
            }
            set bereq.http.X-Piped = "1";
        }"#,
    )
    .await;
    let same = send(lq.addr(), "LOCK", "/thing", &[], "").await;
    assert_eq!(same.status, 200, "{}", same.text());
    assert_eq!(same.text(), "LOCK v1 piped=true");
    // Varnish 7.1: the pipe goes to /other.
    let moved = send(lq.addr(), "LOCK", "/thing", &[("x-move", "1")], "").await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.text(), "LOCK other v1 piped=true");
}

/// PURGE with a Host that has capitals and a port: the policy's
/// normalisation (a skipped `set req.http.Host` when nothing changes)
/// keys the purge as the GETs were keyed.
#[tokio::test]
async fn purge_keys_by_the_host_the_policy_made() {
    let origin = Origin::start().await;
    echo(&origin, "/p");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            set req.http.Host = regsub(std.tolower(req.http.Host), ":[0-9]+$", "");
            if (req.method == "PURGE") { return (purge); }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let first = get_with(a, "/p", &[("host", "p.example")]).await;
    assert!(
        first.text().starts_with("v1 host=p.example "),
        "{}",
        first.text()
    );
    let hit = get_with(a, "/p", &[("host", "P.Example:8080")]).await;
    assert!(hit.text().starts_with("v1 "), "{}", hit.text());
    let purged = send(a, "PURGE", "/p", &[("host", "P.EXAMPLE:81")], "").await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    let after = get_with(a, "/p", &[("host", "p.example")]).await;
    assert!(
        after.text().starts_with("v2 host=p.example "),
        "{}",
        after.text()
    );
}
