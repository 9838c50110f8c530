//! Adversarial review of session 20: fields `vcl_deliver` sets on a hit
//! written from the stored object go among the delivery's few fields
//! (`resp_fields::set`) while the response's map is empty, and those are
//! written as the `first` fields `h1::encode::encode_head` does not read.
//! The review found that a `Connection: close` or a `Date` the policy set
//! there was written but not acted on (the connection kept open, a second
//! `Date` added); such names now always go to the map
//! (`h1::read_by_encoder`). The policy's field lands among the delivery's
//! only while their list has room: here `unset resp.http.Via; unset
//! resp.http.X-Varnish;` first (common in production VCLs), leaving Age,
//! X-Cache, Accept-Ranges.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A vcl_deliver that removes lacquer's `Via` and `X-Varnish` first
/// (leaving room among the delivery's fields), then runs `set`.
fn deliver_setting(set: &str) -> String {
    format!(
        "sub vcl_deliver {{\n    unset resp.http.Via;\n    unset resp.http.X-Varnish;\n    {set}\n}}\n"
    )
}

/// `set resp.http.Connection = "close"` in vcl_deliver: Varnish closes
/// the connection after the response, on a miss and on a hit alike; a
/// pipelined second request is not answered.
#[tokio::test]
async fn connection_close_set_in_vcl_deliver_on_a_hit_closes_the_connection() {
    let origin = Origin::start().await;
    cacheable(&origin, "/c");
    let lq = with_policy(
        origin.addr,
        &deliver_setting(r#"set resp.http.Connection = "close";"#),
    )
    .await;
    let a = lq.addr();
    let two = b"GET /c HTTP/1.1\r\nHost: test.example\r\n\r\nGET /c HTTP/1.1\r\nHost: test.example\r\n\r\n";
    // The miss: the field is in the response's map, the connection closes.
    let miss = raw(a, two, Duration::from_secs(3)).await;
    assert_eq!(miss.matches("HTTP/1.1 200").count(), 1, "miss: {miss}");
    wait_stored(&lq, "/c").await;
    let hit = raw(a, two, Duration::from_secs(3)).await;
    assert!(hit.contains("HIT"), "{hit}");
    let first = hit.split("HTTP/1.1 200").nth(1).unwrap_or("");
    assert!(
        first.to_ascii_lowercase().contains("connection: close"),
        "{hit}"
    );
    assert_eq!(
        hit.matches("HTTP/1.1 200").count(),
        1,
        "a second response after `Connection: close` on a hit: {hit}"
    );
    assert_eq!(origin.hits("/c"), 1);
}

/// An origin answering without `Date` (the object has none), and a
/// vcl_deliver that sets one: a response has one `Date`, the policy's
/// (the server adds none), on a miss and on a hit alike.
#[tokio::test]
async fn date_set_in_vcl_deliver_on_a_hit_is_written_once() {
    let backend = tcp_backend(|mut s: TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        loop {
            let Ok(n) = s.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                got.drain(..end + 4);
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: max-age=600\r\n\r\nbody",
                    )
                    .await;
            }
        }
    })
    .await;
    let lq = with_policy(
        backend,
        &deliver_setting(r#"set resp.http.Date = "Mon, 01 Jan 2024 00:00:00 GMT";"#),
    )
    .await;
    let a = lq.addr();
    let req = b"GET /d HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n";
    let miss = raw(a, req, Duration::from_secs(3)).await;
    let dates = |r: &str| {
        field_lines(r)
            .into_iter()
            .filter(|l| l.starts_with("date: "))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dates(&miss),
        ["date: Mon, 01 Jan 2024 00:00:00 GMT"],
        "miss: {miss}"
    );
    wait_stored(&lq, "/d").await;
    let hit = raw(a, req, Duration::from_secs(3)).await;
    assert!(hit.contains("HIT"), "{hit}");
    assert_eq!(
        dates(&hit),
        ["date: Mon, 01 Jan 2024 00:00:00 GMT"],
        "hit: {hit}"
    );
}
