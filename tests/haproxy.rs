//! The production shape, for real: HAProxy (balance uri, consistent hashing,
//! httpchk, send-proxy-v2) in front of two lacquer nodes, in front of two app
//! servers. Needs the `haproxy` binary (installed by `.ci/run`); skipped
//! when it is missing unless LACQUER_REQUIRE_HAPROXY=1.
mod common;
use common::*;
use lacquer::config::{BackendConfig, Config, ProbeConfig, Seconds};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn haproxy_bin() -> Option<String> {
    for p in [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ] {
        if std::path::Path::new(p).exists() {
            return Some(p.to_string());
        }
    }
    if std::env::var("LACQUER_REQUIRE_HAPROXY").as_deref() == Ok("1") {
        panic!("haproxy is required (LACQUER_REQUIRE_HAPROXY=1) but not installed");
    }
    eprintln!("haproxy not installed: skipping (set LACQUER_REQUIRE_HAPROXY=1 to fail instead)");
    None
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_haproxy(bin: &str, front: SocketAddr, nodes: &[SocketAddr]) -> Haproxy {
    let dir = std::env::temp_dir().join(format!("lacquer-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = format!(
        "global\n    maxconn 1000\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    option redispatch\n    retries 2\n\
         frontend www\n    bind {front}\n    default_backend lacquer\n\
         backend lacquer\n    balance uri whole\n    hash-type consistent\n    option httpchk GET /healthz\n    http-check expect status 200\n\
         \x20   default-server send-proxy-v2 check inter 100ms fall 2 rise 1\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        cfg.push_str(&format!("    server node{} {n}\n", i + 1));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(bin)
        .args(["-f", path.to_str().unwrap(), "-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    Haproxy(child)
}

fn node_config(name: &str, admin: SocketAddr, peer: SocketAddr, apps: &[&Origin]) -> Config {
    let mut c = config_for(apps[0].addr);
    c.server.proxy_protocol = true;
    c.server.via_name = name.into();
    c.admin.listen = Some(admin);
    c.cluster.peers = vec![peer.to_string()];
    c.cluster.secret = "haproxy-test-shared-secret".into();
    c.backend = apps
        .iter()
        .enumerate()
        .map(|(i, o)| BackendConfig {
            name: format!("app{}", i + 1),
            address: o.addr.to_string(),
            probe: Some(ProbeConfig {
                url: "/health".into(),
                interval: Seconds(Duration::from_millis(100)),
                timeout: Seconds(Duration::from_secs(1)),
                window: 3,
                threshold: 2,
                expected_status: 200,
            }),
            ..BackendConfig::default()
        })
        .collect();
    c
}

/// GET through HAProxy from the client address `from` (another loopback
/// address, so the PROXY protocol's address is distinguishable from
/// HAProxy's own).
async fn get_from(from: &str, front: SocketAddr, path: &str, method: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = socket.connect(front).await else {
        return String::new();
    };
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| {
        l.split_once(": ")
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_two_nodes_two_apps() {
    let Some(bin) = haproxy_bin() else { return };
    let (app1, app2) = (Origin::start().await, Origin::start().await);
    for (app, name) in [(&app1, "app1"), (&app2, "app2")] {
        app.route("/health", |_, _| Reply::new(200));
        for i in 0..20 {
            app.route(&format!("/p/{i}"), move |_, n| {
                Reply::ok(format!("{name} v{n}")).header("cache-control", "max-age=600")
            });
        }
        app.route("/who", |_, _| {
            Reply::ok("who").header("cache-control", "no-store")
        });
    }
    let (admin1, admin2) = (free_addr(), free_addr());
    let node1 = lacquer(node_config("node1", admin1, admin2, &[&app1, &app2])).await;
    let node2 = lacquer(node_config("node2", admin2, admin1, &[&app1, &app2])).await;
    let front = free_addr();
    let _haproxy = start_haproxy(&bin, front, &[node1.addr(), node2.addr()]);
    eventually("haproxy up", async || {
        get_from("127.0.0.1", front, "/healthz", "GET")
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;

    // The same URL always lands on the same node; URLs spread over both.
    let mut nodes_used = std::collections::HashSet::new();
    for i in 0..20 {
        let path = format!("/p/{i}");
        let first = get_from("127.0.0.3", front, &path, "GET").await;
        let via = header(&first, "via").unwrap_or("").to_string();
        for _ in 0..3 {
            let again = get_from("127.0.0.3", front, &path, "GET").await;
            assert_eq!(header(&again, "via"), Some(via.as_str()), "{path} moved");
            assert!(
                header(&again, "x-cache").unwrap_or("").starts_with("HIT"),
                "{again}"
            );
        }
        nodes_used.insert(via);
    }
    assert_eq!(
        nodes_used.len(),
        2,
        "URLs all went to one node: {nodes_used:?}"
    );

    // The client address lacquer sees is the real one (PROXY protocol v2).
    let out = get_from("127.0.0.2", front, "/who", "GET").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = app1.last("/who").or_else(|| app2.last("/who")).unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.2");

    // One PURGE through HAProxy takes effect on both nodes.
    for node in [node1.addr(), node2.addr()] {
        // Store /p/0 on both (PROXY header first: the nodes expect it).
        let mut s = tokio::net::TcpStream::connect(node).await.unwrap();
        s.write_all(b"PROXY TCP4 127.0.0.9 127.0.0.1 1 80\r\nGET /p/0 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
    }
    {
        use lacquer::cache::{CacheKey, Found};
        let key = CacheKey::for_request("shop.example", "/p/0");
        for n in [&node1, &node2] {
            let found = n.proxy.store().lookup(&key, &http::HeaderMap::new());
            assert!(
                matches!(found, Found::Object(_)),
                "/p/0 not stored on a node"
            );
        }
    }
    let purge = get_from("127.0.0.2", front, "/p/0", "PURGE").await;
    assert!(purge.starts_with("HTTP/1.1 200"), "{purge}");
    eventually("purge on both nodes", async || {
        use lacquer::cache::{CacheKey, Found};
        let key = CacheKey::for_request("shop.example", "/p/0");
        [&node1, &node2].iter().all(|n| {
            matches!(
                n.proxy.store().lookup(&key, &http::HeaderMap::new()),
                Found::Nothing
            )
        })
    })
    .await;

    // A killed app server is marked sick by the probe and skipped.
    app1.stop();
    eventually("app1 sick on both nodes", async || {
        [&node1, &node2]
            .iter()
            .all(|n| !n.proxy.director().backends()[0].is_healthy())
    })
    .await;
    for i in 0..4 {
        let out = get_from("127.0.0.3", front, "/who", "GET").await;
        assert!(
            out.starts_with("HTTP/1.1 200"),
            "request {i} failed with app1 down: {out}"
        );
    }

    // A killed node is routed around.
    drop(node1);
    for i in 0..20 {
        let path = format!("/p/{i}");
        eventually("requests served with node1 down", async || {
            let out = get_from("127.0.0.3", front, &path, "GET").await;
            out.starts_with("HTTP/1.1 200") && header(&out, "via") == Some("1.1 node2")
        })
        .await;
    }
}
