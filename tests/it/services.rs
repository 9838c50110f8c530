//! Background services (peer senders, health probes, the lurker, reapers)
//! belong to the server: a proxy built outside any tokio runtime gets all of
//! them when the server starts, and shutdown stops them.
use crate::common::*;
use crate::process::free_addr;
use lacquer::config::{Config, ProbeConfig, Seconds};
use lacquer::pipeline::Proxy;
use lacquer::server::{start_proxy, Running, Threads};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "correct-horse-battery-staple";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `lacquer_invalidations_total{kind="purge"}` of an in-process lacquer.
fn purges(lq: &Running) -> u64 {
    let metrics = lq.proxy.render_metrics();
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("lacquer_invalidations_total{kind=\"purge\"} ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no purge count in {metrics}"))
}

#[test]
fn a_peer_configured_outside_a_runtime_gets_the_purges() {
    let rt = runtime();
    let origin = rt.block_on(Origin::start());
    origin.route("/p", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=600")
    });
    let (admin_a, admin_b) = (free_addr(), free_addr());
    let mut config_a = config_for(origin.addr);
    config_a.admin.listen = Some(admin_a);
    config_a.cluster.peers = vec![admin_b.to_string()];
    config_a.cluster.secret = SECRET.into();
    let mut config_b = config_for(origin.addr);
    config_b.admin.listen = Some(admin_b);
    config_b.cluster.secret = SECRET.into();

    // Node A's proxy is built here, outside any runtime.
    let proxy_a = Proxy::new(Arc::new(config_a)).unwrap();
    rt.block_on(async move {
        let a = start_proxy(proxy_a, Threads::Caller).await.unwrap();
        let b = lacquer(config_b).await;
        get(b.addr(), "/p").await;
        wait_stored(&b, "/p").await;
        assert!(is_hit(&get(b.addr(), "/p").await));

        let purged = send(a.addr(), "PURGE", "/p", &[], "").await;
        assert_eq!(purged.status, 404, "{}", purged.text());
        assert!(
            eventually(async || purges(&b) == 1).await,
            "the purge never reached the peer"
        );
        assert_eq!(get(b.addr(), "/p").await.x_cache(), "MISS");
        assert_eq!(origin.hits("/p"), 2);
    });
}

/// Settings with a backend probed every 50 ms at `/health`.
fn probed(origin: SocketAddr) -> Config {
    let mut c = config_for(origin);
    c.backend[0].probe = Some(ProbeConfig {
        url: "/health".into(),
        interval: Seconds(Duration::from_millis(50)),
        timeout: Seconds(Duration::from_secs(1)),
        window: 3,
        threshold: 2,
        expected_status: 200,
    });
    c
}

#[test]
fn probes_run_when_the_proxy_was_built_outside_a_runtime_and_stop_at_shutdown() {
    let rt = runtime();
    let origin = rt.block_on(Origin::start());
    let up = Arc::new(AtomicBool::new(false));
    let up_in = up.clone();
    origin.route("/health", move |_, _| {
        Reply::new(if up_in.load(Ordering::SeqCst) {
            200
        } else {
            500
        })
    });
    origin.route("/page", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "no-store")
    });

    let proxy = Proxy::new(Arc::new(probed(origin.addr))).unwrap();
    rt.block_on(async {
        let lq = start_proxy(proxy, Threads::Caller).await.unwrap();
        // The probe finds the backend sick: clients get 503.
        assert!(
            eventually(async || !lq.proxy.director().backends()[0].is_healthy()).await,
            "no probe ran"
        );
        assert_eq!(get(lq.addr(), "/page").await.status, 503);
        up.store(true, Ordering::SeqCst);
        assert!(
            eventually(async || lq.proxy.director().backends()[0].is_healthy()).await,
            "the probe never saw the backend back"
        );
        assert_eq!(get(lq.addr(), "/page").await.status, 200);

        // Shutdown stops the probe (the proxy itself stays alive here).
        assert_eq!(lq.shutdown(Duration::from_secs(1)).await, 0);
        assert_eq!(lq.services.running(), 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let before = origin.hits("/health");
            sleep_ms(200).await;
            if origin.hits("/health") == before {
                break;
            }
            assert!(Instant::now() < deadline, "the probe keeps running");
        }
        let settled = origin.hits("/health");
        sleep_ms(300).await;
        assert_eq!(origin.hits("/health"), settled, "the probe keeps running");
    });
}
