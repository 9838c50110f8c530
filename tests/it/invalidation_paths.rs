//! Every way an invalidation comes in keys a URL with the policy's
//! `vcl_hash`: the admin API, a peer's forward and a successful unsafe
//! method (RFC 9111 §4.4) purge what a custom `vcl_hash` stored, and each is
//! counted once.
use crate::common::*;
use crate::process::free_addr;
use lacquer::config::Config;
use lacquer::policy::vcl::VclPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A `vcl_hash` that keys by URL alone (the host is left out), so its keys
/// differ from the built-in URL + Host. PURGE is handled as Varnish users
/// write it (Varnish's built-in vcl_recv would pipe it to the backend).
const URL_ONLY: &str = r#"
vcl 4.1;

sub vcl_recv {
    if (req.method == "PURGE") {
        return (purge);
    }
}

sub vcl_hash {
    hash_data(req.url);
    return (lookup);
}
"#;

const SECRET: &str = "correct-horse-battery-staple";

/// lacquer with `config` and the URL-only `vcl_hash`.
async fn url_only(config: Config) -> lacquer::server::Running {
    let config = Arc::new(config);
    let policy = Arc::new(VclPolicy::compile(URL_ONLY, "url-only.vcl").expect("policy compiles"));
    let proxy = lacquer::pipeline::Proxy::with_policy(config.clone(), policy).unwrap();
    lacquer::server::start_with(config, proxy).await.unwrap()
}

/// `lacquer_invalidations_total{kind="KIND"}` of an in-process lacquer.
fn invalidations(lq: &lacquer::server::Running, kind: &str) -> u64 {
    metric(
        lq,
        &format!("lacquer_invalidations_total{{kind=\"{kind}\"}}"),
    )
}

/// GETs `path` twice and checks the second was a hit (the object is stored).
async fn store(lq: &lacquer::server::Running, origin: &Origin, path: &str) {
    let before = origin.hits(path);
    get(lq.addr(), path).await;
    wait_stored(lq, path).await;
    assert!(is_hit(&get(lq.addr(), path).await), "{path} not stored");
    assert_eq!(origin.hits(path), before + 1);
}

#[tokio::test]
async fn an_admin_purge_uses_the_policys_hash() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = url_only(config_for(origin.addr)).await;
    store(&lq, &origin, "/a").await;
    let admin = lq.admin.unwrap();
    let purged = send(admin, "POST", "/purge", &[], "http://test.example/a").await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    assert_eq!(get(lq.addr(), "/a").await.x_cache(), "MISS");
    assert_eq!(origin.hits("/a"), 2);
    assert_eq!(invalidations(&lq, "purge"), 1);
}

#[tokio::test]
async fn a_purge_request_is_counted_once() {
    let origin = Origin::start().await;
    cacheable(&origin, "/r");
    let lq = url_only(config_for(origin.addr)).await;
    store(&lq, &origin, "/r").await;
    let purged = send(lq.addr(), "PURGE", "/r", &[], "").await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    assert_eq!(get(lq.addr(), "/r").await.x_cache(), "MISS");
    assert_eq!(invalidations(&lq, "purge"), 1);
}

fn node_config(origin: SocketAddr, admin: SocketAddr, peer: SocketAddr) -> Config {
    let mut c = config_for(origin);
    c.admin.listen = Some(admin);
    c.cluster.peers = vec![peer.to_string()];
    c.cluster.secret = SECRET.into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_forwarded_by_a_peer_uses_the_policys_hash() {
    let origin = Origin::start().await;
    cacheable(&origin, "/b");
    let (admin_a, admin_b) = (free_addr(), free_addr());
    let a = url_only(node_config(origin.addr, admin_a, admin_b)).await;
    let b = url_only(node_config(origin.addr, admin_b, admin_a)).await;
    store(&a, &origin, "/b").await;
    store(&b, &origin, "/b").await;

    let purged = send(a.addr(), "PURGE", "/b", &[], "").await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while invalidations(&b, "purge") == 0 {
        assert!(Instant::now() < deadline, "the purge never reached B");
        sleep_ms(20).await;
    }
    assert_eq!(get(b.addr(), "/b").await.x_cache(), "MISS");
    assert_eq!(get(a.addr(), "/b").await.x_cache(), "MISS");
    assert_eq!(origin.hits("/b"), 4);
    // Applied once on each node; B does not send it back.
    sleep_ms(200).await;
    assert_eq!(invalidations(&a, "purge"), 1);
    assert_eq!(invalidations(&b, "purge"), 1);
}

#[tokio::test]
async fn a_write_invalidates_its_location_under_the_policys_hash() {
    let origin = Origin::start().await;
    cacheable(&origin, "/items/1");
    cacheable(&origin, "/items");
    origin.route("/items/new", |_, _| {
        Reply::new(201)
            .header("location", "/items/1")
            .body("created")
    });
    let lq = url_only(config_for(origin.addr)).await;
    store(&lq, &origin, "/items/1").await;
    store(&lq, &origin, "/items").await;

    let created = send(lq.addr(), "POST", "/items/new", &[], "x").await;
    assert_eq!(created.status, 201);
    assert_eq!(get(lq.addr(), "/items/1").await.x_cache(), "MISS");
    assert_eq!(origin.hits("/items/1"), 2);
    assert!(is_hit(&get(lq.addr(), "/items").await));
    // /items/new had nothing stored: one URL invalidated, counted once.
    assert_eq!(invalidations(&lq, "unsafe_method"), 1);

    // The target URI itself.
    let posted = send(lq.addr(), "POST", "/items", &[], "x").await;
    assert_eq!(posted.status, 200);
    assert_eq!(get(lq.addr(), "/items").await.x_cache(), "MISS");
    assert_eq!(invalidations(&lq, "unsafe_method"), 2);
    assert_eq!(invalidations(&lq, "purge"), 0);
}
