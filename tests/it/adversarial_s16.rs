//! Adversarial checks of three changes: a policy's `set` / `unset` of
//! request fields kept beside the request's map until a whole map is
//! needed (`ReqFields`, read through `FieldsRead`), a connection polling
//! the stop signal only when it changed, and hyper's header-read timeout
//! on lacquer's own coarse timer. Each test states what the client or the
//! origin must see.
use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every value of `name` the origin saw, in order.
fn values(seen: &Seen, name: &str) -> Vec<String> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .collect()
}

/// The last request the origin saw for `path`.
fn last(origin: &Origin, path: &str) -> Seen {
    origin
        .last(path)
        .unwrap_or_else(|| panic!("{path} not fetched"))
}

/// A set, an unset and a set again of one name written in three cases,
/// two `Cookie` lines replaced by one, a removal and an empty value: the
/// backend sees each name once with its last value, and the policy reads
/// the same.
#[tokio::test]
async fn set_unset_set_in_any_case_and_two_cookie_lines_replaced() {
    let origin = Origin::start().await;
    origin.route("/p", |_, n| Reply::ok(format!("p{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "one";
            unset req.http.x-a;
            set req.http.X-a = "three";
            set req.http.COOKIE = "only=1";
            unset req.http.X-Drop;
            set req.http.X-Empty = "";
            set req.http.x-twice = "1";
            set req.http.X-TWICE = "2";
            return (pass);
        }
        sub vcl_deliver {
            set resp.http.X-Saw-A = req.http.x-A;
            set resp.http.X-Saw-Cookie = req.http.cookie;
            if (req.http.X-Drop) { set resp.http.X-Saw-Drop = "yes"; }
            set resp.http.X-Saw-Twice = req.http.X-Twice;
        }"#,
    )
    .await;
    let got = get_with(
        lq.addr(),
        "/p",
        &[
            ("x-a", "client"),
            ("cookie", "a=1"),
            ("x-drop", "d"),
            ("cookie", "b=2"),
            ("x-twice", "0"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-saw-a"), Some("three"));
    assert_eq!(got.header("x-saw-cookie"), Some("only=1"));
    assert_eq!(got.header("x-saw-drop"), None);
    assert_eq!(got.header("x-saw-twice"), Some("2"));
    let seen = last(&origin, "/p");
    assert_eq!(values(&seen, "x-a"), ["three"]);
    assert_eq!(values(&seen, "cookie"), ["only=1"]);
    assert!(values(&seen, "x-drop").is_empty());
    assert_eq!(values(&seen, "x-empty"), [""]);
    assert_eq!(values(&seen, "x-twice"), ["2"]);
    assert_eq!(values(&seen, "host"), ["test.example"]);
}

/// More names changed than the pending list holds (it is folded into the
/// map at 64): 70 fields set, 40 of the client's removed, one set again
/// after its removal, one removed after the fold. Every change reaches the
/// backend once, and the policy reads each field as it left it.
#[tokio::test]
async fn a_hundred_and_ten_changes_across_the_fold() {
    let origin = Origin::start().await;
    origin.route("/many", |_, n| Reply::ok(format!("m{n}")));
    let mut recv = String::new();
    for i in 0..70 {
        recv.push_str(&format!("set req.http.X-N{i} = \"v{i}\";\n"));
    }
    for i in 0..40 {
        recv.push_str(&format!("unset req.http.X-C{i};\n"));
    }
    // After the fold: a removal of a name set before it, a set again.
    recv.push_str("unset req.http.X-N3;\nunset req.http.X-N66;\n");
    recv.push_str("set req.http.X-N3 = \"again\";\n");
    recv.push_str("set req.http.X-C41 = \"changed\";\n");
    let policy = format!(
        r#"vcl 4.1;
        sub vcl_recv {{
            {recv}
            return (pass);
        }}
        sub vcl_deliver {{
            set resp.http.X-R3 = req.http.X-N3;
            set resp.http.X-R0 = req.http.X-N0;
            set resp.http.X-R69 = req.http.X-N69;
            if (req.http.X-N66) {{ set resp.http.X-R66 = "present"; }}
            if (req.http.X-C0) {{ set resp.http.X-Rc0 = "present"; }}
            set resp.http.X-Rc41 = req.http.X-C41;
            set resp.http.X-Rc44 = req.http.X-C44;
        }}"#
    );
    let lq = with_policy(origin.addr, &policy).await;
    let names: Vec<String> = (0..45).map(|i| format!("x-c{i}")).collect();
    let client: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "c")).collect();
    let got = get_with(lq.addr(), "/many", &client).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("x-r3"), Some("again"));
    assert_eq!(got.header("x-r0"), Some("v0"));
    assert_eq!(got.header("x-r69"), Some("v69"));
    assert_eq!(got.header("x-r66"), None);
    assert_eq!(got.header("x-rc0"), None);
    assert_eq!(got.header("x-rc41"), Some("changed"));
    assert_eq!(got.header("x-rc44"), Some("c"));
    let seen = last(&origin, "/many");
    for i in 0..70 {
        let want: Vec<String> = match i {
            3 => vec!["again".into()],
            66 => vec![],
            _ => vec![format!("v{i}")],
        };
        assert_eq!(values(&seen, &format!("x-n{i}")), want, "x-n{i}");
    }
    for i in 0..45 {
        let want: Vec<&str> = match i {
            0..=39 => vec![],
            41 => vec!["changed"],
            _ => vec!["c"],
        };
        assert_eq!(values(&seen, &format!("x-c{i}")), want, "x-c{i}");
    }
}

/// `Vary: Cookie` on a `Cookie` the policy rewrote: two client lines
/// collected, then replaced by one or removed. Clients are told apart by
/// what the policy made.
#[tokio::test]
async fn vary_on_a_cookie_the_policy_rewrote_from_two_lines() {
    let origin = Origin::start().await;
    origin.route("/vc", |seen, n| {
        Reply::ok(format!("v{n} cookie={}", values(seen, "cookie").join("|")))
            .header("cache-control", "max-age=60")
            .header("vary", "Cookie")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            std.collect(req.http.Cookie, "; ");
            if (req.http.Cookie ~ "lang=fr") {
                set req.http.Cookie = "lang=fr";
            } else {
                unset req.http.Cookie;
            }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let fr1 = get_with(a, "/vc", &[("cookie", "sid=1"), ("cookie", "lang=fr")]).await;
    assert_eq!(fr1.text(), "v1 cookie=lang=fr");
    wait_stored(&lq, "/vc").await;
    let fr2 = get_with(a, "/vc", &[("cookie", "lang=fr; sid=2")]).await;
    assert_eq!(fr2.text(), "v1 cookie=lang=fr");
    let other = get_with(a, "/vc", &[("cookie", "sid=3"), ("cookie", "x=1")]).await;
    assert_eq!(other.text(), "v2 cookie=");
    wait_stored_n(&lq, "/vc", 2).await;
    let none = get(a, "/vc").await;
    assert_eq!(none.text(), "v2 cookie=");
    let fr3 = get_with(a, "/vc", &[("cookie", "lang=fr")]).await;
    assert_eq!(fr3.text(), "v1 cookie=lang=fr");
    assert_eq!(origin.hits("/vc"), 2);
}

/// Conditionals and ranges answered from a hit follow the fields as the
/// policy left them: a removed `If-None-Match`, an `If-Modified-Since`
/// set, an `If-Range` set or removed, an `If-None-Match` set empty.
#[tokio::test]
async fn conditionals_and_ranges_on_a_hit_follow_the_policy() {
    let origin = Origin::start().await;
    let lm = http_date(-3600);
    origin.route("/doc", move |_, n| {
        Reply::ok(format!("document {n:03}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"d1\"")
            .header("last-modified", &lm)
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.http.X-Strip-Cond) {
                unset req.http.If-None-Match;
                unset req.http.If-Modified-Since;
            }
            if (req.http.X-Ims) { set req.http.If-Modified-Since = req.http.X-Ims; }
            if (req.http.X-Ir) { set req.http.If-Range = req.http.X-Ir; }
            if (req.http.X-Unset-Ir) { unset req.http.If-Range; }
            if (req.http.X-Empty-Inm) { set req.http.If-None-Match = ""; }
            if (req.http.X-Range) { set req.http.Range = req.http.X-Range; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    assert_eq!(get(a, "/doc").await.text(), "document 001");
    wait_stored(&lq, "/doc").await;

    let plain = get_with(a, "/doc", &[("if-none-match", "\"d1\"")]).await;
    assert_eq!(plain.status, 304, "the client's own validator");
    let stripped = get_with(
        a,
        "/doc",
        &[("if-none-match", "\"d1\""), ("x-strip-cond", "1")],
    )
    .await;
    assert_eq!(
        (stripped.status, stripped.text().as_str()),
        (200, "document 001")
    );
    let now = http_date(0);
    let ims = get_with(a, "/doc", &[("x-ims", &now)]).await;
    assert_eq!(ims.status, 304, "If-Modified-Since set by the policy");
    let emptied = get_with(
        a,
        "/doc",
        &[("if-none-match", "\"d1\""), ("x-empty-inm", "1")],
    )
    .await;
    assert_eq!(
        (emptied.status, emptied.text().as_str()),
        (200, "document 001"),
        "an empty If-None-Match matches nothing"
    );
    let not_matching = get_with(a, "/doc", &[("range", "bytes=0-7"), ("x-ir", "\"other\"")]).await;
    assert_eq!(
        (not_matching.status, not_matching.text().as_str()),
        (200, "document 001")
    );
    let overridden = get_with(
        a,
        "/doc",
        &[
            ("range", "bytes=0-7"),
            ("if-range", "\"d1\""),
            ("x-ir", "\"other\""),
        ],
    )
    .await;
    assert_eq!(
        overridden.status, 200,
        "the policy's If-Range, not the client's"
    );
    let unset_ir = get_with(
        a,
        "/doc",
        &[
            ("range", "bytes=0-7"),
            ("if-range", "\"other\""),
            ("x-unset-ir", "1"),
        ],
    )
    .await;
    assert_eq!(
        (unset_ir.status, unset_ir.text().as_str()),
        (206, "document")
    );
    let replaced_range = get_with(
        a,
        "/doc",
        &[("range", "bytes=0-7"), ("x-range", "bytes=9-11")],
    )
    .await;
    assert_eq!(
        (replaced_range.status, replaced_range.text().as_str()),
        (206, "001")
    );
    assert_eq!(origin.hits("/doc"), 1);
}

/// `Accept-Encoding` the policy removes or sets decides the coding a hit
/// is delivered in; one stored copy serves them all.
#[tokio::test]
async fn accept_encoding_the_policy_sets_or_removes_decides_the_coding() {
    let origin = Origin::start().await;
    let body: Vec<u8> = b"lacquer keeps one copy; policies pick the coding.\n"
        .iter()
        .copied()
        .cycle()
        .take(4000)
        .collect();
    let zipped = gzip(&body);
    origin.route("/gz", move |seen, _| {
        let r = Reply::new(200)
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .header("vary", "Accept-Encoding");
        if seen.header_or_none("accept-encoding").contains("gzip") {
            r.header("content-encoding", "gzip").body(zipped.clone())
        } else {
            r.body(body.clone())
        }
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.http.X-No-Gzip) { unset req.http.Accept-Encoding; }
            if (req.http.X-Gzip) { set req.http.Accept-Encoding = "gzip"; }
            if (req.http.X-Odd) { set req.http.Accept-Encoding = "br;q=0, GZIP;q=0.5"; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let first = get_with(a, "/gz", &[("accept-encoding", "gzip")]).await;
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    let plain = gunzip(&first.body);
    wait_stored(&lq, "/gz").await;
    let removed = get_with(a, "/gz", &[("accept-encoding", "gzip"), ("x-no-gzip", "1")]).await;
    assert_eq!(removed.header("content-encoding"), None);
    assert_eq!(removed.body, plain);
    let set = get_with(a, "/gz", &[("x-gzip", "1")]).await;
    assert_eq!(set.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&set.body), plain);
    let odd = get_with(a, "/gz", &[("accept-encoding", "identity"), ("x-odd", "1")]).await;
    assert_eq!(odd.header("content-encoding"), Some("gzip"));
    let none = get(a, "/gz").await;
    assert_eq!(none.header("content-encoding"), None);
    assert_eq!(none.body, plain);
    assert_eq!(origin.hits("/gz"), 1);
}

/// A ban on `req.http.X-Dev` is decided on the value the policy made, not
/// the one the client sent.
#[tokio::test]
async fn a_ban_on_a_field_is_decided_on_the_value_the_policy_set() {
    let origin = Origin::start().await;
    cacheable(&origin, "/b1");
    cacheable(&origin, "/b2");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            if (req.url == "/do-ban") {
                if (std.ban({"req.http.X-Dev == m"})) { return (synth(200, "banned")); }
                return (synth(500, "refused"));
            }
            unset req.http.X-Dev;
            if (req.http.User-Agent ~ "Mobile") { set req.http.X-Dev = "m"; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    get(a, "/b1").await;
    get(a, "/b2").await;
    wait_stored(&lq, "/b1").await;
    wait_stored(&lq, "/b2").await;
    assert_eq!(get(a, "/do-ban").await.status, 200);
    // A desktop client forging the field: the policy removed it.
    let forged = get_with(a, "/b1", &[("x-dev", "m"), ("user-agent", "Desk")]).await;
    assert!(
        is_hit(&forged),
        "banned on the client's value: {}",
        forged.x_cache()
    );
    // A mobile client: the policy set it.
    let mobile = get_with(a, "/b2", &[("user-agent", "Mobile")]).await;
    assert!(!is_hit(&mobile), "not banned on the policy's value");
    assert_eq!(mobile.text(), "/b2 v2");
    assert_eq!((origin.hits("/b1"), origin.hits("/b2")), (1, 2));
}

/// A BAN whose expression the policy wrote into `X-Ban` applies that
/// expression, not the client's.
#[tokio::test]
async fn a_ban_request_applies_the_expression_the_policy_set() {
    let origin = Origin::start().await;
    cacheable(&origin, "/x");
    cacheable(&origin, "/y");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.method == "BAN") {
                set req.http.X-Ban = {"req.url ~ "^/x""};
                return (ban);
            }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    get(a, "/x").await;
    get(a, "/y").await;
    wait_stored(&lq, "/x").await;
    wait_stored(&lq, "/y").await;
    let b = ban(a, r#"req.url ~ "^/y""#).await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert!(!is_hit(&get(a, "/x").await), "/x not banned");
    assert!(
        is_hit(&get(a, "/y").await),
        "/y banned by the client's text"
    );
    assert_eq!((origin.hits("/x"), origin.hits("/y")), (2, 1));
}

/// A PURGE by a surrogate key the policy set, hard although the client
/// asked for soft (the policy removed the soft-purge header).
#[tokio::test]
async fn purge_by_a_key_the_policy_set_in_the_mode_it_left() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/k1", &[("surrogate-key", "t1")]);
    cacheable_with(&origin, "/k2", &[("surrogate-key", "t1 t3")]);
    cacheable_with(&origin, "/k3", &[("surrogate-key", "t2")]);
    let lq = with_policy_and(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.method == "PURGE") {
                if (req.http.X-Tag) { set req.http.Surrogate-Key = req.http.X-Tag; }
                unset req.http.X-Purge;
                return (purge);
            }
            return (hash);
        }"#,
        |c| c.cache.grace = lacquer::config::Seconds(Duration::from_secs(30)),
    )
    .await;
    let a = lq.addr();
    for p in ["/k1", "/k2", "/k3"] {
        get(a, p).await;
        wait_stored(&lq, p).await;
    }
    let got = send(
        a,
        "PURGE",
        "/k3",
        &[("x-tag", "t1"), ("x-purge", "soft")],
        "",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let k1 = get(a, "/k1").await;
    assert_eq!(k1.text(), "/k1 v2", "hard purge: refetched, not stale");
    assert!(
        is_hit(&get(a, "/k3").await),
        "the URL was purged, not the key"
    );
    assert_eq!(get(a, "/k2").await.text(), "/k2 v2");
}

/// `std.collect` after a `set` of the same name, `std.collect` of two client
/// lines next to a pending change, and `std.rollback(req)` after sets and
/// removals (the two `Cookie` lines come back), then a set after it.
#[tokio::test]
async fn collect_after_a_set_and_rollback_after_changes() {
    let origin = Origin::start().await;
    origin.route("/collect", |_, n| Reply::ok(format!("c{n}")));
    origin.route("/rollback", |_, n| Reply::ok(format!("r{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import std;
        sub vcl_recv {
            if (req.url == "/collect") {
                set req.http.X-M = "s";
                std.collect(req.http.X-M);
                set req.http.X-L = "l";
                std.collect(req.http.X-K, "; ");
                unset req.http.X-Gone;
                set req.http.X-After = req.http.X-K;
                return (pass);
            }
            set req.http.X-Added = "1";
            unset req.http.X-Orig;
            set req.http.Cookie = "changed";
            set req.http.X-Orig = "replaced";
            std.rollback(req);
            set req.http.X-Later = req.http.X-Orig + "+" + req.http.Cookie;
            return (pass);
        }"#,
    )
    .await;
    let a = lq.addr();
    let got = get_with(
        a,
        "/collect",
        &[
            ("x-m", "a"),
            ("x-m", "b"),
            ("x-k", "a"),
            ("x-gone", "g"),
            ("x-k", "b"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = last(&origin, "/collect");
    assert_eq!(values(&seen, "x-m"), ["s"]);
    assert_eq!(values(&seen, "x-k"), ["a; b"]);
    assert_eq!(values(&seen, "x-l"), ["l"]);
    assert_eq!(values(&seen, "x-after"), ["a; b"]);
    assert!(values(&seen, "x-gone").is_empty());

    let got = get_with(
        a,
        "/rollback",
        &[("cookie", "a=1"), ("x-orig", "o"), ("cookie", "b=2")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let seen = last(&origin, "/rollback");
    assert!(values(&seen, "x-added").is_empty());
    assert_eq!(values(&seen, "x-orig"), ["o"]);
    assert_eq!(values(&seen, "cookie"), ["a=1", "b=2"]);
    assert_eq!(values(&seen, "x-later"), ["o+a=1"]);
}

/// A restart after changes: `vcl_recv` reads them again, and the
/// backend request of the restarted pass carries what the second
/// `vcl_recv` left.
#[tokio::test]
async fn a_restart_after_changes_reads_and_sends_them() {
    let origin = Origin::start().await;
    origin.route("/before", |_, n| Reply::ok(format!("b{n}")));
    origin.route("/after", |_, n| Reply::ok(format!("a{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.restarts == 0) {
                set req.http.X-Step = "first";
                unset req.http.X-Client;
                set req.http.X-Tmp = "tmp";
                set req.http.Cookie = "one";
            } else {
                set req.http.X-Step = req.http.X-Step + "-again";
                set req.http.X-Saw-Tmp = req.http.X-Tmp;
                unset req.http.X-Tmp;
                unset req.http.Cookie;
                set req.http.Cookie = "two";
                set req.url = "/after";
            }
            return (pass);
        }
        sub vcl_deliver {
            if (req.restarts == 0) { return (restart); }
            set resp.http.X-Step = req.http.X-Step;
        }"#,
    )
    .await;
    let got = get_with(
        lq.addr(),
        "/before",
        &[("x-client", "c"), ("cookie", "a=1"), ("cookie", "b=2")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "a1");
    assert_eq!(got.header("x-step"), Some("first-again"));
    let before = last(&origin, "/before");
    assert_eq!(values(&before, "cookie"), ["one"]);
    assert!(values(&before, "x-client").is_empty());
    let after = last(&origin, "/after");
    assert_eq!(values(&after, "x-step"), ["first-again"]);
    assert_eq!(values(&after, "x-saw-tmp"), ["tmp"]);
    assert!(values(&after, "x-tmp").is_empty());
    assert!(values(&after, "x-client").is_empty());
    assert_eq!(values(&after, "cookie"), ["two"]);
}

/// `set req.http.HOST` (capitals) keys the object by the new host and the
/// backend sees one Host; `unset req.http.Host` does not duplicate or
/// resurrect the client's.
#[tokio::test]
async fn host_set_in_capitals_or_unset() {
    let origin = Origin::start().await;
    origin.route("/h", |seen, n| {
        Reply::ok(format!("h{n} {}", values(seen, "host").join("|")))
            .header("cache-control", "max-age=60")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.http.X-To) { set req.http.HOST = req.http.X-To; }
            if (req.http.X-No-Host) { unset req.http.Host; return (pass); }
            return (hash);
        }
        sub vcl_deliver { set resp.http.X-Host = req.http.host; }"#,
    )
    .await;
    let a = lq.addr();
    let moved = get_with(a, "/h", &[("host", "a.example"), ("x-to", "b.example")]).await;
    assert_eq!(moved.text(), "h1 b.example");
    assert_eq!(moved.header("x-host"), Some("b.example"));
    wait_stored(&lq, "/h").await;
    let direct = get_with(a, "/h", &[("host", "b.example")]).await;
    assert!(is_hit(&direct), "{}", direct.x_cache());
    assert_eq!(direct.text(), "h1 b.example");
    let own = get_with(a, "/h", &[("host", "a.example")]).await;
    assert_eq!(own.text(), "h2 a.example");
    let gone = get_with(a, "/h", &[("host", "a.example"), ("x-no-host", "1")]).await;
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert!(
        values(&last(&origin, "/h"), "host").len() <= 1,
        "{:?}",
        last(&origin, "/h").headers
    );
    assert!(!gone.text().contains("a.example"), "{}", gone.text());
}

/// A pass with a request body: the policy's changes and the body both
/// reach the backend.
#[tokio::test]
async fn a_pass_with_a_body_carries_the_policys_fields() {
    let origin = Origin::start().await;
    origin.route("/up", |seen, n| {
        Reply::ok(format!("u{n} {}", seen.body_len))
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "a";
            unset req.http.X-B;
            set req.http.Content-Type = "application/x-changed";
            return (pass);
        }"#,
    )
    .await;
    let body = vec![b'z'; 5000];
    let got = send(
        lq.addr(),
        "POST",
        "/up",
        &[("x-b", "b"), ("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(got.text(), "u1 5000");
    let seen = last(&origin, "/up");
    assert_eq!(values(&seen, "x-a"), ["a"]);
    assert!(values(&seen, "x-b").is_empty());
    assert_eq!(values(&seen, "content-type"), ["application/x-changed"]);
    assert_eq!(values(&seen, "content-length"), ["5000"]);
}

/// Fields the policy set or removed for one request on a keep-alive
/// connection are not seen by the next request on it.
#[tokio::test]
async fn changes_do_not_leak_to_the_next_request_on_the_connection() {
    let origin = Origin::start().await;
    origin.route("/mark", |_, n| Reply::ok(format!("m{n}")));
    origin.route("/plain", |_, n| Reply::ok(format!("p{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/mark") {
                set req.http.X-Set = "1";
                unset req.http.X-Keep;
                set req.http.Cookie = "policy";
            }
            return (pass);
        }
        sub vcl_deliver {
            if (req.http.X-Set) { set resp.http.X-Saw-Set = "yes"; }
        }"#,
    )
    .await;
    let mut sender = connect::<Full<Bytes>>(lq.addr()).await;
    for round in 0..3 {
        let m = send_on(
            &mut sender,
            "GET",
            "/mark",
            &[("x-keep", "k"), ("cookie", "c=1")],
            "",
        )
        .await;
        assert_eq!(m.header("x-saw-set"), Some("yes"), "round {round}");
        let seen = last(&origin, "/mark");
        assert!(values(&seen, "x-keep").is_empty());
        assert_eq!(values(&seen, "cookie"), ["policy"]);
        let p = send_on(
            &mut sender,
            "GET",
            "/plain",
            &[("x-keep", "k"), ("cookie", "c=1")],
            "",
        )
        .await;
        assert_eq!(p.header("x-saw-set"), None, "round {round}");
        let seen = last(&origin, "/plain");
        assert!(values(&seen, "x-set").is_empty(), "round {round}");
        assert_eq!(values(&seen, "x-keep"), ["k"], "round {round}");
        assert_eq!(values(&seen, "cookie"), ["c=1"], "round {round}");
    }
}

/// A WebSocket upgrade piped: the backend's head carries what `vcl_recv`
/// set and removed, and what `vcl_pipe` copied from it.
#[tokio::test]
async fn an_upgrade_pipe_carries_the_changes_of_vcl_recv() {
    let (backend, heads) = crate::websocket::echo_backend().await;
    let lq = with_policy(
        backend,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-Room = "r1";
            unset req.http.X-Secret;
            set req.http.X-Secret2 = "s";
            unset req.http.X-Secret2;
            if (req.http.Upgrade ~ "(?i)websocket") { return (pipe); }
        }
        sub vcl_pipe {
            set bereq.http.X-Copied = req.http.X-Room;
            if (req.http.X-Secret2) { set bereq.http.X-Leak = "yes"; }
        }"#,
    )
    .await;
    let mut stream = TcpStream::connect(lq.addr()).await.unwrap();
    stream
        .write_all(
            b"GET /room HTTP/1.1\r\nHost: chat.example\r\nX-Secret: s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = crate::websocket::read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo")
        .unwrap();
    assert_eq!(&back, b"ping");
    let seen = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert_eq!(seen.matches("x-room: r1\r\n").count(), 1, "{seen}");
    assert_eq!(seen.matches("x-copied: r1\r\n").count(), 1, "{seen}");
    assert!(!seen.contains("x-secret"), "{seen}");
    assert!(!seen.contains("x-leak"), "{seen}");
    assert_eq!(seen.matches("\r\nhost:").count(), 1, "{seen}");
    assert_eq!(seen.matches("\r\nupgrade:").count(), 1, "{seen}");
}

/// `return (pipe)` of a request that does not upgrade is a pass: the
/// changes of `vcl_recv` and of `vcl_pipe` both reach the backend.
#[tokio::test]
async fn a_plain_pipe_carries_the_changes_of_vcl_recv_and_vcl_pipe() {
    let origin = Origin::start().await;
    origin.route("/np", |_, n| Reply::ok(format!("np{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "1";
            unset req.http.X-B;
            set req.http.Cookie = "piped";
            return (pipe);
        }
        sub vcl_pipe {
            set bereq.http.X-P = req.http.X-A;
            unset bereq.http.X-C;
            set bereq.http.X-A = "2";
        }"#,
    )
    .await;
    let got = get_with(
        lq.addr(),
        "/np",
        &[
            ("x-b", "b"),
            ("x-c", "c"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let seen = last(&origin, "/np");
    assert_eq!(values(&seen, "x-a"), ["2"]);
    assert_eq!(values(&seen, "x-p"), ["1"]);
    assert!(values(&seen, "x-b").is_empty());
    assert!(values(&seen, "x-c").is_empty());
    assert_eq!(values(&seen, "cookie"), ["piped"]);
}

/// ESI fragment requests start from the page's fields as the page's
/// `vcl_recv` left them, and their own `vcl_recv` changes reach the
/// fragment's backend request.
#[tokio::test]
async fn esi_fragments_start_from_the_pages_changed_fields() {
    let origin = Origin::start().await;
    origin.route("/page", |_, _| {
        Reply::ok("[<esi:include src=\"/frag\"/>]")
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=60")
    });
    origin.route("/frag", |seen, n| {
        Reply::ok(format!(
            "f{n} page={} secret={} cookie={} frag={}",
            seen.header_or_none("x-page"),
            seen.header_or_none("x-secret"),
            values(seen, "cookie").join("|"),
            seen.header_or_none("x-frag"),
        ))
        .header("cache-control", "no-store")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.esi_level == 0) {
                set req.http.X-Page = "p";
                unset req.http.X-Secret;
                set req.http.Cookie = "c=page";
            } else {
                set req.http.X-Frag = req.http.X-Page + "f";
            }
            return (hash);
        }"#,
    )
    .await;
    let got = get_with(
        lq.addr(),
        "/page",
        &[("x-secret", "s"), ("cookie", "a=1"), ("cookie", "b=2")],
    )
    .await;
    assert_eq!(got.text(), "[f1 page=p secret=none cookie=c=page frag=pf]");
}

/// A background fetch of an object in grace carries the fields the
/// policy set for the request that found it stale.
#[tokio::test]
async fn a_background_fetch_in_grace_carries_the_policys_fields() {
    let origin = Origin::start().await;
    origin.route("/g", |_, n| {
        Reply::ok(format!("g{n}")).header("cache-control", "max-age=1")
    });
    let lq = with_policy_and(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "bg";
            unset req.http.X-Client;
            set req.http.Cookie = "one";
            return (hash);
        }"#,
        |c| c.cache.grace = lacquer::config::Seconds(Duration::from_secs(30)),
    )
    .await;
    let a = lq.addr();
    assert_eq!(get(a, "/g").await.text(), "g1");
    wait_stored(&lq, "/g").await;
    expire(&lq, &origin).await;
    let stale = get_with(
        a,
        "/g",
        &[("x-client", "c"), ("cookie", "a"), ("cookie", "b")],
    )
    .await;
    assert_eq!(stale.text(), "g1", "delivered stale");
    wait_until("the background fetch", async || origin.hits("/g") == 2).await;
    let seen = last(&origin, "/g");
    assert_eq!(values(&seen, "x-a"), ["bg"]);
    assert!(values(&seen, "x-client").is_empty());
    assert_eq!(values(&seen, "cookie"), ["one"]);
}

/// A retry sends the policy's fields again (and `vcl_backend_fetch`'s
/// change once, not once per attempt).
#[tokio::test]
async fn a_retry_sends_the_policys_fields_again() {
    let origin = Origin::start().await;
    origin.route("/retry", |_, n| {
        if n == 1 {
            Reply::new(503).body("busy")
        } else {
            Reply::ok(format!("r{n}")).header("cache-control", "max-age=60")
        }
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "r";
            unset req.http.X-B;
            return (hash);
        }
        sub vcl_backend_fetch {
            set bereq.http.X-F = bereq.http.X-F + "f";
        }
        sub vcl_backend_response {
            if (beresp.status == 503 && bereq.retries == 0) { return (retry); }
        }"#,
    )
    .await;
    let got = get_with(lq.addr(), "/retry", &[("x-b", "b")]).await;
    assert_eq!(got.text(), "r2");
    let seen: Vec<Seen> = origin
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == "/retry")
        .cloned()
        .collect();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(values(s, "x-a"), ["r"]);
        assert!(values(s, "x-b").is_empty());
        assert_eq!(values(s, "host"), ["test.example"]);
    }
}

/// `Authorization` the policy removed is not seen by the backend nor by
/// the storing rules; one the policy set is sent (and, as Varnish does
/// under a loaded VCL, the answer's stated lifetime still applies).
#[tokio::test]
async fn authorization_as_the_policy_left_it() {
    let origin = Origin::start().await;
    cacheable(&origin, "/open");
    cacheable(&origin, "/closed");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/open") { unset req.http.Authorization; }
            if (req.url == "/closed") { set req.http.Authorization = "Basic eDp5"; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    get_with(a, "/open", &[("authorization", "Basic YTpi")]).await;
    assert!(values(&last(&origin, "/open"), "authorization").is_empty());
    wait_stored(&lq, "/open").await;
    let again = get_with(a, "/open", &[("authorization", "Basic YTpi")]).await;
    assert!(is_hit(&again), "{}", again.x_cache());
    get_with(a, "/closed", &[("authorization", "Basic YTpi")]).await;
    assert_eq!(
        values(&last(&origin, "/closed"), "authorization"),
        ["Basic eDp5"]
    );
}

/// `Vary` and `vcl_hash` on a field set, unset and set again: variants
/// follow the policy's value, not the client's.
#[tokio::test]
async fn vary_on_a_field_set_after_unset_and_read_in_vcl_hash() {
    let origin = Origin::start().await;
    origin.route("/vh", |seen, n| {
        Reply::ok(format!("v{n} {}", seen.header_or_none("x-dev")))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Dev, X-Other")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-Dev = "tmp";
            unset req.http.X-Dev;
            unset req.http.X-Other;
            if (req.http.User-Agent ~ "Mobile") { set req.http.X-Dev = "m"; }
            else { set req.http.X-Dev = "d"; }
            return (hash);
        }
        sub vcl_hash {
            hash_data(req.url);
            hash_data(req.http.X-Dev);
            return (lookup);
        }"#,
    )
    .await;
    let a = lq.addr();
    let m = get_with(a, "/vh", &[("user-agent", "Mobile"), ("x-other", "1")]).await;
    assert_eq!(m.text(), "v1 m");
    wait_stored(&lq, "/vh").await;
    let d = get_with(a, "/vh", &[("user-agent", "Desk"), ("x-dev", "m")]).await;
    assert_eq!(d.text(), "v2 d");
    wait_stored_n(&lq, "/vh", 2).await;
    let m2 = get_with(a, "/vh", &[("user-agent", "Mobile"), ("x-other", "2")]).await;
    assert_eq!(m2.text(), "v1 m");
    assert!(is_hit(&m2));
    let d2 = get_with(a, "/vh", &[("user-agent", "Desk")]).await;
    assert_eq!(d2.text(), "v2 d");
    assert_eq!(origin.hits("/vh"), 2);
}

// ---- the header-read timeout on the coarse timer, and shutdown ----

async fn read_response_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(1)) => head.push(buf[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads a whole `Content-Length` response.
async fn read_response(s: &mut TcpStream) -> String {
    let head = read_response_head(s).await;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut body)).await;
    format!("{head}{}", String::from_utf8_lossy(&body))
}

/// Waits (at most `limit`) for the server to close `s`; true when it did.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A client sending its head in pieces, within the timeout, is served;
/// so is a second request on the connection after a pause shorter than
/// the timeout; the connection is closed once idle past it (never
/// before).
#[tokio::test]
async fn a_head_in_pieces_within_the_timeout_is_served_and_idle_closed_after_it() {
    let origin = Origin::start().await;
    origin.route("/", |_, n| Reply::ok(format!("fine{n}")));
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = lacquer::config::Seconds(Duration::from_millis(1500))
    })
    .await;
    let mut s = TcpStream::connect(lq.addr()).await.unwrap();
    for piece in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"Host: a\r\n",
        b"X-Slow: 1\r\n",
        b"\r\n",
    ] {
        s.write_all(piece).await.unwrap();
        sleep_ms(100).await;
    }
    let first = read_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.ends_with("fine1"), "{first}");
    sleep_ms(500).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut s).await;
    assert!(second.ends_with("fine2"), "{second}");
    let idle_from = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)).await,
        "idle keep-alive connection not closed"
    );
    // Armed when the answer was written, a little before `idle_from`:
    // the bound leaves room for a loaded machine's delays.
    assert!(
        idle_from.elapsed() >= Duration::from_millis(1000),
        "closed early: {:?}",
        idle_from.elapsed()
    );
}

/// A request whose answer takes longer than the header-read timeout is not
/// cut off (the timeout is for reading the head), and a slowloris second
/// request on the same connection is.
#[tokio::test]
async fn a_slow_answer_is_not_cut_and_a_slow_second_head_is() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, n| {
        Reply::ok(format!("slow{n}")).delay(Duration::from_millis(900))
    });
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = lacquer::config::Seconds(Duration::from_millis(300))
    })
    .await;
    let mut s = TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut s).await;
    assert!(first.ends_with("slow1"), "{first}");
    // A second head a byte every 50 ms: cut off.
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Slowloris: 0123456789abcdef\r\n" {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        sleep_ms(50).await;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("slow2"), "the slowloris was served: {text}");
    assert!(cut || started.elapsed() < Duration::from_secs(8));
    assert_eq!(origin.hits("/slow"), 1);
}

/// Twenty idle keep-alive connections are all closed after the timeout.
#[tokio::test]
async fn many_idle_connections_are_all_closed_after_the_timeout() {
    let origin = Origin::start().await;
    origin.route("/", |_, _| Reply::ok("fine"));
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = lacquer::config::Seconds(Duration::from_millis(300))
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(lq.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut s).await;
        assert!(r.ends_with("fine"), "{r}");
        held.push(s);
    }
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "connection {i} not closed"
        );
    }
    assert_eq!(get(lq.addr(), "/").await.text(), "fine");
}

/// At shutdown, connections that served several requests and are idle
/// are closed at once (their task is not woken by anything else), and a
/// slow client in the middle of its head is ended by the timeout: the
/// drain leaves none open.
#[tokio::test]
async fn shutdown_closes_reused_idle_connections_and_a_slow_head() {
    let origin = Origin::start().await;
    origin.route("/", |_, n| Reply::ok(format!("fine{n}")));
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = lacquer::config::Seconds(Duration::from_secs(1))
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(lq.addr()).await.unwrap();
        for _ in 0..3 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap();
            let r = read_response(&mut s).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }
        idle.push(s);
    }
    let mut slow = TcpStream::connect(lq.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    sleep_ms(50).await;
    let left = lq.shutdown(Duration::from_secs(8)).await;
    assert_eq!(left, 0, "connections left after the drain");
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "idle connection {i} not closed"
        );
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("fine"),
        "the unfinished head was served"
    );
}

/// A miss whose `If-None-Match` and `Range` the policy set: the backend is
/// asked for the whole object without them, and the client's answer
/// (304, 206) follows the policy's fields.
#[tokio::test]
async fn a_miss_answers_the_conditional_and_range_the_policy_set() {
    let origin = Origin::start().await;
    origin.route("/m304", |_, n| {
        Reply::ok(format!("object {n:03}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"e1\"")
    });
    origin.route("/m206", |_, n| {
        Reply::ok(format!("object {n:03}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"e1\"")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/m304") { set req.http.If-None-Match = {""e1""}; }
            if (req.url == "/m206") { set req.http.Range = "bytes=7-9"; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let c = get(a, "/m304").await;
    assert_eq!(c.status, 304, "{}", c.text());
    let seen = last(&origin, "/m304");
    assert!(values(&seen, "if-none-match").is_empty());
    let r = get(a, "/m206").await;
    assert_eq!((r.status, r.text().as_str()), (206, "001"));
    assert!(values(&last(&origin, "/m206"), "range").is_empty());
}

/// The fields lacquer adds to a backend request are not doubled when the
/// policy set or removed them: `X-Forwarded-For` removed stays removed,
/// `Surrogate-Capability` set is sent as set, `Via` is one line.
#[tokio::test]
async fn fields_lacquer_adds_next_to_the_policys() {
    let origin = Origin::start().await;
    origin.route("/xff", |_, n| Reply::ok(format!("x{n}")));
    origin.route("/xff2", |_, n| Reply::ok(format!("y{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/xff") {
                unset req.http.X-Forwarded-For;
                set req.http.Surrogate-Capability = "abc=ESI/1.0";
            } else {
                set req.http.X-Forwarded-For = "192.0.2.7";
                unset req.http.Surrogate-Capability;
                set req.http.Via = "1.1 front";
            }
            return (pass);
        }"#,
    )
    .await;
    let a = lq.addr();
    get_with(a, "/xff", &[("x-forwarded-for", "203.0.113.9")]).await;
    let seen = last(&origin, "/xff");
    assert!(values(&seen, "x-forwarded-for").is_empty(), "{seen:?}");
    assert_eq!(values(&seen, "surrogate-capability"), ["abc=ESI/1.0"]);
    get_with(
        a,
        "/xff2",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("surrogate-capability", "evil=ESI/1.0"),
        ],
    )
    .await;
    let seen = last(&origin, "/xff2");
    assert_eq!(values(&seen, "x-forwarded-for"), ["192.0.2.7"]);
    let sc = values(&seen, "surrogate-capability");
    assert_eq!(sc.len(), 1, "{sc:?}");
    assert!(!sc[0].contains("evil"), "{sc:?}");
    let via = values(&seen, "via");
    assert!(via.iter().any(|v| v.contains("front")), "{via:?}");
    assert!(via.iter().any(|v| v.contains("lacquer")), "{via:?}");
}

/// vmod header and `set` / `unset` of one name mixed in one subroutine:
/// every read in between, and the backend, see the result of each step.
#[tokio::test]
async fn vmod_header_steps_between_sets_and_unsets() {
    let origin = Origin::start().await;
    origin.route("/hv", |_, n| Reply::ok(format!("h{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        import header;
        sub vcl_recv {
            set req.http.X-H = "a";
            header.append(req.http.X-H, "b");
            set req.http.X-Step1 = header.get(req.http.X-H, "^b$");
            unset req.http.X-H;
            header.append(req.http.X-H, "c");
            set req.http.X-Z = "z";
            header.append(req.http.X-H, "d");
            header.remove(req.http.X-H, "^c$");
            set req.http.X-Step2 = req.http.X-H;
            unset req.http.X-Z;
            header.copy(req.http.X-Src, req.http.X-Dst);
            set req.http.X-Src = "replaced";
            return (pass);
        }"#,
    )
    .await;
    get_with(
        lq.addr(),
        "/hv",
        &[
            ("x-h", "client"),
            ("x-z", "client"),
            ("x-src", "s1"),
            ("x-src", "s2"),
        ],
    )
    .await;
    let seen = last(&origin, "/hv");
    assert_eq!(values(&seen, "x-step1"), ["b"]);
    assert_eq!(values(&seen, "x-h"), ["d"]);
    assert_eq!(values(&seen, "x-step2"), ["d"]);
    assert!(values(&seen, "x-z").is_empty());
    assert_eq!(values(&seen, "x-dst"), ["s1", "s2"]);
    assert_eq!(values(&seen, "x-src"), ["replaced"]);
}

/// Two clients at once on a slow miss with `Vary` on a field the policy
/// makes: those the policy gives the same value share one fetch whatever
/// they sent; another value gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_misses_match_the_variant_on_the_policys_value() {
    let origin = Origin::start().await;
    origin.route("/co", |seen, n| {
        Reply::ok(format!("v{n} {}", seen.header_or_none("x-dev")))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Dev")
            .delay(Duration::from_millis(400))
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            unset req.http.X-Dev;
            if (req.http.User-Agent ~ "Mobile") { set req.http.X-Dev = "m"; }
            else { set req.http.X-Dev = "d"; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let first = tokio::spawn(async move {
        get_with(a, "/co", &[("user-agent", "Mobile"), ("x-dev", "d")]).await
    });
    wait_until("the first fetch", async || origin.hits("/co") == 1).await;
    let same = tokio::spawn(async move {
        get_with(a, "/co", &[("user-agent", "Mobile Two"), ("x-dev", "zz")]).await
    });
    let other =
        tokio::spawn(
            async move { get_with(a, "/co", &[("user-agent", "Desk"), ("x-dev", "m")]).await },
        );
    let (first, same, other) = (
        first.await.unwrap(),
        same.await.unwrap(),
        other.await.unwrap(),
    );
    assert_eq!(first.text(), "v1 m");
    assert_eq!(same.text(), "v1 m");
    assert!(other.text().ends_with(" d"), "{}", other.text());
    assert_eq!(origin.hits("/co"), 2);
}

/// HEAD and GET after policy changes; a HEAD turned GET for the cache
/// carries the fields too.
#[tokio::test]
async fn a_head_miss_fetch_carries_the_policys_fields() {
    let origin = Origin::start().await;
    cacheable(&origin, "/hd");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-A = "head";
            unset req.http.Cookie;
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let h = send(
        a,
        "HEAD",
        "/hd",
        &[("cookie", "a=1"), ("cookie", "b=2")],
        "",
    )
    .await;
    assert_eq!(h.status, 200);
    let seen = last(&origin, "/hd");
    assert_eq!(values(&seen, "x-a"), ["head"]);
    assert!(values(&seen, "cookie").is_empty());
}

/// A field set to a value read from another pending field, to itself, and
/// a name never sent unset then set: all read and sent as the map would
/// hold them.
#[tokio::test]
async fn fields_set_from_other_changed_fields() {
    let origin = Origin::start().await;
    origin.route("/chain", |seen, n| {
        let order: Vec<String> = seen
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("x-"))
            .filter(|k| k != "x-forwarded-for")
            .collect();
        Reply::ok(format!("c{n} {}", order.join(",")))
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-One = "1";
            set req.http.X-Two = req.http.X-One + "2";
            set req.http.X-Two = req.http.X-Two + "2";
            unset req.http.X-Never;
            set req.http.X-Three = req.http.X-Two + req.http.X-Client;
            set req.http.X-Never = "now";
            unset req.http.X-One;
            set req.http.X-One = "again";
            set req.http.X-Client = req.http.X-Client + "!";
            return (pass);
        }"#,
    )
    .await;
    let got = get_with(lq.addr(), "/chain", &[("x-client", "c"), ("x-first", "f")]).await;
    let seen = last(&origin, "/chain");
    assert_eq!(values(&seen, "x-two"), ["122"]);
    assert_eq!(values(&seen, "x-three"), ["122c"]);
    assert_eq!(values(&seen, "x-never"), ["now"]);
    assert_eq!(values(&seen, "x-one"), ["again"]);
    assert_eq!(values(&seen, "x-client"), ["c!"]);
    assert_eq!(
        got.text(),
        "c1 x-client,x-first,x-two,x-three,x-never,x-one"
    );
}

/// ESI variables and choices read the page's fields as the policy left
/// them (a rewritten `Cookie`, a field set, one removed), on the miss and
/// on the hit; a nested page's own changes reach its fragments, whether
/// the nested page was fetched or found in the cache.
#[tokio::test]
async fn esi_variables_and_nested_pages_follow_the_policys_fields() {
    let origin = Origin::start().await;
    origin.route("/vars", |_, _| {
        Reply::ok(
            "<esi:choose><esi:when test=\"$(HTTP_COOKIE{group})=='beta'\">beta</esi:when><esi:otherwise>stable</esi:otherwise></esi:choose>|<esi:vars>$(HTTP_USER_AGENT)|$(HTTP_REFERER)</esi:vars>|<esi:include src=\"/mid\"/>",
        )
        .header("surrogate-control", "content=\"ESI/1.0\"")
        .header("content-type", "text/html")
        .header("cache-control", "max-age=60")
    });
    origin.route("/mid", |_, _| {
        Reply::ok("(<esi:include src=\"/leaf\"/>)")
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=60")
    });
    origin.route("/leaf", |seen, n| {
        Reply::ok(format!(
            "leaf{n} dev={} mid={} gone={} cookie={}",
            seen.header_or_none("x-dev"),
            seen.header_or_none("x-mid"),
            seen.header_or_none("x-gone"),
            values(seen, "cookie").join("|")
        ))
        .header("cache-control", "no-store")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.esi_level == 0) {
                set req.http.X-Dev = "m";
                unset req.http.X-Gone;
                set req.http.Cookie = "group=beta";
                set req.http.User-Agent = "policy-agent";
                unset req.http.Referer;
            }
            if (req.esi_level == 1) {
                set req.http.X-Mid = "mid";
                unset req.http.Cookie;
            }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    let client = [
        ("x-gone", "g"),
        ("cookie", "group=stable"),
        ("cookie", "x=1"),
        ("x-dev", "d"),
        ("user-agent", "client-agent"),
        ("referer", "http://r.example/"),
    ];
    let first = get_with(a, "/vars", &client).await;
    assert_eq!(
        first.text(),
        "beta|policy-agent||(leaf1 dev=m mid=mid gone=none cookie=)"
    );
    wait_stored(&lq, "/vars").await;
    wait_stored(&lq, "/mid").await;
    let second = get_with(a, "/vars", &client).await;
    assert_eq!(
        second.text(),
        "beta|policy-agent||(leaf2 dev=m mid=mid gone=none cookie=)"
    );
    assert_eq!((origin.hits("/vars"), origin.hits("/mid")), (1, 1));
}

/// The soft-purge header the policy set makes a PURGE soft (the object
/// stays for grace and is delivered stale once); a surrogate-key header
/// the policy removed makes it a purge of the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_mode_and_key_from_fields_the_policy_changed() {
    let origin = Origin::start().await;
    origin.route("/soft", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=60")
    });
    cacheable_with(&origin, "/t1", &[("surrogate-key", "t")]);
    cacheable_with(&origin, "/t2", &[("surrogate-key", "t")]);
    let lq = with_policy_and(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.method == "PURGE") {
                if (req.url == "/soft") { set req.http.X-Purge = "soft"; }
                unset req.http.Surrogate-Key;
                return (purge);
            }
            return (hash);
        }"#,
        |c| c.cache.grace = lacquer::config::Seconds(Duration::from_secs(30)),
    )
    .await;
    let a = lq.addr();
    for p in ["/soft", "/t1", "/t2"] {
        get(a, p).await;
        wait_stored(&lq, p).await;
    }
    let got = send(a, "PURGE", "/soft", &[], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let stale = get(a, "/soft").await;
    assert_eq!(stale.text(), "v1", "soft purge: delivered stale once");
    wait_fresh(&lq, "/soft").await;
    assert_eq!(get(a, "/soft").await.text(), "v2");
    let got = send(a, "PURGE", "/t1", &[("surrogate-key", "t")], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(get(a, "/t1").await.text(), "/t1 v2", "the URL purged");
    assert!(is_hit(&get(a, "/t2").await), "the key was not purged");
}

/// A large answer read slowly by its client, for several times the
/// header-read timeout, is delivered whole: the timeout is for reading a
/// head, not for the client reading the answer.
#[tokio::test]
async fn a_slow_reader_of_a_large_answer_is_not_cut_by_the_header_timeout() {
    let origin = Origin::start().await;
    let size = 4 * 1024 * 1024;
    origin.route("/big", move |_, _| {
        Reply::ok(vec![b'b'; size]).header("cache-control", "no-store")
    });
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = lacquer::config::Seconds(Duration::from_millis(200))
    })
    .await;
    let mut s = TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = read_response_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    while got < size {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got += n,
        }
        // About 1.2 s in all: six times the timeout.
        if started.elapsed() < Duration::from_millis(1200) {
            sleep_ms(100).await;
        }
    }
    assert_eq!(got, size, "answer cut after {:?}", started.elapsed());
}

/// Two `Range` lines (ignored: the whole answer) replaced by the policy
/// with one: a 206 from the hit; two `If-None-Match` lines replaced by a
/// non-matching one: the whole answer.
#[tokio::test]
async fn two_client_lines_replaced_by_one_on_a_hit() {
    let origin = Origin::start().await;
    origin.route("/two", |_, n| {
        Reply::ok(format!("two lines {n}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"t1\"")
    });
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.http.X-Fix-Range) { set req.http.Range = "bytes=0-2"; }
            if (req.http.X-Fix-Inm) { set req.http.If-None-Match = {""other""}; }
            return (hash);
        }"#,
    )
    .await;
    let a = lq.addr();
    get(a, "/two").await;
    wait_stored(&lq, "/two").await;
    let two = [("range", "bytes=0-1"), ("range", "bytes=4-5")];
    let whole = get_with(a, "/two", &two).await;
    assert_eq!(whole.status, 200, "two Range lines: the whole answer");
    let fixed = get_with(a, "/two", &[two[0], two[1], ("x-fix-range", "1")]).await;
    assert_eq!((fixed.status, fixed.text().as_str()), (206, "two"));
    let inm = [("if-none-match", "\"x\""), ("if-none-match", "\"t1\"")];
    assert_eq!(get_with(a, "/two", &inm).await.status, 304);
    let replaced = get_with(a, "/two", &[inm[0], inm[1], ("x-fix-inm", "1")]).await;
    assert_eq!(replaced.status, 200);
    assert_eq!(origin.hits("/two"), 1);
}

/// Changes made in `vcl_miss` and `vcl_pass` (after the lookup) reach the
/// backend request, on top of those of `vcl_recv`.
#[tokio::test]
async fn changes_in_vcl_miss_and_vcl_pass_reach_the_backend() {
    let origin = Origin::start().await;
    cacheable(&origin, "/miss");
    origin.route("/pass", |_, n| Reply::ok(format!("p{n}")));
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            set req.http.X-Recv = "r";
            set req.http.X-Both = "recv";
            if (req.url == "/pass") { return (pass); }
            return (hash);
        }
        sub vcl_miss {
            set req.http.X-Miss = "m";
            unset req.http.X-Recv;
            set req.http.X-Both = "miss";
        }
        sub vcl_pass {
            set req.http.X-Pass = "p";
            unset req.http.X-Client;
            set req.http.X-Both = "pass";
        }"#,
    )
    .await;
    let a = lq.addr();
    get_with(a, "/miss", &[("x-client", "c")]).await;
    let seen = last(&origin, "/miss");
    assert_eq!(values(&seen, "x-miss"), ["m"]);
    assert!(values(&seen, "x-recv").is_empty());
    assert_eq!(values(&seen, "x-both"), ["miss"]);
    assert_eq!(values(&seen, "x-client"), ["c"]);
    get_with(a, "/pass", &[("x-client", "c")]).await;
    let seen = last(&origin, "/pass");
    assert_eq!(values(&seen, "x-pass"), ["p"]);
    assert_eq!(values(&seen, "x-recv"), ["r"]);
    assert_eq!(values(&seen, "x-both"), ["pass"]);
    assert!(values(&seen, "x-client").is_empty());
}
