//! Bodies stream in both directions: a 1 GiB response through a miss and a
//! pass, and a 1 GiB upload, never sit whole in memory. The peak resident
//! size of the test's process (origin, lacquer and client together, alone
//! in a process of their own) stays far below one body's size.
use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Duration;

const GIB: usize = 1 << 30;
const CHUNK: usize = 1 << 20;

async fn download(addr: std::net::SocketAddr, path: &str) -> (u16, String, usize) {
    let resp = get_streaming(addr, path).await;
    let status = resp.status().as_u16();
    let x_cache = resp.headers()["x-cache"].to_str().unwrap().to_string();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    (status, x_cache, n)
}

async fn upload(addr: std::net::SocketAddr, path: &str, size: usize) -> Got {
    let mut sender = connect(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'u'; CHUNK]);
        for _ in 0..size / CHUNK {
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return;
            }
        }
    });
    let req = http::Request::post(path)
        .header("host", "test.example")
        .header("content-length", size.to_string())
        .body(StreamBody::new(RecvStream::new(rx)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_bodies_stream_through_without_being_held() {
    if !in_own_process("large_bodies::one_gib_bodies_stream_through_without_being_held") {
        return;
    }
    let origin = Origin::start().await;
    // Cacheable but over max_object_size, length unknown: a miss that starts
    // out shared and stops retaining once over the limit.
    origin.route("/huge-miss", |_, _| {
        Reply::ok("").header("cache-control", "max-age=60").chunks(
            CHUNK,
            GIB / CHUNK,
            Duration::ZERO,
        )
    });
    origin.route("/huge-pass", |_, _| {
        Reply::ok("")
            .header("cache-control", "no-store")
            .chunks(CHUNK, GIB / CHUNK, Duration::ZERO)
    });
    origin.route("/upload", |seen, _| Reply::ok(seen.body_len.to_string()));
    let lq = lacquer_for(&origin).await;

    assert_eq!(
        download(lq.addr(), "/huge-miss").await,
        (200, "MISS".into(), GIB)
    );
    assert_eq!(
        download(lq.addr(), "/huge-pass").await,
        (200, "MISS".into(), GIB)
    );
    let got = upload(lq.addr(), "/upload", GIB).await;
    assert_eq!((got.status, got.text()), (200, GIB.to_string()));

    let peak = peak_rss_bytes();
    assert!(
        peak < 200 << 20,
        "peak RSS {} MiB: a body was held in memory",
        peak >> 20
    );
}
