//! Backends that misbehave against lacquer's own HTTP/1.1 client
//! (`src/fetch/h1`, `fetch/pool.rs`), from an adversarial pass over it:
//! leading zeros in chunk sizes, an early answer to a large body held in
//! memory, and an upload the backend never reads. (The cases that held up
//! from the start are in `backend_wire.rs`.)

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the backend does for one request.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Sleep(u64),
    /// RST (SO_LINGER 0) and stop.
    Reset,
    /// Never answer, keep the connection open.
    Hang,
}

fn w(b: &[u8]) -> Step {
    Step::Write(b.to_vec())
}

#[derive(Default)]
struct Log {
    connections: AtomicUsize,
    /// (connection number, request line) per request read.
    requests: Mutex<Vec<(usize, String)>>,
    /// Request body bytes read per request.
    bodies: Mutex<Vec<usize>>,
}

type Script = Arc<dyn Fn(&str, usize, &str) -> Vec<Step> + Send + Sync>;

/// Options: read the request body (Content-Length / chunked) before
/// answering; `false` answers right after the head.
async fn script_backend(
    read_body: bool,
    script: impl Fn(&str, usize, &str) -> Vec<Step> + Send + Sync + 'static,
) -> (std::net::SocketAddr, Arc<Log>) {
    let log = Arc::new(Log::default());
    let script: Script = Arc::new(script);
    let l2 = log.clone();
    let addr = tcp_backend(move |s| {
        let log = l2.clone();
        let script = script.clone();
        async move { serve(s, log, script, read_body).await }
    })
    .await;
    (addr, log)
}

async fn fill(s: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = vec![0u8; 65536];
    match s.read(&mut buf).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            got.extend_from_slice(&buf[..n]);
            true
        }
    }
}

async fn serve(mut s: TcpStream, log: Arc<Log>, script: Script, read_body: bool) {
    let conn = log.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let mut got = Vec::new();
    loop {
        let end = loop {
            if let Some(e) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break e;
            }
            if !fill(&mut s, &mut got).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&got[..end]).to_string();
        got.drain(..end + 4);
        let line = head.lines().next().unwrap_or("").to_string();
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let lower = head.to_ascii_lowercase();
        let mut body_len = 0;
        if read_body {
            let cl = lower.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if let Some(len) = cl {
                while got.len() < len {
                    if !fill(&mut s, &mut got).await {
                        return;
                    }
                }
                got.drain(..len);
                body_len = len;
            } else if lower.contains("transfer-encoding: chunked") {
                loop {
                    let le = loop {
                        if let Some(e) = got.windows(2).position(|w| w == b"\r\n") {
                            break e;
                        }
                        if !fill(&mut s, &mut got).await {
                            return;
                        }
                    };
                    let size = usize::from_str_radix(
                        String::from_utf8_lossy(&got[..le])
                            .split(';')
                            .next()
                            .unwrap()
                            .trim(),
                        16,
                    )
                    .unwrap_or(0);
                    got.drain(..le + 2);
                    if size == 0 {
                        while got.len() < 2 {
                            if !fill(&mut s, &mut got).await {
                                return;
                            }
                        }
                        got.drain(..2);
                        break;
                    }
                    while got.len() < size + 2 {
                        if !fill(&mut s, &mut got).await {
                            return;
                        }
                    }
                    got.drain(..size + 2);
                    body_len += size;
                }
            }
        }
        let n = {
            let mut r = log.requests.lock().unwrap();
            r.push((conn, line.clone()));
            r.iter()
                .filter(|(_, l)| l.split(' ').nth(1) == Some(&path))
                .count()
        };
        log.bodies.lock().unwrap().push(body_len);
        for step in script(&path, n, &head) {
            match step {
                Step::Write(b) => {
                    if s.write_all(&b).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Reset => {
                    #[allow(deprecated)] // SO_LINGER 0: a reset, no blocking close
                    let _ = s.set_linger(Some(Duration::ZERO));
                    drop(s);
                    return;
                }
                Step::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
            }
        }
    }
}

/// What a client of lacquer got: status, and the body or the error reading it.
#[derive(Debug)]
struct Seen {
    status: u16,
    body: Result<Bytes, String>,
}

impl Seen {
    fn text(&self) -> String {
        match &self.body {
            Ok(b) => String::from_utf8_lossy(b).into_owned(),
            Err(e) => format!("<body error: {e}>"),
        }
    }
}

async fn req(addr: std::net::SocketAddr, method: &str, path: &str, body: Vec<u8>) -> Seen {
    let fut = async {
        let mut sender = connect(addr).await;
        let r = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test.example")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        match sender.send_request(r).await {
            Ok(resp) => {
                let (parts, b) = resp.into_parts();
                let body = match tokio::time::timeout(Duration::from_secs(5), b.collect()).await {
                    Ok(Ok(c)) => Ok(c.to_bytes()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("body hang".to_string()),
                };
                Seen {
                    status: parts.status.as_u16(),
                    body,
                }
            }
            Err(e) => Seen {
                status: 0,
                body: Err(format!("no response: {e}")),
            },
        }
    };
    tokio::time::timeout(Duration::from_secs(8), fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: lacquer hung"))
}

async fn fetch(addr: std::net::SocketAddr, path: &str) -> Seen {
    req(addr, "GET", path, Vec::new()).await
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn chunk_sizes_with_leading_zeros_are_valid() {
    // RFC 9112 §7.1: chunk-size = 1*HEXDIG, leading zeros allowed (hyper's
    // client, used before, accepted them; only overflow was an error).
    let (addr, _log) = script_backend(true, |path, _, _| match path {
        "/zeros" => vec![w(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n00000000000000000005\r\nhello\r\n0000000000000000000000\r\n\r\n",
        )],
        p => vec![w(&ok(&format!("own answer for {p}")))],
    })
    .await;
    let lq = lacquer(config_for(addr)).await;
    let a = fetch(lq.addr(), "/zeros").await;
    assert_eq!((a.status, a.text().as_str()), (200, "hello"), "{a:?}");
}

/// The backend answers before reading a large upload held in memory
/// (`std.cache_req_body`): a 413 then a close with the body unread (a
/// reset), or a 401 while it waits. Its answer must reach the client, as it
/// does when the same body is streamed (`H1Conn::send_watching`).
#[tokio::test]
async fn an_early_answer_to_a_large_cached_request_body_reaches_the_client() {
    let (addr, _log) = script_backend(false, |path, _, _| match path {
        "/early-close" => vec![
            w(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo long"),
            Step::Sleep(20),
            Step::Reset,
        ],
        "/early-wait" => vec![
            w(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\nlog in"),
            Step::Hang,
        ],
        p => vec![w(&ok(&format!("own answer for {p}")))],
    })
    .await;
    let lq = with_policy_and(
        addr,
        "import std;\nsub vcl_recv { std.cache_req_body(64MB); return (pass); }",
        |c| {
            c.server.max_cached_req_body = lacquer::config::ByteSize(64 << 20);
            c.backend[0].first_byte_timeout = lacquer::config::Seconds(Duration::from_millis(1000));
        },
    )
    .await;
    let a = req(lq.addr(), "POST", "/early-close", vec![b'u'; 32 << 20]).await;
    let b = req(lq.addr(), "POST", "/early-wait", vec![b'u'; 32 << 20]).await;
    assert_eq!(
        [(a.status, a.text()), (b.status, b.text())],
        [(413, "too long".to_string()), (401, "log in".to_string())],
    );
}

/// A streamed upload to a backend that reads the head, then neither reads
/// the body nor answers: lacquer's write blocks, and the client's body is
/// no longer polled (so `server.body_timeout` cannot run) while the
/// first-byte timeout only starts once the body is sent whole. A write the
/// backend takes nothing of for the first-byte timeout ends the exchange
/// with a 504.
#[tokio::test]
async fn an_upload_the_backend_never_reads_ends() {
    let (addr, _log) = script_backend(false, |path, _, _| match path {
        "/never" => vec![Step::Hang],
        p => vec![w(&ok(&format!("own answer for {p}")))],
    })
    .await;
    let mut config = config_for(addr);
    config.backend[0].first_byte_timeout = lacquer::config::Seconds(Duration::from_millis(300));
    config.server.body_timeout = lacquer::config::Seconds(Duration::from_millis(1000));
    let lq = lacquer(config).await;
    // `req` fails after 8 s without an answer.
    let a = req(lq.addr(), "POST", "/never", vec![b'u'; 16 << 20]).await;
    assert_eq!(a.status, 504, "{a:?}");
}
