//! Adversarial checks of lacquer's own HTTP/1.1 server side (`src/h1`):
//! raw bytes over TCP to a real lacquer, responses parsed by hand, with
//! origins that count their hits. Pipelining, request bodies (pieces,
//! chunked, large, unread, cut), framing errors, response framing (HEAD,
//! 204, 304, chunked and close-delimited, HTTP/1.0), heads (split
//! anywhere, limits, bad bytes, targets, methods), timeouts, shutdown and
//! upgrades.
use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lacquer::config::{ByteSize, Seconds};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- a raw client ----

/// How long any single wait for the server lasts.
const WAIT: Duration = Duration::from_secs(5);

/// A response as it came off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// The status line and fields, as sent.
    head: String,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.fields
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response says the connection closes after it.
    fn says_close(&self) -> bool {
        self.fields.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }
}

/// A client connection with what it read and has not yet consumed.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Wire {
    async fn connect(addr: SocketAddr) -> Wire {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        Wire {
            s,
            buf: Vec::new(),
            eof: false,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// Writes `bytes`, ignoring a failure (the server may have closed).
    async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).await.is_ok()
    }

    /// Reads more; false at the end of the stream or after `WAIT`.
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = vec![0u8; 64 << 10];
        match tokio::time::timeout(WAIT, self.s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => {
                self.eof = true;
                false
            }
            Err(_) => false,
        }
    }

    /// The next line (without its CRLF), consumed.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next response (an interim `1xx` too); `head_request`: the
    /// request was a HEAD (no body whatever the fields say). `None` when
    /// the connection ended (or went quiet) before a whole one.
    async fn response(&mut self, head_request: bool) -> Option<Resp> {
        let status_line = self.line().await?;
        let status: u16 = status_line.get(9..12)?.parse().ok()?;
        let mut head = format!("{status_line}\r\n");
        let mut fields = Vec::new();
        loop {
            let l = self.line().await?;
            head.push_str(&l);
            head.push_str("\r\n");
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':')?;
            fields.push((k.to_string(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            head,
            fields,
            body: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"))
        {
            loop {
                let size_line = self.line().await?;
                let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    // Trailers, up to the blank line.
                    while !self.line().await?.is_empty() {}
                    return Some(resp);
                }
                let data = self.exact(size).await?;
                resp.body.extend_from_slice(&data);
                if self.exact(2).await? != b"\r\n" {
                    return None;
                }
            }
        }
        if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().ok()?;
            resp.body = self.exact(n).await?;
            return Some(resp);
        }
        // Delimited by the close.
        while self.fill().await {}
        if !self.eof {
            return None;
        }
        resp.body = std::mem::take(&mut self.buf);
        Some(resp)
    }

    /// The next final response (interim ones skipped).
    async fn final_response(&mut self, head_request: bool) -> Option<Resp> {
        loop {
            let r = self.response(head_request).await?;
            if r.status >= 200 {
                return Some(r);
            }
        }
    }

    /// Whether the server closes the connection within `limit` with
    /// nothing more sent (bytes that come are kept in `buf`).
    async fn closed_within(&mut self, limit: Duration) -> bool {
        if self.eof {
            return true;
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.eof = true;
                    return true;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return false,
            }
        }
    }

    /// Everything until the server closes (or `limit` passes).
    async fn rest(&mut self, limit: Duration) -> String {
        self.closed_within(limit).await;
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// `n` bytes of a pattern that does not repeat every power of two.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

// ---- an origin that echoes request bodies ----

/// An origin answering every request with its own body (`no-store`), the
/// method and path in `x-method` / `x-path`, and counting them.
struct Echo {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Bodies seen, in order.
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn echo_origin() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let (h, b) = (hits.clone(), bodies.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (h, b) = (h.clone(), b.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (h, b) = (h.clone(), b.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().to_string();
                        let body = match req.into_body().collect().await {
                            Ok(c) => c.to_bytes().to_vec(),
                            Err(_) => b"<cut>".to_vec(),
                        };
                        h.fetch_add(1, Ordering::SeqCst);
                        b.lock().unwrap().push(body.clone());
                        let resp = http::Response::builder()
                            .header("cache-control", "no-store")
                            .header("x-method", method)
                            .header("x-path", path)
                            .body(Full::new(Bytes::from(body)))
                            .expect("response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Echo { addr, hits, bodies }
}

impl Echo {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn last_body(&self) -> Option<Vec<u8>> {
        self.bodies.lock().unwrap().last().cloned()
    }
}

async fn lacquer_echo(echo: &Echo) -> lacquer::server::Running {
    lacquer(config_for(echo.addr)).await
}

// ---- pipelining ----

/// GET (miss), HEAD, POST with a body, GET (hit) and a 404 in one write:
/// five answers, in order, each whole, nothing of one in another.
#[tokio::test]
async fn pipelined_get_head_post_get_come_back_in_order_and_whole() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    origin.route("/post", |seen, _| {
        Reply::ok(format!("post {}", seen.body_len)).header("cache-control", "no-store")
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n\
          HEAD /a HTTP/1.1\r\nHost: test.example\r\n\r\n\
          POST /post HTTP/1.1\r\nHost: test.example\r\nContent-Length: 11\r\n\r\nhello world\
          GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /none HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let r1 = w.final_response(false).await.expect("first");
    assert_eq!((r1.status, r1.text().as_str()), (200, "/a v1"), "{r1:?}");
    let r2 = w.final_response(true).await.expect("HEAD");
    assert_eq!(r2.status, 200, "{r2:?}");
    assert_eq!(r2.header("content-length"), Some("5"), "{}", r2.head);
    let r3 = w.final_response(false).await.expect("POST");
    assert_eq!((r3.status, r3.text().as_str()), (200, "post 11"), "{r3:?}");
    let r4 = w.final_response(false).await.expect("fourth");
    assert_eq!((r4.status, r4.text().as_str()), (200, "/a v1"), "{r4:?}");
    let r5 = w.final_response(false).await.expect("fifth");
    assert_eq!(r5.status, 404, "{r5:?}");
    for r in [&r1, &r2, &r3, &r4, &r5] {
        assert_eq!(r.count("date"), 1, "{}", r.head);
        assert!(!r.says_close(), "{}", r.head);
    }
    assert!(w.buf.is_empty(), "bytes after five answers: {:?}", w.buf);
    assert_eq!(origin.hits("/a"), 1);
    assert_eq!(origin.hits("/post"), 1);
    // Still open for more.
    w.send(b"GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    assert_eq!(
        w.final_response(false).await.expect("sixth").text(),
        "/a v1"
    );
}

/// A request pipelined behind one with `Connection: close` is never
/// answered (nor fetched): the close comes after the first answer.
#[tokio::test]
async fn a_request_pipelined_after_connection_close_is_not_answered() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    cacheable(&origin, "/b");
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("first");
    assert_eq!(r.text(), "/a v1");
    assert!(r.says_close(), "{}", r.head);
    let rest = w.rest(WAIT).await;
    assert!(w.eof, "not closed after Connection: close");
    assert!(rest.is_empty(), "answered after Connection: close: {rest}");
    assert_eq!(origin.hits("/b"), 0);
}

/// Empty lines before a head and between pipelined heads are skipped
/// (RFC 9112 §2.2).
#[tokio::test]
async fn empty_lines_before_and_between_heads_are_skipped() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: test.example\r\n\r\n\r\nGET /a HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    for i in 0..2 {
        let r = w.final_response(false).await.expect("answer");
        assert_eq!((r.status, r.text().as_str()), (200, "/a v1"), "{i}: {r:?}");
    }
}

/// A bad head behind good ones: the good ones are answered first, then a
/// 400, then the close.
#[tokio::test]
async fn a_bad_head_behind_good_ones_is_answered_400_after_them() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /a HTTP/1.1\r\nHost t\r\n\r\n",
    )
    .await;
    for _ in 0..2 {
        assert_eq!(w.final_response(false).await.expect("ok").text(), "/a v1");
    }
    let bad = w.final_response(false).await.expect("400");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(w.closed_within(WAIT).await);
}

// ---- request bodies ----

/// A `Content-Length` body sent a few bytes at a time reaches the origin
/// whole, and the connection carries the next request.
#[tokio::test]
async fn a_length_body_in_many_small_pieces_reaches_the_origin_whole() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let body = pattern(3000);
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        format!(
            "POST /up HTTP/1.1\r\nHost: test.example\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    for piece in body.chunks(7) {
        w.send(piece).await;
        if piece[0] % 5 == 0 {
            sleep_ms(1).await;
        }
    }
    let r = w.final_response(false).await.expect("answer");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, body);
    assert_eq!(echo.last_body(), Some(body));
    w.send(b"POST /up HTTP/1.1\r\nHost: test.example\r\nContent-Length: 2\r\n\r\nok")
        .await;
    assert_eq!(w.final_response(false).await.expect("second").text(), "ok");
    assert_eq!(echo.hits(), 2);
}

/// A chunked body with extensions, a zero-padded size, a size in
/// uppercase hex and trailer fields, sent in pieces cut inside the
/// framing: the origin gets exactly the data.
#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers_reaches_the_origin_decoded() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let mut w = Wire::connect(lq.addr()).await;
    let data = pattern(0x1A + 5);
    let mut wire =
        b"POST /c HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    wire.extend_from_slice(b"5;name=value;quoted=\"a;b\"\r\n");
    wire.extend_from_slice(&data[..5]);
    wire.extend_from_slice(b"\r\n001A\r\n");
    wire.extend_from_slice(&data[5..]);
    wire.extend_from_slice(b"\r\n0;last=1\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n");
    // The next request right behind it.
    wire.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: test.example\r\n\r\n");
    for piece in wire.chunks(9) {
        w.send(piece).await;
        sleep_ms(1).await;
    }
    let r = w.final_response(false).await.expect("answer");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, data);
    // The trailers were read past: the next request is understood.
    let next = w.final_response(false).await.expect("next");
    assert_eq!(next.header("x-path"), Some("/after"), "{next:?}");
    assert_eq!(echo.hits(), 2);
}

/// A 1 MiB upload (larger than any read buffer) goes to the origin byte
/// for byte and comes back byte for byte; the connection carries on.
#[tokio::test]
async fn a_one_mib_upload_and_its_echo_are_byte_exact() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let body = pattern((1 << 20) + 17);
    let mut w = Wire::connect(lq.addr()).await;
    let mut wire = format!(
        "PUT /big HTTP/1.1\r\nHost: test.example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: test.example\r\n\r\n");
    // Written from another task: the answer streams back meanwhile.
    let (rd, mut wr) = w.s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&wire).await.expect("write");
        wr
    });
    let s = rd.reunite(writer.await.expect("writer")).expect("reunite");
    w.s = s;
    let r = w.final_response(false).await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed body differs");
    let next = w.final_response(false).await.expect("next");
    assert_eq!(next.header("x-path"), Some("/next"), "{next:?}");
    // The PUT's body, not the last one: the pipelined GET may have reached
    // the origin as soon as the PUT's answer was written.
    let first = echo.bodies.lock().unwrap().first().cloned();
    assert!(first == Some(body), "origin's body differs");
}

/// A 1 MiB upload written while the answer streams back (the writer does
/// not wait), in a separate task: same as above through chunked coding.
#[tokio::test]
async fn a_one_mib_chunked_upload_is_byte_exact() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let body = pattern(1 << 20);
    let mut wire =
        b"POST /bigc HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(10_000) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let w = Wire::connect(lq.addr()).await;
    let (rd, mut wr) = w.s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&wire).await.expect("write");
        wr
    });
    let mut w = Wire {
        s: rd.reunite(writer.await.expect("writer")).expect("reunite"),
        buf: Vec::new(),
        eof: false,
    };
    let r = w.final_response(false).await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.body == body,
        "echoed body differs ({} bytes)",
        r.body.len()
    );
    assert!(echo.last_body() == Some(body), "origin's body differs");
}

/// A POST answered by the policy without its body being read (a synth),
/// with a GET pipelined behind the body: the body is skipped, the GET is
/// answered, the origin never sees the POST.
#[tokio::test]
async fn an_unread_body_is_skipped_and_the_next_request_answered() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/deny") { return (synth(403, "No")); }
        }"#,
    )
    .await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"POST /deny HTTP/1.1\r\nHost: test.example\r\nContent-Length: 13\r\n\r\nGET /a HTTP/1\
          GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("403");
    assert_eq!(r.status, 403, "{r:?}");
    let next = w.final_response(false).await.expect("the GET");
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "/a v1"),
        "{next:?}"
    );
    assert_eq!(origin.hits("/deny"), 0);
    assert_eq!(origin.hits("/a"), 1);
    // A chunked one the same way.
    w.send(
        b"POST /deny HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    assert_eq!(w.final_response(false).await.expect("403").status, 403);
    let g = w.final_response(false).await.expect("GET");
    assert_eq!(g.text(), "/a v1", "{g:?}");
}

/// A GET with a body answered from the cache: the body is not taken for
/// the next request.
#[tokio::test]
async fn a_get_with_a_body_answered_from_cache_leaves_no_bytes_behind() {
    let origin = Origin::start().await;
    cacheable(&origin, "/g");
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/g").await.text(), "/g v1");
    wait_stored(&lq, "/g").await;
    let mut w = Wire::connect(lq.addr()).await;
    let smuggled = "GET /evil HTTP/1.1\r\nHost: test.example\r\n";
    w.send(
        format!(
            "GET /g HTTP/1.1\r\nHost: test.example\r\nContent-Length: {}\r\n\r\n{smuggled}\
             GET /g HTTP/1.1\r\nHost: test.example\r\n\r\n",
            smuggled.len()
        )
        .as_bytes(),
    )
    .await;
    for i in 0..2 {
        let r = w.final_response(false).await.expect("answer");
        assert_eq!((r.status, r.text().as_str()), (200, "/g v1"), "{i}: {r:?}");
    }
    assert_eq!(origin.hits("/evil"), 0);
}

/// A client that closes in the middle of a body: the origin never gets a
/// complete request of that length, and lacquer goes on serving.
#[tokio::test]
async fn a_client_closing_mid_body_sends_nothing_whole_to_the_origin() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(b"POST /cut HTTP/1.1\r\nHost: test.example\r\nContent-Length: 1000\r\n\r\n")
            .await;
        w.send(&pattern(100)).await;
        sleep_ms(100).await;
    }
    sleep_ms(300).await;
    assert!(
        !echo.bodies.lock().unwrap().iter().any(|b| b.len() == 1000),
        "a whole body reached the origin"
    );
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"POST /ok HTTP/1.1\r\nHost: test.example\r\nContent-Length: 2\r\n\r\nok")
        .await;
    assert_eq!(w.final_response(false).await.expect("answer").text(), "ok");
}

/// A body that stalls longer than `server.body_timeout` is answered 408
/// and the connection is closed (its framing is lost).
#[tokio::test]
async fn a_stalled_body_is_answered_408_and_the_connection_closed() {
    let echo = echo_origin().await;
    let lq = lacquer_with_addr(echo.addr, |c| {
        c.server.body_timeout = Seconds(Duration::from_millis(300));
    })
    .await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"POST /stall HTTP/1.1\r\nHost: test.example\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let r = w.final_response(false).await.expect("an answer");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(w.closed_within(WAIT).await, "connection left open");
}

async fn lacquer_with_addr(
    origin: SocketAddr,
    tweak: impl FnOnce(&mut lacquer::config::Config),
) -> lacquer::server::Running {
    let mut c = config_for(origin);
    tweak(&mut c);
    lacquer(c).await
}

/// Bad chunked framing in a request body: a 400 (the client's fault),
/// the connection closed, and no complete request at the origin.
#[tokio::test]
async fn bad_chunked_framing_is_answered_400() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    for (i, body) in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
    ]
    .iter()
    .enumerate()
    {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(b"POST /bad HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        w.try_send(body).await;
        let r = w.final_response(false).await;
        let status = r.as_ref().map(|r| r.status);
        assert_eq!(status, Some(400), "case {i}: {r:?}");
        assert!(w.closed_within(WAIT).await, "case {i}: left open");
    }
    assert!(
        !echo
            .bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.starts_with(b"hello") && b.len() == 5),
        "a body with bad framing was passed on whole"
    );
}

/// Framing that cannot be trusted is refused with 400 before anything is
/// fetched: Transfer-Encoding with Content-Length, a Transfer-Encoding
/// not ending in chunked, on HTTP/1.0, bad or conflicting lengths, a space
/// before the colon.
#[tokio::test]
async fn untrustworthy_framing_is_refused_400_and_closed() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let cases: &[&[u8]] = &[
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST /x HTTP/1.0\r\nHost: test.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5x\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: -5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5, 6\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length:\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length : 5\r\n\r\nhello",
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ];
    for (i, wire) in cases.iter().enumerate() {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(wire).await;
        let r = w.final_response(false).await;
        assert_eq!(
            r.as_ref().map(|r| r.status),
            Some(400),
            "case {i} {:?}: {r:?}",
            String::from_utf8_lossy(wire)
        );
        assert!(w.closed_within(WAIT).await, "case {i}: left open");
    }
    assert_eq!(echo.hits(), 0);
    // Equal lengths, as a list or repeated, are one length: answered (or
    // refused) with the body read past, never taken for the next request.
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"POST /x HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nGET /\
          GET /y HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("answer");
    assert!(
        (r.status, r.text().as_str()) == (200, "GET /") || r.status == 400,
        "{r:?}"
    );
    if !w.closed_within(Duration::from_millis(200)).await {
        let next = w.final_response(false).await.expect("next");
        assert_eq!(next.header("x-path"), Some("/y"), "{next:?}");
    }
}

/// `Expect: 100-continue`: the `100` comes before the body is sent, the
/// final answer after it; the connection carries the next request.
#[tokio::test]
async fn expect_100_continue_then_the_body_then_the_next_request() {
    let echo = echo_origin().await;
    let lq = lacquer_echo(&echo).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"PUT /e HTTP/1.1\r\nHost: test.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let interim = w.response(false).await.expect("interim");
    assert_eq!(interim.status, 100, "{interim:?}");
    assert!(
        w.buf.is_empty(),
        "more than the 100 before the body: {:?}",
        w.buf
    );
    w.send(b"hello").await;
    let r = w.final_response(false).await.expect("final");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{r:?}");
    // A client that does not wait for the 100 and sends the body at once
    // is answered once, without a 100 in the middle of anything.
    w.send(b"PUT /e HTTP/1.1\r\nHost: test.example\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    let r = w.final_response(false).await.expect("final");
    assert_eq!((r.status, r.text().as_str()), (200, "abc"), "{r:?}");
    w.send(b"GET /z HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    let r = w.response(false).await.expect("next");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-path"), Some("/z"));
}

/// `Expect: 100-continue` on a request answered without its body (a
/// synth): the final answer comes without a `100` before it; the origin
/// sees nothing.
#[tokio::test]
async fn expect_100_continue_answered_without_the_body_gets_no_100() {
    let origin = Origin::start().await;
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/deny") { return (synth(403, "No")); }
        }"#,
    )
    .await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"POST /deny HTTP/1.1\r\nHost: test.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let r = w.response(false).await.expect("answer");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(origin.total(), 0);
    // The connection may close (the body was never asked for); if it
    // stays open the body must not be read as a request.
    if !w.closed_within(Duration::from_millis(300)).await {
        w.send(b"hello").await;
        w.send(b"GET /deny HTTP/1.1\r\nHost: test.example\r\n\r\n")
            .await;
        let next = w.final_response(false).await;
        assert!(
            next.as_ref().is_none_or(|n| n.status == 403),
            "the body was read as a request: {next:?}"
        );
    }
}

// ---- response framing ----

/// HEAD: no body bytes on a miss (where the answer is fetched) nor on a
/// hit, `Content-Length` kept; the next pipelined request is parsed right.
#[tokio::test]
async fn head_answers_carry_their_length_and_no_body() {
    let origin = Origin::start().await;
    cacheable(&origin, "/h");
    origin.route("/stream", |_, _| {
        Reply::new(200)
            .header("cache-control", "no-store")
            .chunks(1000, 3, Duration::ZERO)
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"HEAD /h HTTP/1.1\r\nHost: test.example\r\n\r\n\
          HEAD /h HTTP/1.1\r\nHost: test.example\r\n\r\n\
          HEAD /stream HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /h HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    for i in 0..2 {
        let r = w.final_response(true).await.expect("HEAD");
        assert_eq!(r.status, 200, "{i}: {r:?}");
        assert_eq!(r.header("content-length"), Some("5"), "{i}: {}", r.head);
    }
    let r = w.final_response(true).await.expect("HEAD of a stream");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("transfer-encoding").is_none() || r.header("content-length").is_none());
    let g = w.final_response(false).await.expect("GET");
    assert_eq!((g.status, g.text().as_str()), (200, "/h v1"), "{g:?}");
    assert!(
        w.buf.is_empty(),
        "stray bytes: {:?}",
        String::from_utf8_lossy(&w.buf)
    );
}

/// A 304 to a conditional request on a cached object has no body (its
/// `Content-Length`, if any, is not followed by bytes); the next
/// pipelined request is answered right.
#[tokio::test]
async fn a_304_on_a_cached_object_has_no_body() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/e", &[("etag", "\"v1\"")]);
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/e").await.text(), "/e v1");
    wait_stored(&lq, "/e").await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /e HTTP/1.1\r\nHost: test.example\r\nIf-None-Match: \"v1\"\r\n\r\n\
          GET /e HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("304");
    assert_eq!(r.status, 304, "{r:?}");
    assert!(r.header("transfer-encoding").is_none(), "{}", r.head);
    let g = w.final_response(false).await.expect("GET");
    assert_eq!((g.status, g.text().as_str()), (200, "/e v1"), "{g:?}");
    assert_eq!(origin.hits("/e"), 1);
}

/// A 204 from the origin: no body, no chunked coding; the connection goes
/// on.
#[tokio::test]
async fn a_204_from_the_origin_has_no_body() {
    let origin = Origin::start().await;
    origin.route("/nc", |_, _| {
        Reply::new(204).header("cache-control", "no-store")
    });
    cacheable(&origin, "/a");
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /nc HTTP/1.1\r\nHost: test.example\r\n\r\n\
          DELETE /nc HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    for i in 0..2 {
        let r = w.final_response(false).await.expect("204");
        assert_eq!(r.status, 204, "{i}: {r:?}");
        assert!(r.header("transfer-encoding").is_none(), "{}", r.head);
        assert!(
            r.header("content-length").is_none_or(|v| v == "0"),
            "{}",
            r.head
        );
    }
    let g = w.final_response(false).await.expect("GET");
    assert_eq!(g.text(), "/a v1", "{g:?}");
}

/// A miss streamed from an origin that sends no length: chunked on
/// HTTP/1.1 (the connection goes on), delimited by the close on HTTP/1.0
/// — with and without `Connection: keep-alive` — with no chunked coding
/// and no `Connection: keep-alive` promised.
#[tokio::test]
async fn an_unknown_length_is_chunked_on_1_1_and_close_delimited_on_1_0() {
    let origin = Origin::start().await;
    origin.route("/s", |_, _| {
        Reply::new(200).header("cache-control", "no-store").chunks(
            3000,
            5,
            Duration::from_millis(5),
        )
    });
    origin.route("/big-pieces", |_, _| {
        Reply::new(200).header("cache-control", "no-store").chunks(
            40_000,
            3,
            Duration::from_millis(5),
        )
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET /s HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("1.1");
    assert!(r.head.starts_with("HTTP/1.1 200"), "{}", r.head);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{}", r.head);
    assert_eq!(r.body, vec![b'x'; 15000]);
    w.send(b"GET /s HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    assert_eq!(
        w.final_response(false).await.expect("again").body.len(),
        15000
    );
    // Pieces larger than what is copied into the write buffer.
    w.send(b"GET /big-pieces HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("big pieces");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{}", r.head);
    assert_eq!(r.body, vec![b'x'; 120_000]);
    // Asked to close: still chunked, said closed, closed.
    w.send(b"GET /s HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("closing");
    assert_eq!(r.body.len(), 15000);
    assert!(r.says_close(), "{}", r.head);
    assert!(w.closed_within(WAIT).await);
    for ka in ["", "Connection: keep-alive\r\n"] {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(format!("GET /s HTTP/1.0\r\nHost: test.example\r\n{ka}\r\n").as_bytes())
            .await;
        let r = w.final_response(false).await.expect("1.0");
        assert!(r.head.starts_with("HTTP/1.0 200"), "{ka:?}: {}", r.head);
        assert!(
            r.header("transfer-encoding").is_none(),
            "{ka:?}: {}",
            r.head
        );
        assert!(
            !r.head.to_ascii_lowercase().contains("keep-alive"),
            "{ka:?}: keep-alive promised on a close-delimited body: {}",
            r.head
        );
        assert_eq!(r.body, vec![b'x'; 15000], "{ka:?}");
    }
}

/// HTTP/1.0: kept alive only when asked (`Connection: keep-alive`, said
/// back), closed otherwise; the status line says HTTP/1.0.
#[tokio::test]
async fn http_1_0_keep_alive_only_when_asked() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET /a HTTP/1.0\r\nHost: test.example\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("first");
    assert!(r.head.starts_with("HTTP/1.0 200"), "{}", r.head);
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
        "{}",
        r.head
    );
    w.send(b"GET /a HTTP/1.0\r\nHost: test.example\r\nConnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(
        w.final_response(false).await.expect("second").text(),
        "/a v1"
    );
    w.send(b"GET /a HTTP/1.0\r\nHost: test.example\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("third");
    assert_eq!(r.text(), "/a v1");
    assert!(
        !r.head.to_ascii_lowercase().contains("keep-alive"),
        "{}",
        r.head
    );
    assert!(
        w.closed_within(WAIT).await,
        "HTTP/1.0 without keep-alive left open"
    );
}

/// A 2 MiB cacheable body: the miss and the hit on one connection are
/// both byte-exact, and so is a range of it.
#[tokio::test]
async fn a_two_mib_body_is_byte_exact_on_miss_hit_and_range() {
    let origin = Origin::start().await;
    let body = Bytes::from(pattern(2 << 20));
    let b = body.clone();
    origin.route("/big", move |_, _| {
        Reply::ok(b.clone()).header("cache-control", "max-age=600")
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("miss");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.body == body, "miss differs ({} bytes)", r.body.len());
    wait_stored(&lq, "/big").await;
    w.send(
        b"GET /big HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /big HTTP/1.1\r\nHost: test.example\r\nRange: bytes=1048570-1048589\r\n\r\n\
          GET /big HTTP/1.1\r\nHost: test.example\r\nRange: bytes=-7\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("hit");
    assert!(r.body == body, "hit differs ({} bytes)", r.body.len());
    let r = w.final_response(false).await.expect("range");
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.header("content-length"), Some("20"), "{}", r.head);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1048570-1048589/{}", body.len()).as_str())
    );
    assert_eq!(&r.body[..], &body[1048570..1048590]);
    let r = w.final_response(false).await.expect("suffix range");
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(&r.body[..], &body[body.len() - 7..]);
    assert_eq!(origin.hits("/big"), 1);
}

// ---- heads ----

/// A head sent one byte at a time is served; so is one cut at every
/// byte boundary, on one keep-alive connection.
#[tokio::test]
async fn a_head_split_anywhere_is_served() {
    let origin = Origin::start().await;
    origin.route("/p?q=1", |_, n| {
        Reply::ok(format!("p{n}")).header("cache-control", "no-store")
    });
    let lq = lacquer_for(&origin).await;
    let head = b"GET /p?q=1 HTTP/1.1\r\nHost: test.example\r\nX-A: b c\r\n\r\n";
    let mut w = Wire::connect(lq.addr()).await;
    for b in head {
        w.send(&[*b]).await;
        tokio::task::yield_now().await;
    }
    let r = w.final_response(false).await.expect("byte at a time");
    assert_eq!(r.text(), "p1");
    for cut in 1..head.len() {
        w.send(&head[..cut]).await;
        sleep_ms(2).await;
        w.send(&head[cut..]).await;
        let r = w.final_response(false).await.expect("cut");
        assert_eq!(r.text(), format!("p{}", cut + 1), "cut at {cut}");
    }
    assert_eq!(origin.hits("/p?q=1"), head.len());
}

/// A request head of exactly `server.max_header_bytes` is served (the
/// origin gets the whole URL); one byte more is refused with 431 and
/// fetches nothing.
#[tokio::test]
async fn a_head_at_max_header_bytes_is_served_and_one_byte_more_is_431() {
    let origin = Origin::start().await;
    let lq = lacquer_with(&origin, |c| c.server.max_header_bytes = ByteSize(8192)).await;
    let head_of = |path_len: usize| {
        let path = format!("/{}", "u".repeat(path_len - 1));
        format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n\r\n")
    };
    // The length of everything but the path.
    let fixed = head_of(1).len() - 1;
    let exact = head_of(8192 - fixed);
    assert_eq!(exact.len(), 8192);
    let path = exact.split(' ').nth(1).unwrap().to_string();
    origin.route(&path, |_, _| {
        Reply::ok("long").header("cache-control", "no-store")
    });
    let mut w = Wire::connect(lq.addr()).await;
    w.send(exact.as_bytes()).await;
    let r = w.final_response(false).await.expect("exact");
    assert_eq!((r.status, r.text().as_str()), (200, "long"), "{}", r.head);
    let over = head_of(8193 - fixed);
    assert_eq!(over.len(), 8193);
    let mut w = Wire::connect(lq.addr()).await;
    w.send(over.as_bytes()).await;
    let r = w.final_response(false).await.expect("over");
    assert_eq!(r.status, 431, "{}", r.head);
    assert!(w.closed_within(WAIT).await);
    // The same head in pieces is refused the same.
    let mut w = Wire::connect(lq.addr()).await;
    for piece in over.as_bytes().chunks(1000) {
        if !w.try_send(piece).await {
            break;
        }
        sleep_ms(2).await;
    }
    let r = w.final_response(false).await.expect("over, in pieces");
    assert_eq!(r.status, 431, "{}", r.head);
    assert_eq!(origin.total(), 1);
}

/// Exactly `server.max_headers` fields are accepted; one more is 431.
#[tokio::test]
async fn exactly_max_headers_pass_and_one_more_is_431() {
    let origin = Origin::start().await;
    origin.route("/f", |seen, _| {
        Reply::ok(format!("{}", seen.headers.len())).header("cache-control", "no-store")
    });
    let lq = lacquer_with(&origin, |c| c.server.max_headers = 20).await;
    let head_with = |n: usize| {
        let mut h = String::from("GET /f HTTP/1.1\r\nHost: test.example\r\n");
        for i in 1..n {
            h.push_str(&format!("X-F{i}: {i}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let mut w = Wire::connect(lq.addr()).await;
    w.send(head_with(20).as_bytes()).await;
    let r = w.final_response(false).await.expect("20 fields");
    assert_eq!(r.status, 200, "{r:?}");
    let mut w = Wire::connect(lq.addr()).await;
    w.send(head_with(21).as_bytes()).await;
    let r = w.final_response(false).await.expect("21 fields");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(w.closed_within(WAIT).await);
    assert_eq!(origin.hits("/f"), 1);
}

/// Bytes that are not allowed in a field name, a value or the request
/// line are refused with 400 and nothing is fetched.
#[tokio::test]
async fn bad_bytes_in_heads_are_refused_400() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = lacquer_for(&origin).await;
    let cases: &[&[u8]] = &[
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A\x01: b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX A: b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\n: b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A: b\x00c\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A: b\x7fc\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A: b\rc\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A: b\r\n c\r\n\r\n",
        b"GET /a\x00 HTTP/1.1\r\nHost: test.example\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: test.example\r\n\r\n",
        b"GET  /a HTTP/1.1\r\nHost: test.example\r\n\r\n",
        b"GET /a HTTP/1.1 \r\nHost: test.example\r\n\r\n",
        b"GET /a HTTP/2.0\r\nHost: test.example\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: test.example\r\n\r",
        b"G\xc3\x89T /a HTTP/1.1\r\nHost: test.example\r\n\r\n",
        b"GET /a\xff HTTP/1.1\r\nHost: test.example\r\n\r\n",
    ];
    for (i, wire) in cases.iter().enumerate() {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(wire).await;
        // The last-but-two is incomplete: closing our side ends it.
        if !wire.ends_with(b"\r\n") {
            let _ = w.s.shutdown().await;
        }
        let text = w.rest(WAIT).await;
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400 "),
            "case {i} {:?}: {text:?}",
            String::from_utf8_lossy(wire)
        );
        if wire.ends_with(b"\r\n\r\n") {
            assert!(
                text.starts_with("HTTP/1.1 400 "),
                "case {i} {:?}: {text:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
    assert_eq!(origin.total(), 0);
    // obs-text in a value is allowed (RFC 9110 §5.5).
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET /a HTTP/1.1\r\nHost: test.example\r\nX-A: caf\xe9\r\n\r\n")
        .await;
    assert_eq!(w.final_response(false).await.expect("obs-text").status, 200);
}

/// Absolute-form: the target's authority wins over `Host`, the path is
/// fetched; an HTTP/1.1 request without `Host`, or with two, is 400.
#[tokio::test]
async fn absolute_form_targets_and_host_rules() {
    let origin = Origin::start().await;
    origin.route("/abs?x=1", |seen, _| {
        Reply::ok(seen.header_or_none("host")).header("cache-control", "no-store")
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET http://Real.Example/abs?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        .await;
    let r = w.final_response(false).await.expect("absolute");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text().to_ascii_lowercase(), "real.example");
    for wire in [
        &b"GET /abs?x=1 HTTP/1.1\r\n\r\n"[..],
        b"GET /abs?x=1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(wire).await;
        let r = w.final_response(false).await.expect("answer");
        assert_eq!(r.status, 400, "{:?}: {r:?}", String::from_utf8_lossy(wire));
    }
    assert_eq!(origin.hits("/abs?x=1"), 1);
}

/// Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET` and is
/// never answered with the cached GET; an unknown method is not cached
/// either. Both are answered, and the connection stays usable.
#[tokio::test]
async fn methods_are_case_sensitive_and_unknown_ones_are_not_cached() {
    let origin = Origin::start().await;
    origin.route("/m", |seen, n| {
        Reply::ok(format!("{} {n}", seen.method)).header("cache-control", "max-age=600")
    });
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/m").await.text(), "GET 1");
    wait_stored(&lq, "/m").await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"get /m HTTP/1.1\r\nHost: test.example\r\n\r\n\
          FROB /m HTTP/1.1\r\nHost: test.example\r\n\r\n\
          GET /m HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    let lower = w.final_response(false).await.expect("get");
    assert_ne!(
        lower.text(),
        "GET 1",
        "lowercase get served the GET: {lower:?}"
    );
    let frob = w.final_response(false).await.expect("FROB");
    assert_ne!(frob.text(), "GET 1", "FROB served the GET: {frob:?}");
    // (Both may invalidate /m: methods of unknown safety are unsafe, RFC
    // 9111 §4.4.)
    let g = w.final_response(false).await.expect("GET");
    assert!(g.text().starts_with("GET "), "{g:?}");
    let methods: Vec<String> = origin
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.method.to_string())
        .collect();
    assert!(
        lower.status >= 400 || methods.iter().any(|m| m == "get"),
        "get neither refused nor passed on as get: {lower:?} {methods:?}"
    );
}

// ---- timeouts, shutdown, half-close ----

/// A connection on which nothing is ever sent is closed after the
/// header-read timeout (not before); so is one idle after a request.
#[tokio::test]
async fn silent_and_idle_connections_close_after_the_header_timeout() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a");
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = Seconds(Duration::from_millis(400))
    })
    .await;
    let started = Instant::now();
    let mut silent = Wire::connect(lq.addr()).await;
    let mut idle = Wire::connect(lq.addr()).await;
    idle.send(b"GET /a HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    assert_eq!(
        idle.final_response(false).await.expect("answer").text(),
        "/a v1"
    );
    assert!(
        silent.closed_within(WAIT).await,
        "silent connection left open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed early"
    );
    assert!(silent.buf.is_empty(), "something sent: {:?}", silent.buf);
    assert!(idle.closed_within(WAIT).await, "idle connection left open");
}

/// Shutdown with a request in flight: it is answered, with
/// `Connection: close`, and the connection closes; an idle one closes at
/// once; the drain leaves nothing open.
#[tokio::test]
async fn shutdown_answers_the_request_in_flight_with_connection_close() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, _| {
        Reply::ok("slow")
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(400))
    });
    let lq = lacquer_with(&origin, |c| {
        c.server.header_read_timeout = Seconds(Duration::from_secs(10))
    })
    .await;
    let mut idle = Wire::connect(lq.addr()).await;
    idle.send(b"GET /slow HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    assert_eq!(
        idle.final_response(false).await.expect("answer").text(),
        "slow"
    );
    let mut busy = Wire::connect(lq.addr()).await;
    busy.send(b"GET /slow HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    sleep_ms(100).await;
    let started = Instant::now();
    let (left, r) = tokio::join!(
        lq.shutdown(Duration::from_secs(3)),
        busy.final_response(false)
    );
    let r = r.expect("answer in flight");
    assert_eq!((r.status, r.text().as_str()), (200, "slow"), "{r:?}");
    assert!(r.says_close(), "no Connection: close: {}", r.head);
    assert!(busy.closed_within(WAIT).await);
    assert!(idle.closed_within(Duration::from_millis(500)).await);
    assert_eq!(left, 0);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A stray CRLF after a request (old clients send one after a POST body;
/// RFC 9112 §2.2 says to skip it) leaves the connection idle: at shutdown
/// it closes at once rather than holding the drain for the header-read
/// timeout.
#[tokio::test]
async fn a_stray_crlf_after_a_body_does_not_hold_the_drain() {
    let echo = echo_origin().await;
    let lq = lacquer_with_addr(echo.addr, |c| {
        c.server.header_read_timeout = Seconds(Duration::from_secs(4))
    })
    .await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"POST /p HTTP/1.1\r\nHost: test.example\r\nContent-Length: 3\r\n\r\nabc\r\n")
        .await;
    assert_eq!(w.final_response(false).await.expect("answer").text(), "abc");
    sleep_ms(50).await;
    let started = Instant::now();
    let left = lq.shutdown(Duration::from_millis(1500)).await;
    assert_eq!(left, 0, "connection still open after the drain");
    assert!(w.closed_within(Duration::from_millis(100)).await);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// A client that half-closes (shuts its writing side) after its request
/// still gets the whole answer.
#[tokio::test]
async fn a_half_closed_client_still_gets_its_answer() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, _| {
        Reply::ok("late")
            .header("cache-control", "no-store")
            .delay(Duration::from_millis(200))
    });
    let lq = lacquer_for(&origin).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(b"GET /slow HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    w.s.shutdown().await.expect("half-close");
    let r = w.final_response(false).await.expect("answer");
    assert_eq!((r.status, r.text().as_str()), (200, "late"), "{r:?}");
    assert!(w.closed_within(WAIT).await);
}

// ---- upgrades ----

/// Bytes the client sends right behind its upgrade head, before the
/// `101`, reach the backend first once the connection is piped.
#[tokio::test]
async fn bytes_sent_right_after_an_upgrade_head_reach_the_backend() {
    let (backend, heads) = crate::websocket::echo_backend().await;
    let lq = lacquer(config_for(backend)).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /chat HTTP/1.1\r\nHost: test.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
          early-bytes",
    )
    .await;
    let r = w.response(false).await.expect("101");
    assert_eq!(r.status, 101, "{r:?}");
    w.send(b"|late").await;
    let want = b"early-bytes|late";
    while w.buf.len() < want.len() {
        if !w.fill().await {
            break;
        }
    }
    assert_eq!(String::from_utf8_lossy(&w.buf), "early-bytes|late");
    assert_eq!(heads.lock().unwrap().len(), 1);
}

/// With `server.max_headers` above what is parsed on the stack (100):
/// exactly the limit passes, one more is 431.
#[tokio::test]
async fn a_raised_max_headers_is_honoured_exactly() {
    // Answered by the policy: the test origin (hyper) takes 100 fields.
    let origin = Origin::start().await;
    let lq = with_policy_and(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv { return (synth(299, "Counted")); }"#,
        |c| {
            c.server.max_headers = 150;
            c.server.max_header_bytes = ByteSize(64 << 10);
        },
    )
    .await;
    let head_with = |n: usize| {
        let mut h = String::from("GET /f HTTP/1.1\r\nHost: test.example\r\n");
        for i in 1..n {
            h.push_str(&format!("X-F{i}: {i}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    let mut w = Wire::connect(lq.addr()).await;
    w.send(head_with(150).as_bytes()).await;
    let r = w.final_response(false).await.expect("150 fields");
    assert_eq!(r.status, 299, "{r:?}");
    let mut w = Wire::connect(lq.addr()).await;
    w.send(head_with(151).as_bytes()).await;
    let r = w.final_response(false).await.expect("151 fields");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(w.closed_within(WAIT).await);
}

/// A backend that dies in the middle of its body: the client's answer is
/// visibly incomplete (no last chunk; fewer bytes than its length) and
/// the connection is closed, never left looking whole.
#[tokio::test]
async fn a_backend_body_cut_short_reaches_the_client_incomplete() {
    let backend = tcp_backend(|mut s: TcpStream| async move {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let reply: &[u8] = if text.starts_with("GET /chunked") {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n5\r\nhello\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: no-store\r\n\r\nhello"
        };
        let _ = s.write_all(reply).await;
        sleep_ms(100).await;
    })
    .await;
    let lq = lacquer(config_for(backend)).await;
    for path in ["/chunked", "/length"] {
        let mut w = Wire::connect(lq.addr()).await;
        w.send(format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes())
            .await;
        let r = w.final_response(false).await;
        if let Some(r) = &r {
            // Whole only when it does not claim what it lacks.
            assert!(
                r.status >= 500 && r.body.len() < 100,
                "{path}: a cut body delivered as whole: {r:?}"
            );
        }
        assert!(w.closed_within(WAIT).await, "{path}: connection left open");
    }
}

/// Many pipelined requests written at once for a large cached body, the
/// client reading nothing until all are written: every answer comes,
/// whole and in order.
#[tokio::test]
async fn many_pipelined_requests_for_a_large_body_are_all_answered_in_order() {
    let origin = Origin::start().await;
    let body = Bytes::from(pattern(100_000));
    let b = body.clone();
    origin.route("/l", move |_, _| {
        Reply::ok(b.clone()).header("cache-control", "max-age=600")
    });
    for i in 0..40 {
        cacheable(&origin, &format!("/n{i}"));
    }
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/l").await.body.len(), 100_000);
    wait_stored(&lq, "/l").await;
    let mut w = Wire::connect(lq.addr()).await;
    let mut wire = Vec::new();
    for i in 0..40 {
        wire.extend_from_slice(b"GET /l HTTP/1.1\r\nHost: test.example\r\n\r\n");
        wire.extend_from_slice(
            format!("GET /n{i} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes(),
        );
    }
    w.send(&wire).await;
    for i in 0..40 {
        let r = w.final_response(false).await.expect("large");
        assert!(
            r.body == body,
            "{i}: large body differs ({} bytes)",
            r.body.len()
        );
        let r = w.final_response(false).await.expect("small");
        assert_eq!(r.text(), format!("/n{i} v1"), "{i}");
    }
}

/// A request answered without reading its large body (a synth 403 to a
/// 4 MiB upload): the client, still writing, can read the 403 — the
/// server must not reset the connection under it (RFC 9112 §9.6: close
/// the writing side, go on reading a while).
#[tokio::test]
async fn an_answer_sent_before_a_large_unread_body_is_not_lost_to_a_reset() {
    let origin = Origin::start().await;
    let lq = with_policy(
        origin.addr,
        r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/deny") { return (synth(403, "No")); }
        }"#,
    )
    .await;
    let body = pattern(4 << 20);
    let w = Wire::connect(lq.addr()).await;
    let (mut rd, mut wr) = w.s.into_split();
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /deny HTTP/1.1\r\nHost: test.example\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
        wr
    });
    sleep_ms(300).await;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut error = None;
    loop {
        match tokio::time::timeout(WAIT, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                error = Some(e);
                break;
            }
        }
    }
    let _ = writer.await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 403"),
        "the 403 was lost ({error:?}): {text:?}"
    );
    assert_eq!(origin.total(), 0);
}

/// An upgrade the backend refuses (426): the answer is relayed and the
/// connection carries the next request (`OPTIONS *`, not refused as
/// malformed).
#[tokio::test]
async fn after_a_refused_upgrade_the_connection_carries_the_next_request() {
    let (backend, _heads) = crate::websocket::echo_backend().await;
    let lq = lacquer(config_for(backend)).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"GET /refuse HTTP/1.1\r\nHost: test.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    let r = w.final_response(false).await.expect("426");
    assert_eq!((r.status, r.text().as_str()), (426, "nope"), "{r:?}");
    w.send(b"OPTIONS * HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .await;
    let next = w.final_response(false).await.expect("OPTIONS answered");
    assert!(
        next.status != 400,
        "OPTIONS * refused as malformed: {next:?}"
    );
}

/// Bodies lacquer changes on the way (ESI assembly, gzip on the fly and
/// from the store, decoding for identity clients, ranges of them, HEAD
/// of them), each pipelined behind the others on one connection with a
/// sentinel after it: every declared length is the length sent, so no
/// answer runs into the next.
#[tokio::test]
async fn transformed_bodies_are_framed_by_their_real_length() {
    let origin = Origin::start().await;
    let text: Vec<u8> = b"lacquer frames what it changes, exactly.\n"
        .iter()
        .copied()
        .cycle()
        .take(30_000)
        .collect();
    let t = text.clone();
    origin.route("/t", move |_, _| {
        Reply::ok(t.clone())
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=600")
    });
    let z = gzip(&text);
    origin.route("/z", move |_, _| {
        Reply::ok(z.clone())
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=600")
    });
    origin.route("/esi", |_, _| {
        Reply::ok("<p><esi:include src=\"/frag\"/>|<esi:include src=\"/frag\"/></p>")
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=600")
    });
    origin.route("/frag", |_, n| {
        Reply::ok(format!("fragment-{n}")).header("cache-control", "max-age=600")
    });
    cacheable(&origin, "/n");
    let lq = lacquer_for(&origin).await;
    let gz = "Accept-Encoding: gzip\r\n";
    let requests: Vec<(String, bool)> = [
        ("GET", "/t", gz, ""),
        ("GET", "/t", "", ""),
        ("GET", "/z", "", ""),
        ("GET", "/z", gz, ""),
        ("GET", "/esi", "", ""),
        ("GET", "/esi", gz, ""),
        ("HEAD", "/t", gz, ""),
        ("HEAD", "/z", "", ""),
        ("HEAD", "/esi", "", ""),
        ("GET", "/t", gz, "Range: bytes=10-99\r\n"),
        ("GET", "/z", "", "Range: bytes=100-\r\n"),
        ("GET", "/esi", "", "Range: bytes=0-3\r\n"),
    ]
    .iter()
    .map(|(m, p, ae, extra)| {
        (
            format!("{m} {p} HTTP/1.1\r\nHost: test.example\r\n{ae}{extra}\r\n"),
            *m == "HEAD",
        )
    })
    .collect();
    for round in 0..2 {
        let mut w = Wire::connect(lq.addr()).await;
        let mut wire = String::new();
        for (r, _) in &requests {
            wire.push_str(r);
            wire.push_str("GET /n HTTP/1.1\r\nHost: test.example\r\n\r\n");
        }
        w.send(wire.as_bytes()).await;
        for (r, head) in &requests {
            let what = r.lines().next().unwrap_or("").to_string();
            let got = w
                .final_response(*head)
                .await
                .unwrap_or_else(|| panic!("round {round}, {what}: no answer"));
            assert!(got.status < 300, "round {round}, {what}: {got:?}");
            for once in [
                "content-length",
                "date",
                "age",
                "x-cache",
                "content-encoding",
            ] {
                assert!(
                    got.count(once) <= 1,
                    "round {round}, {what}: {once} twice: {}",
                    got.head
                );
            }
            assert_eq!(got.count("date"), 1, "round {round}, {what}: {}", got.head);
            let sentinel = w
                .final_response(false)
                .await
                .unwrap_or_else(|| panic!("round {round}, after {what}: no sentinel"));
            assert_eq!(
                (sentinel.status, sentinel.text().as_str()),
                (200, "/n v1"),
                "round {round}: the answer to {what} ran into the next ({})",
                got.head
            );
        }
        for p in ["/t", "/z", "/esi", "/frag"] {
            wait_stored(&lq, p).await;
        }
    }
}

/// Behind a PROXY header (the connection read through a small buffer
/// first): pipelined requests written with the header in one go are all
/// answered, a body between them included, and an upgrade's early bytes
/// still reach the backend.
#[tokio::test]
async fn behind_a_proxy_header_pipelining_and_upgrades_work() {
    let echo = echo_origin().await;
    let lq = lacquer_with_addr(echo.addr, |c| c.server.proxy_protocol = true).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n\
          GET /one HTTP/1.1\r\nHost: test.example\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: test.example\r\nContent-Length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nHost: test.example\r\n\r\n",
    )
    .await;
    for want in ["/one", "/two", "/three"] {
        let r = w.final_response(false).await.expect("answer");
        assert_eq!(r.header("x-path"), Some(want), "{r:?}");
    }
    assert_eq!(echo.last_body().as_deref(), Some(&b""[..]));
    let (backend, _) = crate::websocket::echo_backend().await;
    let lq = lacquer_with_addr(backend, |c| c.server.proxy_protocol = true).await;
    let mut w = Wire::connect(lq.addr()).await;
    w.send(
        b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n\
          GET /chat HTTP/1.1\r\nHost: test.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly",
    )
    .await;
    let r = w.response(false).await.expect("101");
    assert_eq!(r.status, 101, "{r:?}");
    while w.buf.len() < 5 && w.fill().await {}
    assert_eq!(String::from_utf8_lossy(&w.buf), "early");
}
