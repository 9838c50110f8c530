//! Running behind HAProxy: the PROXY protocol, the health endpoint, and a
//! graceful drain.
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn health_endpoint_fails_while_draining() {
    let origin = Origin::start().await;
    let lq = lacquer_for(&origin).await;
    let ok = get(lq.addr(), "/healthz").await;
    assert_eq!((ok.status, ok.text().contains("ok")), (200, true));
    lq.proxy.start_draining();
    let draining = get(lq.addr(), "/healthz").await;
    assert_eq!(draining.status, 503);
    assert_eq!(origin.total(), 0, "health checks must not reach the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, _| {
        Reply::ok(vec![b's'; 100_000])
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(600))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let in_flight = tokio::spawn(async move { get(addr, "/slow").await });
    wait_until("/slow at the origin", async || origin.hits("/slow") == 1).await;
    let left = lq.shutdown(Duration::from_secs(5)).await;
    assert_eq!(left, 0, "connections left after the drain");
    let got = in_flight.await.unwrap();
    assert_eq!((got.status, got.body.len()), (200, 100_000));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// A client holding an idle keep-alive connection must see it closed at
/// shutdown (each connection watches the stop signal; it wakes the idle
/// ones), not kept until the drain gives up.
#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    cacheable(&origin, "/idle");
    let lq = lacquer_for(&origin).await;
    let mut conn = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    conn.write_all(b"GET /idle HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&head).contains("\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        lq.shutdown(Duration::from_secs(5)).await,
        0,
        "idle connection left open"
    );
    // Whatever of the body was not read yet, then the end.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(_))), "connection not closed: {read:?}");
}

#[tokio::test]
async fn shutdown_gives_up_after_the_drain_timeout() {
    let origin = Origin::start().await;
    origin.route("/stuck", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(5))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let _stuck = tokio::spawn(async move { get(addr, "/stuck").await });
    wait_until("/stuck at the origin", async || origin.hits("/stuck") == 1).await;
    assert_eq!(lq.shutdown(Duration::from_millis(300)).await, 1);
}

async fn proxied(config: lacquer::config::Config) -> lacquer::server::Running {
    let mut config = config;
    config.server.proxy_protocol = true;
    lacquer(config).await
}

#[tokio::test]
async fn the_proxy_protocol_address_is_the_client() {
    let origin = Origin::start().await;
    origin.route("/who", |_, _| {
        Reply::ok("x").header("cache-control", "no-store")
    });
    origin.route("/p", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=60")
    });
    let mut config = config_for(origin.addr);
    config.invalidation.purge_acl =
        lacquer::invalidate::acl::Acl(vec!["203.0.113.0/24".parse().unwrap()]);
    let lq = proxied(config).await;
    let wait = Duration::from_secs(3);

    // v1, as HAProxy's send-proxy writes it.
    let out = raw(
        lq.addr(),
        b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\nGET /who HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = origin.last("/who").unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7");

    // v2 (send-proxy-v2), IPv4.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 1, 0x9c, 0x40, 0, 80,
    ]);
    v2.extend_from_slice(b"GET /who HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let out = raw(lq.addr(), &v2, wait).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(
        origin.last("/who").unwrap().headers["x-forwarded-for"],
        "198.51.100.9"
    );

    // The purge ACL sees the real client, not the balancer's address.
    let purge_from = |ip: &str| {
        format!("PROXY TCP4 {ip} 10.0.0.1 40000 80\r\nPURGE /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    };
    raw(lq.addr(), b"PROXY TCP4 203.0.113.7 10.0.0.1 1 80\r\nGET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", wait).await;
    let refused = raw(lq.addr(), purge_from("192.0.2.1").as_bytes(), wait).await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    let allowed = raw(lq.addr(), purge_from("203.0.113.50").as_bytes(), wait).await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");

    // No header, or a broken one: closed without an answer, nothing fetched.
    let before = origin.total();
    for bad in [
        &b"GET /who HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"PROXY TCP4 not-an-ip 10.0.0.1 1 80\r\nGET /who HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(raw(lq.addr(), bad, wait).await, "");
    }
    assert_eq!(origin.total(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_outcomes_backend_answers_and_storage() {
    let origin = Origin::start().await;
    origin.route("/m", |_, _| {
        Reply::ok("x").header("cache-control", "max-age=60")
    });
    origin.route("/p", |_, _| {
        Reply::ok("y").header("cache-control", "no-store")
    });
    origin.route("/e", |_, _| Reply::new(503));
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    get(a, "/m").await;
    get(a, "/m").await;
    get(a, "/m").await;
    get(a, "/p").await;
    get(a, "/p").await;
    get(a, "/e").await;
    send(a, "PURGE", "/m", &[], "").await;
    let text = get(lq.admin.unwrap(), "/metrics").await.text();
    for line in [
        "lacquer_requests_total{outcome=\"hit\"} 2",
        "lacquer_requests_total{outcome=\"miss\"} 3",
        "lacquer_requests_total{outcome=\"pass\"} 1",
        "lacquer_requests_total{outcome=\"synth\"} 1",
        "lacquer_backend_responses_total{class=\"2xx\"} 3",
        "lacquer_backend_responses_total{class=\"5xx\"} 1",
        "lacquer_invalidations_total{kind=\"purge\"} 1",
        // /m was purged; /p and /e left hit-for-miss markers.
        "lacquer_keys 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn limits_max_connections_and_slow_or_idle_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    origin.route("/", |_, _| Reply::ok("fine"));
    let mut config = config_for(origin.addr);
    config.server.max_connections = 2;
    config.server.header_read_timeout = lacquer::config::Seconds(Duration::from_millis(300));
    let lq = lacquer(config).await;
    // Two connections held open (idle keep-alive)...
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // ...a third is refused with a clear 503.
    let out = raw(
        lq.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 503") && out.contains("too many connections"),
        "{out}"
    );
    // Idle keep-alive connections are closed after header_read_timeout,
    // which frees the slots.
    for s in &mut held {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "idle connection not closed");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A slowloris client sending its head a byte at a time is cut off.
    let mut slow = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890\r\n" {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), slow.read_to_end(&mut rest)).await;
    assert!(closed || started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("200 OK"), "slow client was served: {text}");
    let out = get(lq.addr(), "/").await;
    assert_eq!(out.status, 200, "slots not freed");
}

#[tokio::test]
async fn a_request_body_that_stalls_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    route_with(&origin, "/upload", 200, &[]);
    let lq = lacquer_with(&origin, |c| {
        c.server.body_timeout = lacquer::config::Seconds(Duration::from_millis(300))
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        origin.last("/upload").is_none_or(|s| s.body_len < 100),
        "the origin never got a complete body"
    );
    // A body that keeps coming, however slowly, is passed whole.
    let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for b in b"abcd" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(origin.last("/upload").map(|s| s.body_len), Some(4));
}
