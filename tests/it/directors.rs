//! Several app servers: round-robin, random and hash directors, health
//! probes that take sick backends out, and what happens when all are sick.
use crate::common::*;
use lacquer::config::{BackendConfig, Config, DirectorKind, ProbeConfig, Seconds};
use std::time::Duration;

fn two_backends(a: &Origin, b: &Origin, kind: DirectorKind) -> Config {
    let mut c = config_for(a.addr);
    c.backend = vec![
        BackendConfig {
            name: "a".into(),
            address: a.addr.to_string(),
            ..BackendConfig::default()
        },
        BackendConfig {
            name: "b".into(),
            address: b.addr.to_string(),
            ..BackendConfig::default()
        },
    ];
    c.director.kind = kind;
    c
}

fn uncacheable(o: &Origin, path: &str, who: &'static str) {
    o.route(path, move |_, _| {
        Reply::ok(who).header("cache-control", "no-store")
    });
}

#[tokio::test]
async fn round_robin_alternates_and_random_uses_both() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    for (o, who) in [(&a, "a"), (&b, "b")] {
        uncacheable(o, "/rr", who);
        uncacheable(o, "/rnd", who);
    }
    let lq = lacquer(two_backends(&a, &b, DirectorKind::RoundRobin)).await;
    for _ in 0..10 {
        send(lq.addr(), "POST", "/rr", &[], "").await;
    }
    assert_eq!((a.hits("/rr"), b.hits("/rr")), (5, 5));
    let lq = lacquer(two_backends(&a, &b, DirectorKind::Random)).await;
    for _ in 0..60 {
        send(lq.addr(), "POST", "/rnd", &[], "").await;
    }
    assert!(
        a.hits("/rnd") > 5 && b.hits("/rnd") > 5,
        "{} / {}",
        a.hits("/rnd"),
        b.hits("/rnd")
    );
}

#[tokio::test]
async fn hash_sends_a_url_to_the_same_backend() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    for i in 0..20 {
        uncacheable(&a, &format!("/h/{i}"), "a");
        uncacheable(&b, &format!("/h/{i}"), "b");
    }
    let lq = lacquer(two_backends(&a, &b, DirectorKind::Hash)).await;
    for i in 0..20 {
        let path = format!("/h/{i}");
        let first = send(lq.addr(), "POST", &path, &[], "").await.text();
        for _ in 0..3 {
            assert_eq!(send(lq.addr(), "POST", &path, &[], "").await.text(), first);
        }
    }
    // Both backends get some URLs.
    assert!(
        a.total() > 0 && b.total() > 0,
        "{} / {}",
        a.total(),
        b.total()
    );
}

fn probed(mut c: Config) -> Config {
    for b in &mut c.backend {
        b.probe = Some(ProbeConfig {
            url: "/health".into(),
            interval: Seconds(Duration::from_millis(50)),
            timeout: Seconds(Duration::from_secs(1)),
            window: 3,
            threshold: 2,
            expected_status: 200,
        });
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_probe_takes_a_backend_out_and_back_in() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    let a_sick = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = a_sick.clone();
    a.route("/health", move |_, _| {
        Reply::new(if flag.load(std::sync::atomic::Ordering::SeqCst) {
            500
        } else {
            200
        })
    });
    b.route("/health", |_, _| Reply::new(200));
    uncacheable(&a, "/x", "a");
    uncacheable(&b, "/x", "b");
    let lq = lacquer(probed(two_backends(&a, &b, DirectorKind::RoundRobin))).await;
    let admin = lq.admin.unwrap();
    a_sick.store(true, std::sync::atomic::Ordering::SeqCst);
    let dir = lq.proxy.clone();
    assert!(
        eventually(async || !dir.director().backends()[0].is_healthy()).await,
        "a never marked sick"
    );
    let before = a.hits("/x");
    for _ in 0..6 {
        assert_eq!(send(lq.addr(), "POST", "/x", &[], "").await.text(), "b");
    }
    assert_eq!(a.hits("/x"), before, "a sick backend got traffic");
    let listing = get(admin, "/backends").await.text();
    assert!(
        listing.contains("a\t") && listing.contains("\tsick\t"),
        "{listing}"
    );
    let metrics = get(admin, "/metrics").await.text();
    assert!(
        metrics.contains("lacquer_backend_healthy{backend=\"a\"} 0"),
        "{metrics}"
    );
    a_sick.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(
        eventually(async || dir.director().backends()[0].is_healthy()).await,
        "a never came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_backend_sick_stale_content_or_a_clear_503() {
    let a = Origin::start().await;
    let sick = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = sick.clone();
    a.route("/health", move |_, _| {
        Reply::new(if flag.load(std::sync::atomic::Ordering::SeqCst) {
            503
        } else {
            200
        })
    });
    a.route("/page", |_, n| {
        Reply::ok(format!("page v{n}")).header("cache-control", "max-age=1")
    });
    let mut config = probed(config_for(a.addr));
    // Grace allows stale use (keep alone never does).
    config.cache.grace = Seconds(Duration::from_secs(60));
    let lq = lacquer(config).await;
    assert_eq!(get(lq.addr(), "/page").await.text(), "page v1");
    sick.store(true, std::sync::atomic::Ordering::SeqCst);
    let p = lq.proxy.clone();
    assert!(eventually(async || !p.director().backends()[0].is_healthy()).await);
    expire(&lq, &a).await;
    let stale = get(lq.addr(), "/page").await;
    assert_eq!(
        (stale.status, stale.text().as_str(), stale.x_cache()),
        (200, "page v1", "STALE")
    );
    let none = get(lq.addr(), "/never-stored").await;
    assert_eq!(none.status, 503);
    assert!(
        none.text().contains("no healthy backend"),
        "{}",
        none.text()
    );
    assert_eq!(a.hits("/page"), 1);
}
