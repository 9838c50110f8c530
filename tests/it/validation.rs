//! Validation (RFC 9111 §4.3, RFC 9110 §13): revalidating stale objects with
//! the origin, answering clients' conditional requests from the cache,
//! no-cache, must-revalidate and stale-if-error.
use crate::common::*;

use lacquer::config::Seconds;
use std::time::Duration;

/// lacquer that keeps expired objects for revalidation (no grace, so an
/// expired object is revalidated before it is delivered).
async fn lacquer_revalidating(origin: &Origin) -> lacquer::server::Running {
    lacquer_with(origin, |c| {
        c.cache.grace = Seconds(Duration::ZERO);
        c.cache.keep = Seconds(Duration::from_secs(60));
    })
    .await
}

fn seen_header(seen: &Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Routes `path` to answer `body` with `cache_control` the first time, and a
/// 500 ("origin broke") after that.
fn route_then_fail(origin: &Origin, path: &str, body: &'static str, cache_control: &'static str) {
    origin.route(path, move |_, n| {
        if n == 1 {
            Reply::ok(body).header("cache-control", cache_control)
        } else {
            Reply::new(500).body("origin broke")
        }
    });
}

// ---------------------------------------------------------------- revalidation

/// Lets the object at `path` (stored once, `max-age=1`) expire and GETs it:
/// the origin's second request. Returns the response and that request.
async fn revalidate(origin: &Origin, lq: &lacquer::server::Running, path: &str) -> (Got, Seen) {
    expire(lq, origin).await;
    let g = get(lq.addr(), path).await;
    assert_eq!(origin.hits(path), 2);
    (g, origin.last(path).unwrap())
}

/// After `revalidate`, GETs `path` again: a hit with `body`, fresh again
/// without another request to the origin.
async fn assert_fresh_again(
    origin: &Origin,
    lq: &lacquer::server::Running,
    path: &str,
    body: &str,
) -> Got {
    wait_fresh(lq, path).await;
    let g = get(lq.addr(), path).await;
    assert!(
        is_hit(&g),
        "fresh again after revalidation: {:?}",
        g.x_cache()
    );
    assert_eq!(g.text(), body);
    assert_eq!(origin.hits(path), 2);
    g
}

#[tokio::test]
async fn stale_etag_is_revalidated_with_if_none_match() {
    let origin = Origin::start().await;
    let path = "/val/reval/etag";
    origin.route(path, |seen, n| {
        if n == 1 {
            Reply::ok("original body")
                .header("cache-control", "max-age=1")
                .header("etag", "\"v1\"")
                .header("x-extra", "old")
                .header("content-type", "text/plain")
        } else if seen_header(seen, "if-none-match").as_deref() == Some("\"v1\"") {
            Reply::new(304)
                .header("cache-control", "max-age=60")
                .header("etag", "\"v1\"")
                .header("x-extra", "new")
        } else {
            Reply::ok("unconditional refetch").header("cache-control", "max-age=60")
        }
    });
    let lq = lacquer_revalidating(&origin).await;
    let first = get(lq.addr(), path).await;
    assert_eq!(first.text(), "original body");
    assert_eq!(first.header("x-extra"), Some("old"));

    let (second, seen) = revalidate(&origin, &lq, path).await;
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(
        seen_header(&seen, "if-none-match").as_deref(),
        Some("\"v1\"")
    );
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "original body");
    assert_eq!(second.header("x-extra"), Some("new"));
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_eq!(second.header("content-type"), Some("text/plain"));
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert_eq!(second.header("content-length"), Some("13"));

    let third = assert_fresh_again(&origin, &lq, path, "original body").await;
    assert_eq!(third.header("x-extra"), Some("new"));
}

#[tokio::test]
async fn stale_last_modified_is_revalidated_with_if_modified_since() {
    let origin = Origin::start().await;
    let path = "/val/reval/last-modified";
    let lm = http_date(-3600);
    let lm2 = lm.clone();
    origin.route(path, move |seen, n| {
        if n == 1 {
            Reply::ok("dated body")
                .header("cache-control", "max-age=1")
                .header("last-modified", &lm2)
                .header("x-extra", "old")
        } else if seen_header(seen, "if-modified-since").as_deref() == Some(lm2.as_str()) {
            Reply::new(304)
                .header("cache-control", "max-age=60")
                .header("x-extra", "new")
        } else {
            Reply::ok("unconditional refetch").header("cache-control", "max-age=60")
        }
    });
    let lq = lacquer_revalidating(&origin).await;
    let first = get(lq.addr(), path).await;
    assert_eq!(first.text(), "dated body");

    let (second, seen) = revalidate(&origin, &lq, path).await;
    assert_eq!(
        seen_header(&seen, "if-modified-since").as_deref(),
        Some(lm.as_str())
    );
    assert_eq!(seen_header(&seen, "if-none-match"), None);
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "dated body");
    assert_eq!(second.header("x-extra"), Some("new"));
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_eq!(second.header("last-modified"), Some(lm.as_str()));

    assert_fresh_again(&origin, &lq, path, "dated body").await;
}

#[tokio::test]
async fn revalidation_answered_200_replaces_the_body() {
    let origin = Origin::start().await;
    let path = "/val/reval/replaced";
    origin.route(path, |_, n| {
        if n == 1 {
            Reply::ok("version one")
                .header("cache-control", "max-age=1")
                .header("etag", "\"one\"")
        } else {
            Reply::ok("version two")
                .header("cache-control", "max-age=60")
                .header("etag", "\"two\"")
        }
    });
    let lq = lacquer_revalidating(&origin).await;
    assert_eq!(get(lq.addr(), path).await.text(), "version one");
    let (second, seen) = revalidate(&origin, &lq, path).await;
    assert_eq!(
        seen_header(&seen, "if-none-match").as_deref(),
        Some("\"one\"")
    );
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "version two");
    assert_eq!(second.header("etag"), Some("\"two\""));
    let third = assert_fresh_again(&origin, &lq, path, "version two").await;
    assert_eq!(third.header("etag"), Some("\"two\""));
}

// ---------------------------------------------------------------- client conditionals

/// An origin and lacquer (default settings) with `path` stored (ETag `"abc"`,
/// Last-Modified an hour ago); returns them and the Last-Modified value.
async fn store_validated(path: &str) -> (Origin, lacquer::server::Running, String) {
    let origin = Origin::start().await;
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let lm = http_date(-3600);
    let lm2 = lm.clone();
    origin.route(path, move |_, _| {
        Reply::ok("validated body")
            .header("cache-control", "max-age=60")
            .header("etag", "\"abc\"")
            .header("last-modified", &lm2)
            .header("content-type", "text/plain")
    });
    let first = get(addr, path).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "validated body");
    wait_stored(&lq, path).await;
    assert_eq!(origin.hits(path), 1);
    (origin, lq, lm)
}

fn assert_304(g: &Got, what: &str) {
    assert_eq!(g.status, 304, "{what}: {g:?}");
    assert!(g.body.is_empty(), "{what}: 304 has no body");
    assert_eq!(g.header("etag"), Some("\"abc\""), "{what}");
    assert!(is_hit(g), "{what}: {:?}", g.x_cache());
}

fn assert_full(g: &Got, what: &str) {
    assert_eq!(g.status, 200, "{what}: {g:?}");
    assert_eq!(g.text(), "validated body", "{what}");
    assert!(is_hit(g), "{what}: {:?}", g.x_cache());
}

/// GETs the object `store_validated` stored at `path` once per case, with
/// `field` set to the case's value: a 304 where the case says not modified,
/// the full body otherwise, and never a request to the origin.
async fn assert_conditionals(
    origin: &Origin,
    addr: std::net::SocketAddr,
    path: &str,
    field: &str,
    cases: &[(&str, bool)],
) {
    for &(value, not_modified) in cases {
        let g = get_with(addr, path, &[(field, value)]).await;
        let what = format!("{field}: {value}");
        if not_modified {
            assert_304(&g, &what);
        } else {
            assert_full(&g, &what);
        }
    }
    assert_eq!(origin.hits(path), 1, "the origin is never contacted");
}

#[tokio::test]
async fn client_if_none_match_on_fresh_object() {
    let path = "/val/client/inm";
    let (origin, lq, _) = store_validated(path).await;
    let cases = [
        ("\"abc\"", true),
        ("W/\"abc\"", true),
        ("\"x\", \"abc\"", true),
        ("\"x\", W/\"abc\", \"y\"", true),
        ("*", true),
        ("\"nope\"", false),
        ("\"x\", \"y\"", false),
    ];
    assert_conditionals(&origin, lq.addr(), path, "If-None-Match", &cases).await;
}

#[tokio::test]
async fn client_if_modified_since_on_fresh_object() {
    let path = "/val/client/ims";
    let (origin, lq, lm) = store_validated(path).await;
    let later = http_date(-60);
    let earlier = http_date(-7200);
    let cases = [
        (lm.as_str(), true),
        (later.as_str(), true),
        (earlier.as_str(), false),
        ("not a date", false),
    ];
    assert_conditionals(&origin, lq.addr(), path, "If-Modified-Since", &cases).await;
}

#[tokio::test]
async fn if_none_match_overrides_if_modified_since() {
    let path = "/val/client/inm-over-ims";
    let (origin, lq, lm) = store_validated(path).await;
    let earlier = http_date(-7200);
    // INM does not match, IMS would: 200.
    let g = get_with(
        lq.addr(),
        path,
        &[("if-none-match", "\"other\""), ("if-modified-since", &lm)],
    )
    .await;
    assert_full(&g, "non-matching INM with a 304-worthy IMS");
    // INM matches, IMS would not: 304.
    let g = get_with(
        lq.addr(),
        path,
        &[
            ("if-none-match", "\"abc\""),
            ("if-modified-since", &earlier),
        ],
    )
    .await;
    assert_304(&g, "matching INM with a 200-worthy IMS");
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn client_conditionals_are_not_forwarded_on_a_miss() {
    let origin = Origin::start().await;
    let path = "/val/client/miss";
    let lm = http_date(-3600);
    let lm2 = lm.clone();
    origin.route(path, move |seen, _| {
        if seen.headers.contains_key("if-none-match")
            || seen.headers.contains_key("if-modified-since")
        {
            // What a real origin would do; lacquer would then have no body.
            Reply::new(304).header("etag", "\"abc\"")
        } else {
            Reply::ok("the whole body")
                .header("cache-control", "max-age=60")
                .header("etag", "\"abc\"")
                .header("last-modified", &lm2)
        }
    });
    let lq = lacquer_for(&origin).await;
    let first = get_with(
        lq.addr(),
        path,
        &[("if-none-match", "\"abc\""), ("if-modified-since", &lm)],
    )
    .await;
    assert_eq!(origin.hits(path), 1);
    let seen = origin.last(path).unwrap();
    assert_eq!(seen_header(&seen, "if-none-match"), None);
    assert_eq!(seen_header(&seen, "if-modified-since"), None);
    // The client's own condition is still honoured.
    assert_eq!(first.status, 304, "{first:?}");
    assert!(first.body.is_empty());
    wait_stored(&lq, path).await;

    // The full 200 was stored.
    let plain = get(lq.addr(), path).await;
    assert_eq!(plain.status, 200);
    assert!(is_hit(&plain), "{:?}", plain.x_cache());
    assert_eq!(plain.text(), "the whole body");
    assert_eq!(origin.hits(path), 1);
}

// ---------------------------------------------------------------- no-cache

/// Routes `path`: a 200 with `cc` and ETag `"nc"` at first, then a 304 to
/// every request that carries that ETag.
fn route_no_cache(origin: &Origin, path: &str, cc: &'static str) {
    origin.route(path, move |seen, n| {
        if n > 1 && seen_header(seen, "if-none-match").as_deref() == Some("\"nc\"") {
            Reply::new(304)
                .header("cache-control", cc)
                .header("etag", "\"nc\"")
        } else {
            Reply::ok(format!("no-cache body #{n}"))
                .header("cache-control", cc)
                .header("etag", "\"nc\"")
        }
    });
}

/// Four GETs of a `no-cache` path: every one after the first is a
/// conditional request to the origin, answered with the stored body.
async fn assert_revalidated_every_time(origin: &Origin, lq: &lacquer::server::Running, path: &str) {
    let first = get(lq.addr(), path).await;
    assert_eq!(first.text(), "no-cache body #1");
    assert_eq!(origin.hits(path), 1);
    wait_stored(lq, path).await;
    // A 304 refreshes the stored object before the answer is sent: nothing
    // to wait for between the requests below.
    for i in 2..=4 {
        let g = get(lq.addr(), path).await;
        assert_eq!(
            origin.hits(path),
            i,
            "{path}: request {i} reaches the origin"
        );
        let seen = origin.last(path).unwrap();
        assert_eq!(
            seen_header(&seen, "if-none-match").as_deref(),
            Some("\"nc\""),
            "{path}: request {i} is conditional (the object was stored)"
        );
        assert_eq!(g.status, 200);
        assert!(!is_hit(&g), "{path}: never a plain hit: {:?}", g.x_cache());
        assert_eq!(
            g.text(),
            "no-cache body #1",
            "{path}: request {i}: stored body"
        );
    }
}

#[tokio::test]
async fn no_cache_response_is_revalidated_on_every_request() {
    let origin = Origin::start().await;
    // With a lifetime, the object is retained for that long (default settings).
    let path = "/val/no-cache/max-age";
    route_no_cache(&origin, path, "no-cache, max-age=60");
    let lq = lacquer_for(&origin).await;
    assert_revalidated_every_time(&origin, &lq, path).await;
}

#[tokio::test]
async fn bare_no_cache_response_is_revalidated_when_kept() {
    let origin = Origin::start().await;
    // Without a lifetime, the object lives only as long as `keep`.
    let path = "/val/no-cache/bare";
    route_no_cache(&origin, path, "no-cache");
    let lq = lacquer_with(&origin, |c| c.cache.keep = Seconds(Duration::from_secs(60))).await;
    assert_revalidated_every_time(&origin, &lq, path).await;
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn must_revalidate_forbids_stale_on_error() {
    let origin = Origin::start().await;
    let strict = "/val/error/must-revalidate";
    let lenient = "/val/error/lenient";
    route_then_fail(&origin, strict, "strict body", "max-age=1, must-revalidate");
    route_then_fail(
        &origin,
        lenient,
        "lenient body",
        "max-age=1, stale-if-error=60",
    );
    // keep=60: both objects are retained past their lifetime; the lenient
    // one may replace an error (stale-if-error), the strict one never.
    let lq = lacquer_revalidating(&origin).await;
    assert_eq!(get(lq.addr(), strict).await.text(), "strict body");
    assert_eq!(get(lq.addr(), lenient).await.text(), "lenient body");
    expire(&lq, &origin).await;

    let g = get(lq.addr(), strict).await;
    assert_eq!(origin.hits(strict), 2);
    assert!(
        g.status == 500 || g.status == 504,
        "must-revalidate: the error, not stale content: {g:?}"
    );
    assert_ne!(g.text(), "strict body");

    let g = get(lq.addr(), lenient).await;
    assert_eq!(origin.hits(lenient), 2);
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "lenient body");
    assert_eq!(g.x_cache(), "STALE");
}

#[tokio::test]
async fn stale_if_error_delivers_stale_content() {
    let origin = Origin::start().await;
    let with = "/val/error/stale-if-error";
    let without = "/val/error/no-stale-if-error";
    route_then_fail(
        &origin,
        with,
        "stale but useful",
        "max-age=1, stale-if-error=60",
    );
    route_then_fail(&origin, without, "gone soon", "max-age=1");
    let lq = lacquer_no_grace(&origin).await;
    assert_eq!(get(lq.addr(), with).await.text(), "stale but useful");
    assert_eq!(get(lq.addr(), without).await.text(), "gone soon");
    expire(&lq, &origin).await;

    let g = get(lq.addr(), with).await;
    assert_eq!(origin.hits(with), 2, "the origin was asked first");
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "stale but useful");
    assert_eq!(g.x_cache(), "STALE");
    assert!(g.header("age").is_some());

    let g = get(lq.addr(), without).await;
    assert_eq!(origin.hits(without), 2);
    assert_eq!(g.status, 500, "no stale-if-error: {g:?}");
}

// ---------------------------------------------------------------- client no-cache

fn route_client_no_cache(origin: &Origin, path: &str) {
    origin.route(path, |seen, n| {
        if seen_header(seen, "if-none-match").as_deref() == Some("\"cnc\"") {
            Reply::new(304)
                .header("cache-control", "max-age=60")
                .header("etag", "\"cnc\"")
        } else {
            Reply::ok(format!("body #{n}"))
                .header("cache-control", "max-age=60")
                .header("etag", "\"cnc\"")
        }
    });
}

#[tokio::test]
async fn honoured_client_no_cache_revalidates() {
    let origin = Origin::start().await;
    let path = "/val/client-no-cache/honoured";
    route_client_no_cache(&origin, path);
    let lq = lacquer_with(&origin, |c| c.cache.honor_client_no_cache = true).await;
    assert_eq!(get(lq.addr(), path).await.text(), "body #1");
    wait_stored(&lq, path).await;
    let g = get_with(lq.addr(), path, &[("cache-control", "no-cache")]).await;
    assert_eq!(origin.hits(path), 2, "client no-cache reaches the origin");
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "body #1");
    assert!(!is_hit(&g), "{:?}", g.x_cache());
    let g = get_with(lq.addr(), path, &[("pragma", "no-cache")]).await;
    assert_eq!(origin.hits(path), 3, "Pragma: no-cache too");
    assert_eq!(g.text(), "body #1");
    wait_fresh(&lq, path).await;
    let g = get(lq.addr(), path).await;
    assert!(is_hit(&g), "plain request: {:?}", g.x_cache());
    assert_eq!(origin.hits(path), 3);
}

#[tokio::test]
async fn client_no_cache_ignored_by_default() {
    let origin = Origin::start().await;
    let path = "/val/client-no-cache/default";
    route_client_no_cache(&origin, path);
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), path).await.text(), "body #1");
    wait_stored(&lq, path).await;
    let g = get_with(lq.addr(), path, &[("cache-control", "no-cache")]).await;
    assert!(is_hit(&g), "{:?}", g.x_cache());
    assert_eq!(g.text(), "body #1");
    assert_eq!(origin.hits(path), 1);
}
