//! Request coalescing: one backend request per key at a time, waiters
//! streaming from it; hit-for-miss lets uncacheable keys go in parallel.
use crate::common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clients_on_a_cold_key_make_one_origin_request() {
    let origin = Origin::start().await;
    origin.route("/cold", |_, n| {
        Reply::ok(format!("payload {n}").repeat(1000))
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(200))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let expected = "payload 1".repeat(1000);
    for got in get_concurrently(addr, "/cold", 100).await {
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), expected);
    }
    assert_eq!(origin.hits("/cold"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_stream_a_slow_miss_before_it_completes() {
    use http_body_util::BodyExt;
    let origin = Origin::start().await;
    // 50 MiB in 1 MiB chunks, 20 ms apart: at least a second to send.
    origin.route("/slow", |_, _| {
        Reply::ok("").header("cache-control", "max-age=60").chunks(
            1 << 20,
            50,
            Duration::from_millis(20),
        )
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let read = |addr| async move {
        let start = Instant::now();
        let mut body = get_streaming(addr, "/slow").await.into_body();
        let mut first = None;
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap_or_default();
            if first.is_none() && !data.is_empty() {
                first = Some(start.elapsed());
            }
            total += data.len();
        }
        (first.unwrap(), start.elapsed(), total)
    };
    let (a, b) = tokio::join!(read(addr), read(addr));
    for (first, all, total) in [a, b] {
        assert_eq!(total, 50 << 20);
        assert!(all >= Duration::from_millis(900), "whole body took {all:?}");
        assert!(
            first + Duration::from_millis(500) < all,
            "first byte at {first:?}, last at {all:?}: not streamed"
        );
    }
    assert_eq!(origin.hits("/slow"), 1);
    // Stored once complete.
    let again = get(addr, "/slow").await;
    assert!(
        is_hit(&again),
        "{:?} {}",
        again.headers,
        lq.proxy.store().stored_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_answers_leave_hit_for_miss_so_requests_run_in_parallel() {
    let origin = Origin::start().await;
    origin.route("/private", |_, n| {
        Reply::ok(format!("for you {n}"))
            .header("cache-control", "private")
            .delay(Duration::from_millis(300))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let first = get(addr, "/private").await;
    assert_eq!(first.x_cache(), "MISS");
    origin.max_concurrent.store(0, Ordering::SeqCst);
    let mut bodies = Vec::new();
    for got in get_concurrently(addr, "/private", 5).await {
        assert_eq!(got.x_cache(), "PASS");
        bodies.push(got.text());
    }
    // Every client got its own answer, none shared.
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 5);
    assert_eq!(origin.hits("/private"), 6);
    assert_eq!(origin.max_concurrent.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_an_uncacheable_miss_never_share_its_answer() {
    let origin = Origin::start().await;
    origin.route("/cookie", |_, n| {
        Reply::ok(format!("session {n}"))
            .header("set-cookie", &format!("s={n}"))
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(200))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let mut cookies = Vec::new();
    for got in get_concurrently(addr, "/cookie", 4).await {
        let cookie = got.header("set-cookie").unwrap().to_string();
        assert_eq!(got.text(), format!("session {}", &cookie[2..]));
        cookies.push(cookie);
    }
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies.len(), 4, "a Set-Cookie answer reached two clients");
    assert_eq!(origin.hits("/cookie"), 4);
}

/// A request that found a hit-for-miss marker and was restarted to
/// another URL leaves a marker for that URL when its answer is
/// uncacheable: the first lookup's marker says nothing about the second.
#[tokio::test]
async fn a_restart_after_a_hit_for_miss_lookup_still_marks_the_new_key() {
    const RESTART: &str = r#"vcl 4.1;
sub vcl_deliver {
    set resp.http.x-hitmiss = req.is_hitmiss;
    if (req.http.x-go && req.restarts == 0) {
        set req.url = "/b";
        return (restart);
    }
}
"#;
    let origin = Origin::start().await;
    for p in ["/a", "/b"] {
        origin.route(p, |_, n| {
            Reply::ok(format!("v{n}")).header("cache-control", "private")
        });
    }
    let lq = with_policy(origin.addr, RESTART).await;
    let a = lq.addr();
    get(a, "/a").await;
    assert_eq!(get(a, "/a").await.header("x-hitmiss"), Some("true"));
    // /a finds its marker, restarts to /b: fetched, uncacheable.
    let restarted = get_with(a, "/a", &[("x-go", "1")]).await;
    assert_eq!(restarted.status, 200);
    assert_eq!(origin.hits("/b"), 1);
    let b = get(a, "/b").await;
    assert_eq!(
        b.header("x-hitmiss"),
        Some("true"),
        "no hit-for-miss marker for /b"
    );
}
