//! Each vcl-lite subroutine wired into lacquer, seen from the client and
//! the origin: vcl_hit, vcl_miss, vcl_pass, vcl_deliver, vcl_synth,
//! vcl_backend_fetch, vcl_backend_response, vcl_backend_error, restarts
//! and req.grace.
use crate::common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// An origin address where nothing listens.
async fn dead_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

const DELIVER: &str = r#"
sub vcl_deliver {
    set resp.http.X-Obj-Hits = obj.hits;
    set resp.http.X-Uncacheable = obj.uncacheable;
    unset resp.http.Via;
    if (req.url == "/teapot") {
        set resp.status = 418;
        set resp.reason = "I'm a teapot";
    }
}
"#;

#[tokio::test]
async fn vcl_deliver_changes_hits_misses_and_passes() {
    let origin = Origin::start().await;
    cacheable(&origin, "/c");
    cacheable(&origin, "/teapot");
    origin.route("/post", |_, _| Reply::ok("posted"));
    let lq = with_policy(origin.addr, DELIVER).await;
    let a = lq.addr();
    let miss = get(a, "/c").await;
    assert_eq!(miss.header("x-obj-hits"), Some("0"));
    assert_eq!(miss.header("x-uncacheable"), Some("false"));
    assert!(miss.header("via").is_none());
    wait_stored(&lq, "/c").await;
    for n in 1..=2 {
        let hit = get(a, "/c").await;
        assert!(is_hit(&hit));
        assert_eq!(hit.header("x-obj-hits"), Some(n.to_string().as_str()));
        assert!(hit.header("via").is_none());
    }
    let pass = send(a, "POST", "/post", &[], "x").await;
    assert_eq!(pass.header("x-uncacheable"), Some("true"));
    assert_eq!(pass.text(), "posted");
    let tea = raw(
        a,
        b"GET /teapot HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(tea.starts_with("HTTP/1.1 418 I'm a teapot\r\n"), "{tea}");
}

/// `vcl_deliver` setting fields on a hit, some new (kept beside the
/// delivery's own fields while the response's map is empty), some the
/// object or the delivery has, one set twice, one set then removed, one
/// read back.
const DELIVER_SETS: &str = r#"
sub vcl_deliver {
    unset resp.http.Via;
    unset resp.http.X-Varnish;
    set resp.http.X-Served = "HIT";
    set resp.http.X-Cache = "policy";
    set resp.http.X-Twice = "one";
    set resp.http.X-Twice = "two";
    set resp.http.X-Gone = "soon";
    unset resp.http.X-Gone;
    set resp.http.X-Read = "was " + resp.http.X-Served + "/" + resp.http.X-Twice;
    if (req.url == "/c2") {
        set resp.http.Age = "77";
        set resp.http.Etag = {""changed""};
        set resp.http.X-Last = "1";
    }
}
"#;

#[tokio::test]
async fn fields_vcl_deliver_sets_on_a_hit_are_written_once_in_order() {
    let origin = Origin::start().await;
    for path in ["/c1", "/c2"] {
        origin.route(path, |_, _| {
            Reply::ok("body")
                .header("cache-control", "max-age=600")
                .header("etag", "\"e\"")
        });
    }
    let lq = with_policy(origin.addr, DELIVER_SETS).await;
    let a = lq.addr();
    for path in ["/c1", "/c2"] {
        get(a, path).await;
        wait_stored(&lq, path).await;
    }
    // The `Host` `get` sent: the same object.
    let req = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
    };
    let wait = std::time::Duration::from_secs(5);
    let hit = raw(a, req("/c1").as_bytes(), wait).await;
    assert!(hit.starts_with("HTTP/1.1 200 OK\r\n"), "{hit}");
    assert!(hit.ends_with("\r\n\r\nbody"), "{hit}");
    let lines = field_lines(&hit);
    // Each once, the policy's after the delivery's own, in the order set.
    let at = |line: &str| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == line).collect();
        assert_eq!(found.len(), 1, "{line:?} in {hit}");
        found[0]
    };
    let order = [
        "accept-ranges: bytes",
        "x-served: HIT",
        "x-twice: two",
        "x-read: was HIT/two",
    ]
    .map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{hit}");
    assert!(lines.iter().any(|l| l.starts_with("age: ")), "{hit}");
    // lacquer's own `X-Cache`, replaced: once, with the policy's value.
    at("x-cache: policy");
    assert!(lines.contains(&"etag: \"e\"".to_string()), "{hit}");
    assert_eq!(origin.hits("/c1"), 1);

    // Fields the object (`ETag`) and the delivery (`Age`) have, replaced:
    // one of each name, with the policy's value.
    let hit = raw(a, req("/c2").as_bytes(), wait).await;
    let lines = field_lines(&hit);
    for (name, want) in [
        ("age", "77"),
        ("etag", "\"changed\""),
        ("x-served", "HIT"),
        ("x-last", "1"),
    ] {
        let values: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .collect();
        assert_eq!(values, [want], "{name} in {hit}");
    }
    assert!(!hit.to_ascii_lowercase().contains("x-gone"), "{hit}");
    assert_eq!(origin.hits("/c2"), 1);
}

const SYNTH: &str = r#"
sub vcl_recv {
    if (req.url ~ "^/private") {
        return (synth(403, "go away"));
    }
}

sub vcl_synth {
    set resp.http.X-Synth = "yes";
    set resp.http.Content-Type = "text/html";
    synthetic("<p>sorry: " + resp.status + " " + resp.reason + "</p>");
    return (deliver);
}
"#;

#[tokio::test]
async fn vcl_synth_makes_every_synthetic_answer() {
    let lq = with_policy(dead_address().await, SYNTH).await;
    let a = lq.addr();
    let refused = get(a, "/private/x").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.text(), "<p>sorry: 403 go away</p>");
    assert_eq!(refused.header("x-synth"), Some("yes"));
    assert_eq!(refused.header("content-type"), Some("text/html"));
    // The origin is down: as in Varnish, a failed fetch is answered by
    // vcl_backend_error (here the built-in one's page), not vcl_synth.
    let down = get(a, "/page").await;
    assert!(down.status >= 502 && down.status <= 504, "{}", down.status);
    assert!(
        down.text().contains(&format!("<h1>Error {} ", down.status)),
        "{}",
        down.text()
    );
    assert_eq!(down.header("x-synth"), None);
    assert_eq!(
        down.header("content-length"),
        Some(down.body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn a_fetch_abandoned_in_vcl_backend_error_is_answered_by_vcl_synth() {
    let policy = format!("{SYNTH}\nsub vcl_backend_error {{ return (abandon); }}\n");
    let lq = with_policy(dead_address().await, &policy).await;
    let down = get(lq.addr(), "/page").await;
    assert!(down.status >= 502 && down.status <= 504, "{}", down.status);
    let expected = format!("<p>sorry: {} ", down.status);
    assert!(down.text().starts_with(&expected), "{}", down.text());
    assert_eq!(down.header("x-synth"), Some("yes"));
}

#[tokio::test]
async fn vcl_synth_without_return_goes_on_with_the_builtin_page() {
    let policy = r#"
sub vcl_recv { return (synth(404, "nothing here")); }
sub vcl_synth { set resp.http.X-Seen = resp.reason; synthetic("dropped"); }
"#;
    let lq = with_policy(dead_address().await, policy).await;
    let got = get(lq.addr(), "/").await;
    assert_eq!(got.status, 404);
    // Varnish's built-in vcl_synth replaces the body (`set resp.body`).
    let text = got.text();
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(text.contains("<h1>Error 404 nothing here</h1>"), "{text}");
    assert!(!text.contains("dropped"), "{text}");
    assert_eq!(got.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(got.header("x-seen"), Some("nothing here"));
}

#[tokio::test]
async fn resp_body_replaces_and_synthetic_appends() {
    let policy = r#"
sub vcl_recv { return (synth(418)); }
sub vcl_synth {
    synthetic("lost");
    set resp.body = "a";
    synthetic("b");
    return (deliver);
}
"#;
    let lq = with_policy(dead_address().await, policy).await;
    let got = get(lq.addr(), "/").await;
    assert_eq!(got.status, 418);
    assert_eq!(got.text(), "ab");
}

const HIT_MISS_PASS: &str = r#"
sub vcl_hit {
    if (req.http.x-fresh) {
        return (pass);
    }
    if (obj.http.x-kind == "secret") {
        return (synth(403, "hidden"));
    }
}

sub vcl_miss {
    if (req.url ~ "^/nomiss") {
        return (synth(404, "not cached here"));
    }
    set req.http.x-missed = "1";
}

sub vcl_pass {
    set req.http.x-passed = "1";
}
"#;

#[tokio::test]
async fn vcl_hit_passes_vcl_miss_answers_vcl_pass_sees_the_request() {
    let origin = Origin::start().await;
    origin.route("/h", |seen, n| {
        let tag = format!(
            "missed={} passed={}",
            seen.headers.contains_key("x-missed"),
            seen.headers.contains_key("x-passed")
        );
        Reply::ok(format!("h v{n} {tag}")).header("cache-control", "max-age=60")
    });
    origin.route("/s", |_, n| {
        Reply::ok(format!("s v{n}"))
            .header("cache-control", "max-age=60")
            .header("x-kind", "secret")
    });
    cacheable(&origin, "/nomiss");
    let lq = with_policy(origin.addr, HIT_MISS_PASS).await;
    let a = lq.addr();
    assert_eq!(get(a, "/h").await.text(), "h v1 missed=true passed=false");
    wait_stored(&lq, "/h").await;
    let passed = get_with(a, "/h", &[("x-fresh", "1")]).await;
    assert_eq!(passed.x_cache(), "PASS");
    assert_eq!(passed.text(), "h v2 missed=false passed=true");
    let hit = get(a, "/h").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "h v1 missed=true passed=false");
    assert_eq!(origin.hits("/h"), 2);

    assert_eq!(get(a, "/s").await.text(), "s v1");
    wait_stored(&lq, "/s").await;
    let hidden = get(a, "/s").await;
    assert_eq!(hidden.status, 403);
    assert!(hidden.text().contains("hidden"));

    let nomiss = get(a, "/nomiss").await;
    assert_eq!(nomiss.status, 404);
    assert!(nomiss.text().contains("not cached here"));
    assert_eq!(origin.hits("/nomiss"), 0);
}

const BACKEND_FETCH: &str = r#"
sub vcl_backend_fetch {
    set bereq.http.X-From-Fetch = "yes " + bereq.method;
    unset bereq.http.X-Secret;
    set bereq.url = regsub(bereq.url, "^/old/", "/new/");
    if (bereq.url ~ "^/blocked") {
        return (abandon);
    }
}
"#;

#[tokio::test]
async fn vcl_backend_fetch_changes_what_the_origin_sees() {
    let origin = Origin::start().await;
    origin.route("/new/x", |seen, n| {
        let from = seen.header_or_none("x-from-fetch");
        Reply::ok(format!(
            "new v{n} from={from} secret={}",
            seen.headers.contains_key("x-secret")
        ))
        .header("cache-control", "max-age=60")
    });
    cacheable(&origin, "/blocked");
    let lq = with_policy(origin.addr, BACKEND_FETCH).await;
    let a = lq.addr();
    let got = get_with(a, "/old/x", &[("x-secret", "s3cr3t")]).await;
    assert_eq!(got.text(), "new v1 from=yes GET secret=false");
    wait_stored(&lq, "/old/x").await;
    assert!(
        is_hit(&get(a, "/old/x").await),
        "stored under the client's URL"
    );
    assert_eq!(origin.hits("/new/x"), 1);
    assert_eq!(origin.hits("/old/x"), 0);
    let blocked = get(a, "/blocked").await;
    assert_eq!(blocked.status, 503);
    assert_eq!(origin.hits("/blocked"), 0);
}

const BACKEND_ERROR: &str = r#"
sub vcl_backend_error {
    if (bereq.retries < 1) {
        return (retry);
    }
    set beresp.status = 503;
    set beresp.http.X-Error = "yes";
    set beresp.http.Content-Type = "text/plain";
    synthetic("origin down after " + bereq.retries + " retry");
    return (deliver);
}

sub vcl_deliver {
    set resp.http.X-Delivered = "yes";
}
"#;

#[tokio::test]
async fn vcl_backend_error_answers_when_the_origin_is_down() {
    let lq = with_policy(dead_address().await, BACKEND_ERROR).await;
    let got = get(lq.addr(), "/x").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "origin down after 1 retry");
    assert_eq!(got.header("x-error"), Some("yes"));
    assert_eq!(got.header("x-delivered"), Some("yes"), "then vcl_deliver");
}

const BACKEND_RESPONSE: &str = r#"
sub vcl_backend_response {
    if (beresp.status == 404) {
        set beresp.status = 200;
        set beresp.http.X-Was = "404";
        set beresp.ttl = 60s;
    }
    if (bereq.url ~ "^/flaky" && beresp.status >= 500 && bereq.retries < 3) {
        return (retry);
    }
    if (bereq.url ~ "^/refuse") {
        return (abandon);
    }
    if (bereq.url ~ "^/broken") {
        return (error(502, "bad origin"));
    }
}
"#;

#[tokio::test]
async fn vcl_backend_response_sets_status_retries_abandons_and_errors() {
    let origin = Origin::start().await;
    origin.route("/gone", |_, n| Reply::new(404).body(format!("gone {n}")));
    origin.route("/flaky", |_, n| {
        if n < 3 {
            Reply::new(503).body("busy")
        } else {
            Reply::ok("finally").header("cache-control", "max-age=60")
        }
    });
    cacheable(&origin, "/refuse");
    cacheable(&origin, "/broken");
    let lq = with_policy(origin.addr, BACKEND_RESPONSE).await;
    let a = lq.addr();
    let gone = get(a, "/gone").await;
    assert_eq!((gone.status, gone.header("x-was")), (200, Some("404")));
    wait_stored(&lq, "/gone").await;
    assert!(
        is_hit(&get(a, "/gone").await),
        "stored with the policy's TTL"
    );
    let flaky = get(a, "/flaky").await;
    assert_eq!((flaky.status, flaky.text().as_str()), (200, "finally"));
    assert_eq!(origin.hits("/flaky"), 3);
    assert_eq!(get(a, "/refuse").await.status, 503);
    let broken = get(a, "/broken").await;
    assert_eq!(broken.status, 502);
    assert!(broken.text().contains("bad origin"), "{}", broken.text());
}

const RESTART: &str = r#"
sub vcl_deliver {
    if (resp.status == 404 && req.restarts == 0) {
        set req.url = "/fallback";
        return (restart);
    }
    set resp.http.X-Restarts = req.restarts;
}

sub vcl_recv {
    if (req.url == "/loop") {
        return (restart);
    }
}
"#;

#[tokio::test]
async fn restart_starts_over_with_the_changed_request_and_is_limited() {
    let origin = Origin::start().await;
    origin.route("/fallback", |_, _| Reply::ok("fallback"));
    let lq = with_policy(origin.addr, RESTART).await;
    let a = lq.addr();
    let got = get(a, "/missing").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "fallback");
    assert_eq!(got.header("x-restarts"), Some("1"));
    assert_eq!(origin.hits("/missing"), 1);
    let looped = get(a, "/loop").await;
    assert_eq!(looped.status, 503);
    assert!(looped.text().contains("too many restarts"));
}

const GRACE: &str = r#"
sub vcl_recv {
    if (req.http.x-no-grace) {
        set req.grace = 0s;
    }
}
sub vcl_backend_response {
    set beresp.ttl = 1s;
    set beresp.grace = 1h;
}
"#;

#[tokio::test]
async fn req_grace_narrows_grace_for_one_request() {
    let origin = Origin::start().await;
    cacheable(&origin, "/g");
    let lq = with_policy(origin.addr, GRACE).await;
    let a = lq.addr();
    assert_eq!(get(a, "/g").await.text(), "/g v1");
    expire(&lq, &origin).await;
    let fresh = get_with(a, "/g", &[("x-no-grace", "1")]).await;
    assert_eq!(fresh.text(), "/g v2", "no grace: fetched before answering");
    expire(&lq, &origin).await;
    let stale = get(a, "/g").await;
    assert_eq!(stale.text(), "/g v2", "grace: the stale object");
    assert_eq!(stale.x_cache(), "STALE");
}

const REVALIDATED: &str = r#"
sub vcl_backend_response {
    set beresp.ttl = 1s;
    set beresp.grace = 0s;
    if (beresp.was_304) {
        set beresp.http.X-Revalidated = "yes";
    }
}
"#;

#[tokio::test]
async fn vcl_backend_response_runs_on_a_304_revalidation() {
    let origin = Origin::start().await;
    origin.route("/r", |seen, n| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"e1\"")
        {
            Reply::new(304).header("etag", "\"e1\"")
        } else {
            Reply::ok(format!("body {n}")).header("etag", "\"e1\"")
        }
    });
    let lq = with_policy(origin.addr, REVALIDATED).await;
    let a = lq.addr();
    let first = get(a, "/r").await;
    assert_eq!(first.text(), "body 1");
    assert!(first.header("x-revalidated").is_none());
    expire(&lq, &origin).await;
    let again = get(a, "/r").await;
    assert_eq!(again.text(), "body 1", "the stored body, revalidated");
    assert_eq!(again.header("x-revalidated"), Some("yes"));
    wait_fresh(&lq, "/r").await;
    assert!(is_hit(&get(a, "/r").await), "the policy's TTL again");
    assert_eq!(origin.hits("/r"), 2);
}

#[tokio::test]
async fn vcl_hash_may_change_the_request_as_in_varnish() {
    let origin = Origin::start().await;
    cacheable(&origin, "/h");
    let lq = with_policy(
        origin.addr,
        r#"
sub vcl_hash {
    set req.http.X-Hashed = "by vcl_hash";
    hash_data(req.url);
    return (lookup);
}
"#,
    )
    .await;
    assert_eq!(get(lq.addr(), "/h").await.status, 200);
    let seen = origin.last("/h").expect("the miss reached the origin");
    assert_eq!(seen.header_or_none("x-hashed"), "by vcl_hash");
}

#[tokio::test]
async fn a_ttl_with_an_explicit_deliver_stores_what_cache_control_forbids() {
    let origin = Origin::start().await;
    for path in ["/forced", "/fell-through"] {
        let p = path.to_string();
        origin.route(path, move |_, n| {
            Reply::ok(format!("{p} v{n}")).header("cache-control", "no-store, private")
        });
    }
    let lq = with_policy(
        origin.addr,
        r#"
sub vcl_backend_response {
    set beresp.ttl = 60s;
    if (bereq.url == "/forced") {
        return (deliver);
    }
}
"#,
    )
    .await;
    for path in ["/forced", "/fell-through"] {
        get(lq.addr(), path).await;
        get(lq.addr(), path).await;
    }
    assert_eq!(
        origin.hits("/forced"),
        1,
        "return (deliver) with a TTL stores it"
    );
    assert_eq!(
        origin.hits("/fell-through"),
        2,
        "falling through, no-store stands"
    );
}

const BGFETCH: &str = r#"
sub vcl_backend_response {
    if (beresp.status >= 500 && bereq.is_bgfetch) {
        return (abandon);
    }
    set beresp.http.X-Bgfetch = bereq.is_bgfetch;
    set beresp.ttl = 1s;
    set beresp.grace = 1h;
}
"#;

/// Varnish's recipe: a background refresh that gets a 5xx is abandoned, so
/// the stale object keeps being served; a client's own fetch is not a
/// background one.
#[tokio::test]
async fn bereq_is_bgfetch_tells_background_refreshes_apart() {
    let origin = Origin::start().await;
    origin.route("/g", |_, n| match n {
        1 | 2 => Reply::ok(format!("/g v{n}")).header("cache-control", "max-age=1"),
        _ => Reply::new(500).body("broken"),
    });
    let lq = with_policy(origin.addr, BGFETCH).await;
    let a = lq.addr();
    let first = get(a, "/g").await;
    assert_eq!(first.text(), "/g v1");
    assert_eq!(first.header("x-bgfetch"), Some("false"));
    expire(&lq, &origin).await;
    // Stale in grace: served at once, refreshed in the background (v2).
    assert_eq!(get(a, "/g").await.text(), "/g v1");
    wait_fresh(&lq, "/g").await;
    let refreshed = get(a, "/g").await;
    assert_eq!(refreshed.text(), "/g v2");
    assert_eq!(refreshed.header("x-bgfetch"), Some("true"));
    expire(&lq, &origin).await;
    // The next refresh gets a 500: abandoned, v2 stays.
    assert_eq!(get(a, "/g").await.text(), "/g v2");
    for _ in 0..100 {
        if origin.hits("/g") == 3 {
            break;
        }
        sleep_ms(10).await;
    }
    assert_eq!(origin.hits("/g"), 3);
    sleep_ms(50).await;
    let after = get(a, "/g").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.text(), "/g v2");
}

const PRODUCTION_IDIOMS: &str = r#"
sub vcl_recv {
    set req.http.X-Level = req.esi_level;
    if (req.url == "/broken") {
        return (fail("no such page: " + req.url));
    }
}
sub vcl_backend_response {
    set beresp.do_stream = true;
    set beresp.storage_hint = "static";
    if (bereq.url == "/page") {
        set beresp.do_esi = true;
    }
    if (bereq.url == "/hfp") {
        set beresp.ttl = 30s;
        return (pass);
    }
    set beresp.reason = "Fine";
    set beresp.http.X-Reason = beresp.reason;
}
sub vcl_deliver {
    if (obj.hits) {
        set resp.http.X-Hit = "yes";
    }
}
"#;

/// Constructs the corpus of production VCL uses that Varnish accepts:
/// `req.esi_level`, `beresp.do_stream`/`storage_hint` (accepted), an INT as
/// a condition (Magento's `if (obj.hits)`), `return (pass)` without a
/// duration in vcl_backend_response, `return (fail("…"))`, `beresp.reason`.
#[tokio::test]
async fn production_vcl_idioms_run_with_varnish_meaning() {
    let origin = Origin::start().await;
    origin.route("/page", |_, _| {
        Reply::ok("<p><esi:include src=\"/frag\"/></p>").header("cache-control", "max-age=60")
    });
    origin.route("/frag", |seen, _| {
        let level = seen
            .headers
            .get("x-level")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("level={level}")).header("cache-control", "max-age=60")
    });
    cacheable(&origin, "/hfp");
    let lq = with_policy(origin.addr, PRODUCTION_IDIOMS).await;
    let a = lq.addr();
    let page = get(a, "/page").await;
    assert_eq!(page.text(), "<p>level=1</p>");
    assert_eq!(page.header("x-reason"), Some("Fine"));
    assert_eq!(page.header("x-hit"), None);
    assert_eq!(origin.last("/page").unwrap().headers["x-level"], "0");
    assert_eq!(get(a, "/page").await.header("x-hit"), Some("yes"));
    // Hit-for-pass for the answer's TTL: both reach the origin.
    get(a, "/hfp").await;
    get(a, "/hfp").await;
    assert_eq!(origin.hits("/hfp"), 2);
    let failed = get(a, "/broken").await;
    assert_eq!(failed.status, 503);
    assert_eq!(origin.hits("/broken"), 0);
}

const HIT_MISS: &str = r#"
sub vcl_hit {
    if (req.http.X-Refresh == "miss") {
        return (miss);
    }
    if (req.http.X-Refresh == "fetch") {
        return (fetch);
    }
}
"#;

/// Varnish 4/5 policies: `return (miss)` (5.x) or `return (fetch)` (4.0)
/// from vcl_hit fetch the object again and store the new one.
#[tokio::test]
async fn miss_and_fetch_from_vcl_hit_refetch_as_older_varnish_did() {
    let origin = Origin::start().await;
    cacheable(&origin, "/p");
    let lq = with_policy(origin.addr, HIT_MISS).await;
    let a = lq.addr();
    assert_eq!(get(a, "/p").await.text(), "/p v1");
    assert_eq!(get(a, "/p").await.text(), "/p v1");
    assert_eq!(
        get_with(a, "/p", &[("X-Refresh", "miss")]).await.text(),
        "/p v2"
    );
    assert_eq!(get(a, "/p").await.text(), "/p v2");
    assert_eq!(
        get_with(a, "/p", &[("X-Refresh", "fetch")]).await.text(),
        "/p v3"
    );
    assert_eq!(get(a, "/p").await.text(), "/p v3");
    assert_eq!(origin.hits("/p"), 3);
}

const TIMEOUTS: &str = r#"
sub vcl_backend_fetch {
    if (bereq.url == "/impatient") {
        set bereq.first_byte_timeout = 200ms;
    }
    set bereq.http.X-Timeout = bereq.first_byte_timeout;
}
"#;

/// `bereq.first_byte_timeout` for one fetch: a slow answer fails that fetch
/// only (503 from the built-in vcl_backend_error); others keep the
/// backend's timeout.
#[tokio::test]
async fn bereq_timeouts_apply_to_one_fetch() {
    let origin = Origin::start().await;
    for path in ["/impatient", "/patient"] {
        origin.route(path, |_, _| {
            Reply::ok("late")
                .header("cache-control", "no-store")
                .delay(Duration::from_millis(600))
        });
    }
    let lq = with_policy(origin.addr, TIMEOUTS).await;
    let a = lq.addr();
    let impatient = get(a, "/impatient").await;
    assert_eq!(impatient.status, 503);
    assert_eq!(
        origin
            .last("/impatient")
            .unwrap()
            .header_or_none("x-timeout"),
        "0.200"
    );
    let patient = get(a, "/patient").await;
    assert_eq!(patient.status, 200);
    assert_eq!(patient.text(), "late");
}
