//! Test support: a scripted origin that counts its hits, lacquer started
//! in-process on an ephemeral port, and a plain HTTP/1.1 client.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use lacquer::config::{BackendConfig, Config};
use lacquer::policy::vcl::VclPolicy;

pub use crate::poll::*;

/// An HTTP-date `offset` seconds from now (negative: in the past).
pub fn http_date(offset: i64) -> String {
    let now = SystemTime::now();
    let t = if offset >= 0 {
        now + Duration::from_secs(offset as u64)
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

/// Sleeps `ms` milliseconds: only where time passing is the scenario (a
/// TTL running out, a client or backend that is slow); to wait for
/// something to happen, poll it (`wait_until`, `wait_stored`).
pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Lets `by` pass for `lq` without waiting: once the fetches in progress
/// have stored their objects, its clock stops (from then on time moves only
/// here) and moves forward by `by`, and `origin` dates its answers by that
/// clock (so a refetched object is not older than it is).
pub async fn pass_time(lq: &lacquer::server::Running, origin: &Origin, by: Duration) {
    let proxy = lq.proxy.clone();
    wait_until("the fetches in progress to end", async || {
        proxy.fetches_in_flight() == 0
    })
    .await;
    let clock = lq.proxy.clock();
    // Stopped too: a one-second TTL must not run out while a loaded
    // machine is slow between two steps of a test.
    clock.stop();
    *origin.clock.lock().unwrap() = Some(clock.clone());
    clock.advance(by);
}

/// Makes a `max-age=1` object stale: 1.1 s pass for `lq` (see [`pass_time`]).
pub async fn expire(lq: &lacquer::server::Running, origin: &Origin) {
    pass_time(lq, origin, Duration::from_millis(1100)).await;
}

/// Objects (variants, fresh or not) stored for `url` (path and query),
/// under any host.
pub fn stored(lq: &lacquer::server::Running, url: &str) -> usize {
    lq.proxy
        .store()
        .objects()
        .filter(|(_, o)| &*o.url == url)
        .count()
}

/// Waits until at least `n` objects (variants) are stored for `url`. A
/// miss stores its object once the backend's body has ended, which may be
/// just after the client got its last byte: a test that needs it stored
/// before its next request waits for it.
pub async fn wait_stored_n(lq: &lacquer::server::Running, url: &str, n: usize) {
    wait_until(&format!("{n} object(s) stored for {url}"), async || {
        stored(lq, url) >= n
    })
    .await;
}

/// Waits until an object is stored for `url` (see [`wait_stored_n`]).
pub async fn wait_stored(lq: &lacquer::server::Running, url: &str) {
    wait_stored_n(lq, url, 1).await;
}

/// Waits until a fresh object is stored for `url`: the refetch (a
/// background refresh in grace, a revalidation answered 200) that replaces
/// an expired one.
pub async fn wait_fresh(lq: &lacquer::server::Running, url: &str) {
    wait_until(&format!("a fresh object stored for {url}"), async || {
        let now = lq.proxy.clock().now();
        lq.proxy
            .store()
            .objects()
            .any(|(_, o)| &*o.url == url && o.freshness.is_fresh(now))
    })
    .await;
}

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: usize,
}

impl Seen {
    /// The value of request header `name` as text: `none` when absent, `?`
    /// when not visible ASCII.
    pub fn header_or_none(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map_or("none", |v| v.to_str().unwrap_or("?"))
            .to_string()
    }
}

/// A scripted answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: ReplyBody,
    /// Wait this long before sending the head.
    pub delay: Duration,
}

pub enum ReplyBody {
    Bytes(Bytes),
    /// `count` chunks of `size` bytes, `pause` between them.
    Chunks {
        size: usize,
        count: usize,
        pause: Duration,
    },
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: Vec::new(),
            body: ReplyBody::Bytes(Bytes::new()),
            delay: Duration::ZERO,
        }
    }
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::new(200).body(body)
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.as_bytes().to_vec()));
        self
    }
    /// A header whose value is not text (obs-text bytes).
    pub fn header_bytes(mut self, k: &str, v: &[u8]) -> Reply {
        self.headers.push((k.to_string(), v.to_vec()));
        self
    }
    pub fn body(mut self, b: impl Into<Bytes>) -> Reply {
        self.body = ReplyBody::Bytes(b.into());
        self
    }
    pub fn chunks(mut self, size: usize, count: usize, pause: Duration) -> Reply {
        self.body = ReplyBody::Chunks { size, count, pause };
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A real HTTP origin on 127.0.0.1 with scripted routes and hit counters.
pub struct Origin {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Handler>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Most requests the origin was answering at once.
    pub max_concurrent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// The clock its `Date` headers follow, once a test moved time (else
    /// hyper's real-time `Date`).
    clock: Arc<Mutex<Option<lacquer::lifecycle::Clock>>>,
    task: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

type OutBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl Origin {
    pub async fn start() -> Origin {
        Origin::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> Origin {
        let listener = TcpListener::bind(addr).await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let routes: Arc<Mutex<HashMap<String, Handler>>> = Default::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Default::default();
        let total = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(AtomicUsize::new(0));
        let (r, h, t, s) = (routes.clone(), hits.clone(), total.clone(), seen.clone());
        let (mc, cur) = (max_concurrent.clone(), current.clone());
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let conns_in = conns.clone();
        let clock: Arc<Mutex<Option<lacquer::lifecycle::Clock>>> = Default::default();
        let clock_in = clock.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, h, t, s) = (r.clone(), h.clone(), t.clone(), s.clone());
                let (mc, cur) = (mc.clone(), cur.clone());
                let conns = conns_in.clone();
                let clock = clock_in.clone();
                let conn_task = tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (r, h, t, s) = (r.clone(), h.clone(), t.clone(), s.clone());
                        let (mc, cur) = (mc.clone(), cur.clone());
                        let clock = clock.lock().unwrap().clone();
                        async move {
                            let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
                            mc.fetch_max(now, Ordering::SeqCst);
                            let mut resp = serve(req, r, h, t, s).await;
                            if let Some(clock) = clock {
                                let date = httpdate::fmt_http_date(clock.now());
                                if let Ok(v) = HeaderValue::from_str(&date) {
                                    resp.headers_mut().entry(http::header::DATE).or_insert(v);
                                }
                            }
                            cur.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                conns.lock().unwrap().push(conn_task.abort_handle());
            }
        });
        Origin {
            addr,
            routes,
            hits,
            total,
            seen,
            max_concurrent,
            stop,
            clock,
            task,
            conns,
        }
    }

    /// Scripts `path` (path and query) with a closure of (request, nth hit from 1).
    pub fn route(&self, path: &str, f: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), Arc::new(f));
    }

    /// Hits for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Hits in all.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// The last request seen for `path`.
    pub fn last(&self, path: &str) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.path == path)
            .cloned()
    }

    /// Stops listening and closes every connection: the origin is down.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Origin {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    req: Request<Incoming>,
    routes: Arc<Mutex<HashMap<String, Handler>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
    seen_log: Arc<Mutex<Vec<Seen>>>,
) -> Response<OutBody> {
    let (parts, body) = req.into_parts();
    // Count the body without keeping it (1 GiB uploads pass through here).
    let mut body = body;
    let mut body_len = 0;
    while let Some(Ok(frame)) = body.frame().await {
        body_len += frame.data_ref().map_or(0, |d| d.len());
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        path: path.clone(),
        headers: parts.headers,
        body_len,
    };
    let n = {
        let mut h = hits.lock().unwrap();
        let e = h.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    total.fetch_add(1, Ordering::SeqCst);
    seen_log.lock().unwrap().push(seen.clone());
    let handler = routes.lock().unwrap().get(&path).cloned();
    let reply = match handler {
        Some(f) => f(&seen, n),
        None => Reply::new(404).body("no route"),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::new(match reply.body {
        ReplyBody::Bytes(b) => Full::new(b).map_err(|e| match e {}).boxed(),
        ReplyBody::Chunks { size, count, pause } => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; size]);
                for i in 0..count {
                    if i > 0 && !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                        return;
                    }
                }
            });
            let stream = tokio_stream_from(rx);
            StreamBody::new(stream).boxed()
        }
    });
    *resp.status_mut() = reply.status;
    for (k, v) in reply.headers {
        resp.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(&v).expect("header value"),
        );
    }
    resp
}

/// An mpsc receiver as a `Stream` without pulling in tokio-stream.
fn tokio_stream_from<T>(rx: mpsc::Receiver<T>) -> RecvStream<T> {
    RecvStream(rx)
}

pub struct RecvStream<T>(mpsc::Receiver<T>);

impl<T> RecvStream<T> {
    pub fn new(rx: mpsc::Receiver<T>) -> RecvStream<T> {
        RecvStream(rx)
    }
}

impl<T> futures_core::Stream for RecvStream<T> {
    type Item = T;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// Settings for a lacquer in front of `origin`, on an ephemeral port.
pub fn config_for(origin: SocketAddr) -> Config {
    let mut c = Config::default();
    c.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.backend = vec![BackendConfig {
        address: origin.to_string(),
        ..BackendConfig::default()
    }];
    c
}

/// lacquer, in-process, started as the binary starts it
/// (`server::start_proxy`: listeners, admin, background services), serving
/// on the test's runtime.
pub async fn lacquer(config: Config) -> lacquer::server::Running {
    let proxy = lacquer::pipeline::Proxy::new(Arc::new(config)).expect("build lacquer");
    lacquer::server::start_proxy(proxy, lacquer::server::Threads::Caller)
        .await
        .expect("start lacquer")
}

/// lacquer with default settings in front of `origin`.
pub async fn lacquer_for(origin: &Origin) -> lacquer::server::Running {
    lacquer(config_for(origin.addr)).await
}

/// lacquer in front of `origin` with settings changed by `tweak`.
pub async fn lacquer_with(
    origin: &Origin,
    tweak: impl FnOnce(&mut Config),
) -> lacquer::server::Running {
    let mut config = config_for(origin.addr);
    tweak(&mut config);
    lacquer(config).await
}

/// lacquer without grace in front of `origin`: an expired object is not
/// delivered stale while it is refetched.
pub async fn lacquer_no_grace(origin: &Origin) -> lacquer::server::Running {
    lacquer_with(origin, |c| {
        c.cache.grace = lacquer::config::Seconds(Duration::ZERO)
    })
    .await
}

/// lacquer with `cache.grace = secs` in front of `origin` (the default is
/// 0: stale only where the origin allows it).
pub async fn lacquer_grace(origin: &Origin, secs: u64) -> lacquer::server::Running {
    lacquer_with(origin, |c| {
        c.cache.grace = lacquer::config::Seconds(Duration::from_secs(secs))
    })
    .await
}

/// lacquer in front of `origin` running the vcl-lite policy `source`.
pub async fn with_policy(origin: SocketAddr, source: &str) -> lacquer::server::Running {
    with_policy_and(origin, source, |_| {}).await
}

/// lacquer in front of `origin` running the vcl-lite policy `source`, with
/// settings changed by `tweak`.
pub async fn with_policy_and(
    origin: SocketAddr,
    source: &str,
    tweak: impl FnOnce(&mut Config),
) -> lacquer::server::Running {
    let mut config = config_for(origin);
    tweak(&mut config);
    let config = Arc::new(config);
    let policy = Arc::new(VclPolicy::compile(source, "test.vcl").expect("policy compiles"));
    let proxy = lacquer::pipeline::Proxy::with_policy(config.clone(), policy).expect("proxy");
    lacquer::server::start_with(config, proxy)
        .await
        .expect("start lacquer")
}

/// Routes `path` to a cacheable answer (`max-age=600`) with `headers`,
/// whose body is "`path` v`n`" (n: the origin's hit count for `path`).
pub fn cacheable_with(origin: &Origin, path: &str, headers: &[(&str, &str)]) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    origin.route(path, move |seen, n| {
        let mut r = Reply::ok(format!("{} v{n}", seen.path)).header("cache-control", "max-age=600");
        for (k, v) in &headers {
            r = r.header(k, v);
        }
        r
    });
}

/// [`cacheable_with`] without other headers.
pub fn cacheable(origin: &Origin, path: &str) {
    cacheable_with(origin, path, &[]);
}

/// Routes `path` to answer `status` with `headers` and the body "`path` #n"
/// (n: the origin's hit count for `path`).
pub fn route_with(origin: &Origin, path: &str, status: u16, headers: &[(&str, &str)]) {
    let p = path.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    origin.route(path, move |_, n| {
        let mut r = Reply::new(status).body(format!("{p} #{n}"));
        for (k, v) in &headers {
            r = r.header(k, v);
        }
        r
    });
}

/// A raw TCP backend on 127.0.0.1: every accepted connection is handed to
/// `serve` on a task of its own.
pub async fn tcp_backend<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.expect("accept");
            tokio::spawn(serve(s));
        }
    });
    addr
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether `g` was served from the cache (`X-Cache: HIT n`).
pub fn is_hit(g: &Got) -> bool {
    g.x_cache().starts_with("HIT")
}

/// The `Age` of `g` in seconds; panics if it has none.
pub fn age_of(g: &Got) -> u64 {
    g.header("age")
        .unwrap_or_else(|| panic!("no Age in {:?}", g.headers))
        .parse()
        .expect("Age is delta-seconds")
}

/// Opens an HTTP/1.1 client connection to `addr`, driven on a task of its
/// own, for requests with bodies of type `B`.
pub async fn connect<B>(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// GET `path` (Host: test.example) on a new connection; returns the response
/// with its body still to be read.
pub async fn get_streaming(addr: SocketAddr, path: &str) -> Response<Incoming> {
    let req = Request::get(path)
        .header("host", "test.example")
        .body(Empty::<Bytes>::new())
        .expect("request");
    connect(addr)
        .await
        .send_request(req)
        .await
        .expect("response")
}

/// Sends one request on a new connection and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Got {
    let mut sender = connect(addr).await;
    send_on(&mut sender, method, path, headers, body).await
}

/// [`send`] on a connection already open (keep-alive reuse).
pub async fn send_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Got {
    let mut req = Request::builder().method(method).uri(path);
    let mut has_host = false;
    for (k, v) in headers {
        has_host |= k.eq_ignore_ascii_case("host");
        req = req.header(*k, *v);
    }
    if !has_host {
        req = req.header("host", "test.example");
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Two GETs of `path` (with `headers`), the second once the first's object
/// is stored; returns both responses.
pub async fn get_twice(
    lq: &lacquer::server::Running,
    path: &str,
    headers: &[(&str, &str)],
) -> (Got, Got) {
    let a = get_with(lq.addr(), path, headers).await;
    wait_stored(lq, path).await;
    let b = get_with(lq.addr(), path, headers).await;
    (a, b)
}

/// Two GETs of `path` (with `headers`), one after the other: for answers
/// that are not stored (nothing to wait for: lacquer decides that before
/// it sends the head).
pub async fn get_unstored_twice(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Got, Got) {
    let a = get_with(addr, path, headers).await;
    let b = get_with(addr, path, headers).await;
    (a, b)
}

/// `n` GETs of `path` at once, each on a connection and task of its own;
/// returns the responses in the order the requests were started.
pub async fn get_concurrently(addr: SocketAddr, path: &str, n: usize) -> Vec<Got> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let path = path.to_string();
            tokio::spawn(async move { get(addr, &path).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for c in clients {
        out.push(c.await.expect("client task"));
    }
    out
}

/// GET with headers.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    send(addr, "GET", path, headers, Bytes::new()).await
}

/// Plain GET.
pub async fn get(addr: SocketAddr, path: &str) -> Got {
    get_with(addr, path, &[]).await
}

/// The field lines of a raw answer's head, in wire order, each as `name:
/// value` with the name lower-cased.
pub fn field_lines(answer: &str) -> Vec<String> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .map(|l| match l.split_once(": ") {
            Some((n, v)) => format!("{}: {v}", n.to_ascii_lowercase()),
            None => l.to_string(),
        })
        .collect()
}

/// Writes raw bytes, returns whatever comes back until the server closes
/// or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A `BAN` request with the ban expression `expr`.
pub async fn ban(addr: SocketAddr, expr: &str) -> Got {
    send(addr, "BAN", "/", &[("x-ban", expr)], "").await
}

/// `data` gzip'd.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("write");
    e.finish().expect("finish")
}

/// `members` gzip members of `member_size` zero bytes each, one after the
/// other (a valid gzip stream of `members * member_size` zeros).
pub fn zeros_gz(member_size: usize, members: usize) -> Vec<u8> {
    gzip(&vec![0u8; member_size]).repeat(members)
}

/// The value of an unlabelled metric on the admin listener at `admin`, if
/// exposed.
pub async fn admin_metric(admin: SocketAddr, name: &str) -> Option<u64> {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of an unlabelled metric of an in-process lacquer.
pub fn metric(lq: &lacquer::server::Running, name: &str) -> u64 {
    let metrics = lq.proxy.render_metrics();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
}

/// Resident memory of this process, in bytes (`VmRSS` in /proc/self/status).
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS")
}

/// The most resident memory this process has had, in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM")
}

/// A size in kB from /proc/self/status, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
        * 1024
}

/// Set in the child process [`in_own_process`] starts.
const OWN_PROCESS: &str = "LACQUER_TEST_OWN_PROCESS";

/// For a test that measures the whole process (its resident memory): the
/// other tests of this crate run in the same process at the same time, so
/// the test `name` (its path in this crate, `module::function`) is run
/// alone in a child process of this test binary. Returns `true` in that
/// child, where the test goes on; in the parent, waits for the child,
/// fails when it did not pass, and returns `false`.
pub fn in_own_process(name: &str) -> bool {
    if std::env::var_os(OWN_PROCESS).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--include-ignored", "--nocapture"])
        .env(OWN_PROCESS, "1")
        .output()
        .expect("run the test binary");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in its own process: {}\n{stdout}\n{stderr}",
        out.status
    );
    false
}

/// The decoded bytes of a gzip body (the test fails on a bad one).
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}
