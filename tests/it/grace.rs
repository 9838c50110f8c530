//! Grace and stale content: stale objects delivered while one background
//! fetch refreshes them, and in place of backend errors.
use crate::common::*;
use lacquer::config::Seconds;
use std::time::{Duration, Instant};

/// Lets 2.1 s pass for `lq`: a `max-age=1` object is well past its
/// lifetime.
async fn outlive(lq: &lacquer::server::Running, origin: &Origin) {
    pass_time(lq, origin, Duration::from_millis(2100)).await;
}

/// GETs `path` (a `max-age=1` object), outlives it and GETs it again.
async fn get_after_expiry(lq: &lacquer::server::Running, origin: &Origin, path: &str) -> Got {
    get(lq.addr(), path).await;
    outlive(lq, origin).await;
    get(lq.addr(), path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_grace_stale_is_delivered_at_once_and_refreshed_once() {
    let origin = Origin::start().await;
    // Version 1 expires after a second; the refresh (slow, 400 ms) is fresh
    // for a minute, so polling for it cannot trigger another refresh.
    origin.route("/g", |_, n| {
        if n > 1 {
            Reply::ok(format!("version {n}"))
                .header("cache-control", "max-age=60")
                .delay(Duration::from_millis(400))
        } else {
            Reply::ok("version 1").header("cache-control", "max-age=1")
        }
    });
    let lq = lacquer_grace(&origin, 10).await;
    let addr = lq.addr();
    assert_eq!(get(addr, "/g").await.text(), "version 1");
    outlive(&lq, &origin).await;
    let start = Instant::now();
    for got in get_concurrently(addr, "/g", 5).await {
        assert_eq!(got.text(), "version 1");
        assert_eq!(got.x_cache(), "STALE");
    }
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "stale waited for the refresh"
    );
    // The refresh lands in the background (the origin takes 400 ms).
    wait_fresh(&lq, "/g").await;
    let fresh = get(addr, "/g").await;
    assert_eq!(fresh.text(), "version 2");
    assert!(is_hit(&fresh), "{}", fresh.x_cache());
    assert_eq!(
        origin.hits("/g"),
        2,
        "one background refresh, not one per client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_origin_stopped_an_object_in_grace_is_delivered() {
    let origin = Origin::start().await;
    origin.route("/down", |_, _| {
        Reply::ok("still here").header("cache-control", "max-age=1")
    });
    let lq = lacquer_grace(&origin, 10).await;
    assert_eq!(get(lq.addr(), "/down").await.text(), "still here");
    origin.stop();
    outlive(&lq, &origin).await;
    let got = get(lq.addr(), "/down").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "still here");
    assert_eq!(got.x_cache(), "STALE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_sets_the_grace() {
    let origin = Origin::start().await;
    origin.route("/swr", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1, stale-while-revalidate=30")
    });
    let lq = lacquer_no_grace(&origin).await;
    let got = get_after_expiry(&lq, &origin, "/swr").await;
    assert_eq!(got.x_cache(), "STALE");
    assert_eq!(got.text(), "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grace_a_stale_object_waits_for_the_backend() {
    let origin = Origin::start().await;
    origin.route("/nograce", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")
    });
    let lq = lacquer_no_grace(&origin).await;
    let got = get_after_expiry(&lq, &origin, "/nograce").await;
    assert_eq!(got.text(), "v2");
    assert_eq!(got.x_cache(), "MISS");
}

/// A lacquer with no grace (so only stale-if-error / keep can save a
/// request), a short first-byte timeout, and an object `path` already stored.
async fn primed(
    path: &'static str,
    cache_control: &'static str,
) -> (Origin, lacquer::server::Running) {
    let origin = Origin::start().await;
    origin.route(path, move |_, n| match n {
        1 => Reply::ok("good copy").header("cache-control", cache_control),
        _ => Reply::new(503).body("origin broke"),
    });
    let lq = lacquer_with(&origin, |c| {
        c.cache.grace = Seconds(Duration::ZERO);
        c.backend[0].first_byte_timeout = Seconds(Duration::from_millis(300));
    })
    .await;
    assert_eq!(get(lq.addr(), path).await.text(), "good copy");
    outlive(&lq, &origin).await;
    (origin, lq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_replaces_a_5xx() {
    let (origin, lq) = primed("/sie5", "max-age=1, stale-if-error=60").await;
    let got = get(lq.addr(), "/sie5").await;
    assert_eq!(
        (got.status, got.text().as_str(), got.x_cache()),
        (200, "good copy", "STALE")
    );
    assert_eq!(origin.hits("/sie5"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_replaces_a_refused_connection() {
    let (origin, lq) = primed("/siedown", "max-age=1, stale-if-error=60").await;
    origin.stop();
    let got = get(lq.addr(), "/siedown").await;
    assert_eq!((got.status, got.text().as_str()), (200, "good copy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_replaces_a_timeout() {
    let (origin, lq) = primed("/sieslow", "max-age=1, stale-if-error=60").await;
    origin.route("/sieslow", |_, _| {
        Reply::ok("too late").delay(Duration::from_secs(3))
    });
    let got = get(lq.addr(), "/sieslow").await;
    assert_eq!((got.status, got.text().as_str()), (200, "good copy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_does_not_replace_an_origin_5xx() {
    let origin = Origin::start().await;
    origin.route("/keep", |_, n| match n {
        1 => Reply::ok("kept").header("cache-control", "max-age=1"),
        _ => Reply::new(500).body("boom"),
    });
    // Keep stands in only while the origin gives no answer (RFC 9111
    // §4.2.4, "disconnected"); a 5xx it sent is delivered.
    let lq = lacquer_with(&origin, |c| {
        c.cache.grace = Seconds(Duration::ZERO);
        c.cache.keep = Seconds(Duration::from_secs(60));
    })
    .await;
    let got = get_after_expiry(&lq, &origin, "/keep").await;
    assert_eq!((got.status, got.text().as_str()), (500, "boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_if_error_the_client_sees_the_error() {
    let (_origin, lq) = primed("/nosie", "max-age=1").await;
    let got = get(lq.addr(), "/nosie").await;
    assert_eq!((got.status, got.text().as_str()), (503, "origin broke"));
}
