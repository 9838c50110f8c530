//! Validation (RFC 9111 §4.3, RFC 9110 §13): revalidating stale objects with
//! the origin, answering clients' conditional requests from the cache,
//! no-cache, must-revalidate and stale-if-error.
mod common;
use common::*;

use lacquer::config::{Config, Seconds};
use std::time::{Duration, SystemTime};

/// An HTTP-date `offset` seconds from now (negative: in the past).
fn http_date(offset: i64) -> String {
    let now = SystemTime::now();
    let t = if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

/// Lets a miss finish storing its object before the next request.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Long enough for a `max-age=1` object to be stale.
async fn expire() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// lacquer in front of `origin` with settings changed by `tweak`.
async fn lacquer_with(
    origin: &Origin,
    tweak: impl FnOnce(&mut Config),
) -> lacquer::server::Running {
    let mut config = config_for(origin.addr);
    tweak(&mut config);
    lacquer(config).await
}

/// lacquer that keeps expired objects for revalidation (no grace, so an
/// expired object is revalidated before it is delivered).
async fn lacquer_revalidating(origin: &Origin) -> lacquer::server::Running {
    lacquer_with(origin, |c| {
        c.cache.grace = Seconds(Duration::ZERO);
        c.cache.keep = Seconds(Duration::from_secs(60));
    })
    .await
}

fn is_hit(g: &Got) -> bool {
    g.x_cache().starts_with("HIT")
}

fn seen_header(seen: &Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------- revalidation

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
    expire().await;

    let second = get(lq.addr(), path).await;
    assert_eq!(origin.hits(path), 2);
    let seen = origin.last(path).unwrap();
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

    settle().await;
    let third = get(lq.addr(), path).await;
    assert!(
        is_hit(&third),
        "fresh again after 304: {:?}",
        third.x_cache()
    );
    assert_eq!(third.text(), "original body");
    assert_eq!(third.header("x-extra"), Some("new"));
    assert_eq!(origin.hits(path), 2);
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
    expire().await;

    let second = get(lq.addr(), path).await;
    assert_eq!(origin.hits(path), 2);
    let seen = origin.last(path).unwrap();
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

    settle().await;
    let third = get(lq.addr(), path).await;
    assert!(
        is_hit(&third),
        "fresh again after 304: {:?}",
        third.x_cache()
    );
    assert_eq!(third.text(), "dated body");
    assert_eq!(origin.hits(path), 2);
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
    expire().await;
    let second = get(lq.addr(), path).await;
    assert_eq!(origin.hits(path), 2);
    assert_eq!(
        seen_header(&origin.last(path).unwrap(), "if-none-match").as_deref(),
        Some("\"one\"")
    );
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "version two");
    assert_eq!(second.header("etag"), Some("\"two\""));
    settle().await;
    let third = get(lq.addr(), path).await;
    assert!(is_hit(&third), "{:?}", third.x_cache());
    assert_eq!(third.text(), "version two");
    assert_eq!(third.header("etag"), Some("\"two\""));
    assert_eq!(origin.hits(path), 2);
}

// ---------------------------------------------------------------- client conditionals

/// Stores `path` (ETag `"abc"`, Last-Modified an hour ago) and returns the
/// Last-Modified value.
async fn store_validated(origin: &Origin, addr: std::net::SocketAddr, path: &str) -> String {
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
    settle().await;
    assert_eq!(origin.hits(path), 1);
    lm
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

#[tokio::test]
async fn client_if_none_match_on_fresh_object() {
    let origin = Origin::start().await;
    let path = "/val/client/inm";
    let lq = lacquer_for(&origin).await;
    store_validated(&origin, lq.addr(), path).await;
    for (inm, not_modified) in [
        ("\"abc\"", true),
        ("W/\"abc\"", true),
        ("\"x\", \"abc\"", true),
        ("\"x\", W/\"abc\", \"y\"", true),
        ("*", true),
        ("\"nope\"", false),
        ("\"x\", \"y\"", false),
    ] {
        let g = get_with(lq.addr(), path, &[("if-none-match", inm)]).await;
        if not_modified {
            assert_304(&g, &format!("If-None-Match: {inm}"));
        } else {
            assert_full(&g, &format!("If-None-Match: {inm}"));
        }
    }
    assert_eq!(origin.hits(path), 1, "the origin is never contacted");
}

#[tokio::test]
async fn client_if_modified_since_on_fresh_object() {
    let origin = Origin::start().await;
    let path = "/val/client/ims";
    let lq = lacquer_for(&origin).await;
    let lm = store_validated(&origin, lq.addr(), path).await;
    let later = http_date(-60);
    let earlier = http_date(-7200);
    for (ims, not_modified) in [
        (lm.as_str(), true),
        (later.as_str(), true),
        (earlier.as_str(), false),
        ("not a date", false),
    ] {
        let g = get_with(lq.addr(), path, &[("if-modified-since", ims)]).await;
        if not_modified {
            assert_304(&g, &format!("If-Modified-Since: {ims}"));
        } else {
            assert_full(&g, &format!("If-Modified-Since: {ims}"));
        }
    }
    assert_eq!(origin.hits(path), 1, "the origin is never contacted");
}

#[tokio::test]
async fn if_none_match_overrides_if_modified_since() {
    let origin = Origin::start().await;
    let path = "/val/client/inm-over-ims";
    let lq = lacquer_for(&origin).await;
    let lm = store_validated(&origin, lq.addr(), path).await;
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
    settle().await;

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
async fn assert_revalidated_every_time(origin: &Origin, addr: std::net::SocketAddr, path: &str) {
    let first = get(addr, path).await;
    assert_eq!(first.text(), "no-cache body #1");
    assert_eq!(origin.hits(path), 1);
    settle().await;
    for i in 2..=4 {
        let g = get(addr, path).await;
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
        settle().await;
    }
}

#[tokio::test]
async fn no_cache_response_is_revalidated_on_every_request() {
    let origin = Origin::start().await;
    // With a lifetime, the object is retained for that long (default settings).
    let path = "/val/no-cache/max-age";
    route_no_cache(&origin, path, "no-cache, max-age=60");
    let lq = lacquer_for(&origin).await;
    assert_revalidated_every_time(&origin, lq.addr(), path).await;
}

#[tokio::test]
async fn bare_no_cache_response_is_revalidated_when_kept() {
    let origin = Origin::start().await;
    // Without a lifetime, the object lives only as long as `keep`.
    let path = "/val/no-cache/bare";
    route_no_cache(&origin, path, "no-cache");
    let lq = lacquer_with(&origin, |c| c.cache.keep = Seconds(Duration::from_secs(60))).await;
    assert_revalidated_every_time(&origin, lq.addr(), path).await;
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn must_revalidate_forbids_stale_on_error() {
    let origin = Origin::start().await;
    let strict = "/val/error/must-revalidate";
    let lenient = "/val/error/lenient";
    origin.route(strict, |_, n| {
        if n == 1 {
            Reply::ok("strict body").header("cache-control", "max-age=1, must-revalidate")
        } else {
            Reply::new(500).body("origin broke")
        }
    });
    origin.route(lenient, |_, n| {
        if n == 1 {
            Reply::ok("lenient body").header("cache-control", "max-age=1")
        } else {
            Reply::new(500).body("origin broke")
        }
    });
    // keep=60: both objects are retained past their lifetime (and, without
    // must-revalidate, usable on error for that long).
    let lq = lacquer_revalidating(&origin).await;
    assert_eq!(get(lq.addr(), strict).await.text(), "strict body");
    assert_eq!(get(lq.addr(), lenient).await.text(), "lenient body");
    expire().await;

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
    origin.route(with, |_, n| {
        if n == 1 {
            Reply::ok("stale but useful").header("cache-control", "max-age=1, stale-if-error=60")
        } else {
            Reply::new(500).body("origin broke")
        }
    });
    origin.route(without, |_, n| {
        if n == 1 {
            Reply::ok("gone soon").header("cache-control", "max-age=1")
        } else {
            Reply::new(500).body("origin broke")
        }
    });
    let lq = lacquer_with(&origin, |c| c.cache.grace = Seconds(Duration::ZERO)).await;
    assert_eq!(get(lq.addr(), with).await.text(), "stale but useful");
    assert_eq!(get(lq.addr(), without).await.text(), "gone soon");
    expire().await;

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
    settle().await;
    let g = get_with(lq.addr(), path, &[("cache-control", "no-cache")]).await;
    assert_eq!(origin.hits(path), 2, "client no-cache reaches the origin");
    assert_eq!(g.status, 200);
    assert_eq!(g.text(), "body #1");
    assert!(!is_hit(&g), "{:?}", g.x_cache());
    let g = get_with(lq.addr(), path, &[("pragma", "no-cache")]).await;
    assert_eq!(origin.hits(path), 3, "Pragma: no-cache too");
    assert_eq!(g.text(), "body #1");
    settle().await;
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
    settle().await;
    let g = get_with(lq.addr(), path, &[("cache-control", "no-cache")]).await;
    assert!(is_hit(&g), "{:?}", g.x_cache());
    assert_eq!(g.text(), "body #1");
    assert_eq!(origin.hits(path), 1);
}
