//! What lacquer's own backend client (`src/fetch/h1`) reads off the wire:
//! chunked bodies cut anywhere, close-delimited bodies, interim `1xx`
//! answers, HTTP/1.0 keep-alive, bad framing and oversized heads (502),
//! an answer before an upload ends, and when a connection is reused.

use crate::common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connections accepted and requests read by a [`wire_backend`].
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A backend that reads each request (head, and a `Content-Length` body
/// unless `answer` says to answer at once) and writes `answer(path)`'s
/// pieces with a short pause between them, so that lacquer reads them in
/// separate pieces. A first piece starting with `!` closes the connection
/// after the answer.
async fn wire_backend(answer: fn(&str) -> Vec<&'static [u8]>) -> (std::net::SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    let addr = tcp_backend(move |mut s| {
        let counts = counts.clone();
        async move {
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&got[..end]).to_string();
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                let pieces = answer(&path);
                let early = path.starts_with("/early");
                let len = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while !early && got.len() < end + 4 + len {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                got.drain(..(end + 4 + len).min(got.len()));
                counts.requests.fetch_add(1, Ordering::SeqCst);
                let close = pieces.first().is_some_and(|p| p.starts_with(b"!"));
                for (i, piece) in pieces.iter().enumerate() {
                    let piece = if i == 0 && close { &piece[1..] } else { piece };
                    if s.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if close {
                    let _ = s.shutdown().await;
                    return;
                }
            }
        }
    })
    .await;
    (addr, seen)
}

fn answers(path: &str) -> Vec<&'static [u8]> {
    match path {
        "/chunked" => vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n",
            b"5;name=value\r\nhel",
            b"lo\r",
            b"\n6\r\n wor",
            b"ld\r\n0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ],
        "/close" => vec![
            b"!HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\nall of ",
            b"it",
        ],
        "/continue" => vec![
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok",
        ],
        "/lengths" => vec![
            b"!HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ],
        "/http10-keep" => vec![
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok",
        ],
        "/http10" => {
            // Stays open: lacquer must not reuse it all the same.
            vec![b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok"]
        }
        "/bad-chunk" => vec![
            b"!HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n",
            b"2\r\nok\r\nzz\r\n",
        ],
        "/many" => vec![
            b"!HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nContent-Length: 2\r\n\r\nok",
        ],
        "/four" => vec![
            b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok",
        ],
        "/early" => vec![
            b"!HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo long",
        ],
        _ => vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"],
    }
}

#[tokio::test]
async fn a_chunked_body_cut_anywhere_is_read_whole_and_the_connection_reused() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..3 {
        let got = get(lq.addr(), "/chunked").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "hello world");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one pooled connection"
    );
}

#[tokio::test]
async fn a_body_ended_by_the_close_is_read_to_it_and_its_connection_not_reused() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..2 {
        let got = get(lq.addr(), "/close").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "all of it");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_interim_100_is_skipped_for_the_final_answer() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..2 {
        let got = get(lq.addr(), "/continue").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "ok");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http10_answers_keep_their_connection_only_with_keep_alive() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..2 {
        assert_eq!(get(lq.addr(), "/http10-keep").await.text(), "ok");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    // The first goes out on the pooled connection; after each, a new one.
    for expected in [1, 2, 3] {
        assert_eq!(get(lq.addr(), "/http10").await.text(), "ok");
        assert_eq!(seen.connections.load(Ordering::SeqCst), expected);
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn conflicting_lengths_are_a_502() {
    let (addr, _) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    let got = get(lq.addr(), "/lengths").await;
    assert_eq!(got.status, 502);
    assert!(!got.text().contains("hello"), "{}", got.text());
}

#[tokio::test]
async fn a_bad_chunk_cuts_the_body_and_nothing_is_stored() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    for _ in 0..2 {
        let resp = get_streaming(lq.addr(), "/bad-chunk").await;
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        assert!(resp.into_body().collect().await.is_err());
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    assert_eq!(lq.proxy.store().entry_count(), 0);
}

#[tokio::test]
async fn heads_past_the_backend_limits_are_a_502() {
    let (addr, _) = wire_backend(|path| match path {
        "/big" => vec![
            b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n",
            &[b'x'; 700],
            b": 1\r\n",
            &[b'y'; 700],
            b": 2\r\n\r\nok",
        ],
        other => answers(other),
    })
    .await;
    let mut config = config_for(addr);
    config.backend[0].max_response_head = lacquer::config::ByteSize(1024);
    config.backend[0].max_response_headers = 4;
    let lq = lacquer(config).await;
    assert_eq!(get(lq.addr(), "/four").await.text(), "ok");
    let big = get(lq.addr(), "/big").await;
    assert_eq!(big.status, 502);
    assert_eq!(get(lq.addr(), "/many").await.status, 502);
    let admin = lq.admin.expect("admin listener");
    let errors = get(admin, "/backends").await.text();
    assert!(errors.contains("max_response_head"), "{errors}");
    assert_eq!(get(lq.addr(), "/four").await.text(), "ok");
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_reaches_the_client() {
    let (addr, seen) = wire_backend(answers).await;
    let lq = lacquer(config_for(addr)).await;
    let got = send(lq.addr(), "POST", "/early", &[], vec![b'u'; 4 << 20]).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.text(), "too long");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}
