//! Bad input from clients and backends: a clear status, never a panic, a
//! hang, or a half-stored object.
use crate::common::*;
use lacquer::config::Seconds;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(3);

async fn proxy() -> (Origin, lacquer::server::Running) {
    let origin = Origin::start().await;
    origin.route("/", |_, _| Reply::ok("fine"));
    let lq = lacquer_for(&origin).await;
    (origin, lq)
}

/// Writes `request` to `addr` raw, asserts the answer starts with `status`
/// (e.g. "HTTP/1.1 400") and returns the whole answer.
async fn assert_answer(addr: std::net::SocketAddr, request: &[u8], status: &str) -> String {
    let out = raw(addr, request, WAIT).await;
    assert!(out.starts_with(status), "{out}");
    out
}

#[tokio::test]
async fn malformed_request_line_gets_400() {
    let (origin, lq) = proxy().await;
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n",
        // Not origin-form, not absolute-form (RFC 9112 §3.2): not `/`.
        b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a.test:80 HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_answer(lq.addr(), request, "HTTP/1.1 400").await;
    }
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn oversize_headers_get_431() {
    let (origin, lq) = proxy().await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    assert_answer(lq.addr(), big.as_bytes(), "HTTP/1.1 431").await;
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_answer(lq.addr(), many.as_bytes(), "HTTP/1.1 431").await;
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn missing_or_duplicate_host_gets_400() {
    let (origin, lq) = proxy().await;
    let out = assert_answer(lq.addr(), b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400").await;
    assert!(out.contains("without a Host"), "{out}");
    let duplicate = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    assert_answer(lq.addr(), duplicate, "HTTP/1.1 400").await;
    assert_eq!(origin.total(), 0);
}

/// A backend that answers every connection with `reply` then closes.
async fn raw_backend(reply: &'static [u8]) -> std::net::SocketAddr {
    tcp_backend(move |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(reply).await;
        let _ = s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn backend_garbage_gets_502() {
    let addr = raw_backend(b"this is not http\r\n\r\n").await;
    let lq = lacquer(config_for(addr)).await;
    let got = get(lq.addr(), "/").await;
    assert_eq!(got.status, 502);
    assert!(got.text().contains("backend"), "{}", got.text());
}

#[tokio::test]
async fn backend_closing_mid_body_is_not_stored() {
    let addr = raw_backend(
        b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100\r\n\r\nonly part",
    )
    .await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..2 {
        // The client sees a cut-off body, not a complete-looking one.
        let resp = get_streaming(lq.addr(), "/").await;
        assert_eq!(resp.headers()["x-cache"], "MISS");
        use http_body_util::BodyExt;
        assert!(resp.into_body().collect().await.is_err());
    }
    assert_eq!(lq.proxy.store().entry_count(), 0);
}

#[tokio::test]
async fn backend_refusing_connections_gets_502() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let lq = lacquer(config_for(addr)).await;
    let got = get(lq.addr(), "/").await;
    assert_eq!(got.status, 502);
}

#[tokio::test]
async fn backend_timeout_gets_504() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(3))
    });
    let lq = lacquer_with(&origin, |c| {
        c.backend[0].first_byte_timeout = Seconds(Duration::from_millis(200))
    })
    .await;
    let got = get(lq.addr(), "/slow").await;
    assert_eq!(got.status, 504);
    let got = send(lq.addr(), "POST", "/slow", &[], "x").await;
    assert_eq!(got.status, 504);
}

#[tokio::test]
async fn a_stalled_backend_body_is_cut_after_the_between_bytes_timeout() {
    let origin = Origin::start().await;
    origin.route("/stall", |_, _| {
        Reply::ok("")
            .header("cache-control", "max-age=60")
            .chunks(10, 3, Duration::from_secs(2))
    });
    let lq = lacquer_with(&origin, |c| {
        c.backend[0].between_bytes_timeout = Seconds(Duration::from_millis(300))
    })
    .await;
    let out = raw(
        lq.addr(),
        b"GET /stall HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // Chunked body never terminated with the 0-length chunk.
    assert!(!out.ends_with("0\r\n\r\n"), "{out}");
    assert_eq!(lq.proxy.store().entry_count(), 0);
}

/// The status code of a raw answer (`HTTP/1.x NNN ...`).
fn status_of(answer: &str) -> &str {
    answer.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn connect_gets_405_and_an_unasked_101_gets_502() {
    let (origin, lq) = proxy().await;
    let out = assert_answer(
        lq.addr(),
        b"CONNECT t2.test:443 HTTP/1.1\r\nHost: t2.test:443\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 405",
    )
    .await;
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("\r\nallow: get, head,"), "{out}");
    assert!(!lower.contains("connect\r\n"), "{out}");
    assert_eq!(origin.total(), 0, "CONNECT reached the backend");

    // lacquer never asks a backend to upgrade (Upgrade is hop-by-hop), so a
    // 101 is a broken backend: the client gets a 502, not a dead connection.
    let addr = raw_backend(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    let lq = lacquer(config_for(addr)).await;
    let out = raw(
        lq.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status_of(&out), "502", "{out}");
    // A client that asked to upgrade is piped: the backend's 101 is its answer.
    let out = raw(
        lq.addr(),
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(status_of(&out), "101", "{out}");
    let metrics = get(lq.admin.unwrap(), "/metrics").await.text();
    assert!(
        metrics.contains("lacquer_backend_errors_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http10_without_host_gets_400_or_the_default_host() {
    let (origin, lq) = proxy().await;
    let out = raw(lq.addr(), b"GET / HTTP/1.0\r\n\r\n", WAIT).await;
    assert_eq!(status_of(&out), "400", "{out}");
    assert!(out.contains("without a Host"), "{out}");
    assert_eq!(origin.total(), 0);

    let origin = Origin::start().await;
    route_with(&origin, "/d", 200, &[("cache-control", "max-age=60")]);
    let lq = lacquer_with(&origin, |c| {
        c.server.default_host = Some("WWW.T2.test:80".into())
    })
    .await;
    let out = raw(lq.addr(), b"GET /d HTTP/1.0\r\n\r\n", WAIT).await;
    assert_eq!(status_of(&out), "200", "{out}");
    assert!(out.ends_with("/d #1"), "{out}");
    assert_eq!(
        origin.last("/d").unwrap().header_or_none("host"),
        "www.t2.test"
    );
    // The same object as for requests naming that host.
    let got = get_with(lq.addr(), "/d", &[("host", "www.t2.test")]).await;
    assert!(is_hit(&got), "{:?}", got.headers);
    assert_eq!(origin.hits("/d"), 1);
}

#[tokio::test]
async fn a_malformed_chunked_request_body_gets_400_and_is_no_backend_error() {
    let (_origin, lq) = proxy().await;
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(17 * 1024));
    let bodies: [&[u8]; 4] = [
        b"FFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", // size overflow
        b"-5\r\nhello\r\n0\r\n\r\n",                 // negative
        b"5\nhello\r\n0\r\n\r\n",                    // bare LF
        long_extension.as_bytes(),                   // extension too long
    ];
    for body in bodies {
        let mut request =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let out = raw(lq.addr(), &request, WAIT).await;
        assert_eq!(status_of(&out), "400", "{out}");
    }
    let metrics = get(lq.admin.unwrap(), "/metrics").await.text();
    for line in [
        "lacquer_backend_errors_total 0",
        "lacquer_client_errors_total{kind=\"malformed_body\"} 4",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}
