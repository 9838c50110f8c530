//! The default settings follow RFC 9111 (`cache.profile = "rfc"`): no grace
//! (stale only where the origin allows it), a keep window so objects with
//! validators are revalidated; `cache.profile = "varnish"` gives Varnish's
//! defaults (default_ttl 120 s, grace 10 s, keep 0).
use crate::common::*;
use lacquer::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_an_expired_object_is_not_served_stale() {
    let origin = Origin::start().await;
    origin.route("/d/plain", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/d/plain").await.text(), "v1");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/d/plain").await;
    assert_eq!((got.text().as_str(), got.x_cache()), ("v2", "MISS"));
    assert_eq!(origin.hits("/d/plain"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_stale_while_revalidate_is_honoured() {
    let origin = Origin::start().await;
    origin.route("/d/swr", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1, stale-while-revalidate=30")
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/d/swr").await.text(), "v1");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/d/swr").await;
    assert_eq!((got.text().as_str(), got.x_cache()), ("v1", "STALE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_an_object_with_an_etag_is_revalidated() {
    let origin = Origin::start().await;
    origin.route("/d/etag", |seen, n| {
        let matches = seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == b"\"a\"");
        if n > 1 && matches {
            Reply::new(304)
                .header("etag", "\"a\"")
                .header("cache-control", "max-age=1")
        } else {
            Reply::ok("the body")
                .header("etag", "\"a\"")
                .header("cache-control", "max-age=1")
        }
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/d/etag").await.text(), "the body");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/d/etag").await;
    assert_eq!((got.status, got.text().as_str()), (200, "the body"));
    assert_ne!(got.x_cache(), "STALE", "revalidated before delivery");
    assert_eq!(origin.hits("/d/etag"), 2);
    let seen = origin
        .last("/d/etag")
        .expect("revalidation reached the origin");
    assert_eq!(
        seen.headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(&b"\"a\""[..])
    );
}

/// lacquer in front of `origin` with `[cache]` set by `cache_toml`, read as
/// the binary reads its file.
async fn lacquer_toml(origin: &Origin, cache_toml: &str) -> lacquer::server::Running {
    let file = Config::from_toml(&format!("[cache]\n{cache_toml}"), "t.toml").unwrap();
    let mut config = config_for(origin.addr);
    config.cache = file.cache;
    lacquer(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_varnish_profile_has_grace_and_a_default_ttl() {
    let origin = Origin::start().await;
    origin.route("/v/short", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")
    });
    origin.route("/v/bare", |_, n| Reply::ok(format!("bare {n}")));
    let lq = lacquer_toml(&origin, "profile = \"varnish\"\n").await;
    // default_ttl 120 s: a response without freshness information is stored.
    let (_, second) = get_twice(&lq, "/v/bare", &[]).await;
    assert!(is_hit(&second), "{}", second.x_cache());
    assert_eq!(second.text(), "bare 1");
    // grace 10 s: an expired object is delivered stale while it is refreshed.
    assert_eq!(get(lq.addr(), "/v/short").await.text(), "v1");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/v/short").await;
    assert_eq!((got.text().as_str(), got.x_cache()), ("v1", "STALE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_setting_wins_over_the_profile() {
    let origin = Origin::start().await;
    origin.route("/v/nograce", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=1")
    });
    let lq = lacquer_toml(&origin, "profile = \"varnish\"\ngrace = \"0s\"\n").await;
    assert_eq!(get(lq.addr(), "/v/nograce").await.text(), "v1");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/v/nograce").await;
    assert_eq!((got.text().as_str(), got.x_cache()), ("v2", "MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_kept_object_stands_in_when_the_origin_is_unreachable() {
    let origin = Origin::start().await;
    origin.route("/d/down", |_, _| {
        Reply::ok("kept").header("cache-control", "max-age=1")
    });
    origin.route("/d/strict", |_, _| {
        Reply::ok("strict").header("cache-control", "max-age=1, must-revalidate")
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/d/down").await.text(), "kept");
    assert_eq!(get(lq.addr(), "/d/strict").await.text(), "strict");
    expire(&lq, &origin).await;
    origin.stop();
    // RFC 9111 §4.2.4: a disconnected cache may serve stale content.
    let got = get(lq.addr(), "/d/down").await;
    assert_eq!(
        (got.status, got.text().as_str(), got.x_cache()),
        (200, "kept", "STALE")
    );
    let strict = get(lq.addr(), "/d/strict").await;
    assert_ne!(strict.status, 200, "must-revalidate: never stale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_an_origin_error_is_not_replaced_by_a_kept_object() {
    let origin = Origin::start().await;
    origin.route("/d/500", |_, n| match n {
        1 => Reply::ok("kept").header("cache-control", "max-age=1"),
        _ => Reply::new(500).body("boom"),
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/d/500").await.text(), "kept");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/d/500").await;
    assert_eq!((got.status, got.text().as_str()), (500, "boom"));
}
