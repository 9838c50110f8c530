//! Request bodies on their way to the backend: the first-byte timeout
//! starts once the body has been sent, and a stalled body is the client's
//! 408, not a backend 504.
use crate::common::*;
use lacquer::config::Seconds;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// lacquer with a short first-byte timeout and the given body timeout.
async fn with_timeouts(
    origin: &Origin,
    first_byte: Duration,
    body: Duration,
) -> lacquer::server::Running {
    lacquer_with(origin, |c| {
        c.backend[0].first_byte_timeout = Seconds(first_byte);
        c.server.body_timeout = Seconds(body);
    })
    .await
}

#[tokio::test]
async fn a_steady_upload_longer_than_the_first_byte_timeout_is_passed_whole() {
    let origin = Origin::start().await;
    origin.route("/upload", |seen, _| Reply::ok(seen.body_len.to_string()));
    let lq = with_timeouts(&origin, Duration::from_millis(400), Duration::from_secs(5)).await;
    let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // 8 pieces, 250 ms apart: 2 s of upload against a 400 ms first-byte timeout.
    for _ in 0..8 {
        s.write_all(&[b'x'; 1000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("\r\n\r\n8000"), "{text}");
    assert_eq!(origin.last("/upload").map(|s| s.body_len), Some(8000));
    let metrics = admin_metrics(&lq).await;
    assert!(
        metrics.contains("lacquer_backend_errors_total 0"),
        "counted as a backend error:\n{metrics}"
    );
}

#[tokio::test]
async fn a_stalled_upload_is_a_408_even_past_the_first_byte_timeout() {
    let origin = Origin::start().await;
    origin.route("/upload", |seen, _| Reply::ok(seen.body_len.to_string()));
    let lq = with_timeouts(
        &origin,
        Duration::from_millis(200),
        Duration::from_millis(800),
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn a_slow_backend_after_the_upload_still_times_out() {
    let origin = Origin::start().await;
    origin.route("/upload", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(2))
    });
    let lq = with_timeouts(&origin, Duration::from_millis(300), Duration::from_secs(5)).await;
    let got = send(
        lq.addr(),
        "POST",
        "/upload",
        &[],
        bytes::Bytes::from_static(b"body"),
    )
    .await;
    assert_eq!(got.status, 504, "{}", got.text());
}

async fn admin_metrics(lq: &lacquer::server::Running) -> String {
    let admin = lq.admin.expect("admin listener");
    get(admin, "/metrics").await.text()
}
