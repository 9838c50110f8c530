//! A backend: its keep-alive connection pool and the request/response exchange
//! with timeouts.
//!
//! Why a pool of lacquer's own: it needs to know whether a request went out
//! on a reused connection (a backend that closed an idle connection must
//! never surface as a 502 — such requests are retried on a fresh
//! connection), a per-backend connection limit, and the first-byte /
//! between-bytes timeouts of Varnish. The exchanges themselves are
//! lacquer's HTTP/1.1 client (`fetch::h1`), run by the request's own task.

/// Timeouts one request sets for itself (VCL's `bereq.connect_timeout`,
/// `bereq.first_byte_timeout`, `bereq.between_bytes_timeout`), given to
/// [`Backend::send`]; those left `None` are the backend's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// For opening a connection.
    pub connect: Option<Duration>,
    /// For the response head.
    pub first_byte: Option<Duration>,
    /// Between two pieces of the body.
    pub between_bytes: Option<Duration>,
}

use bytes::Bytes;
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::config::BackendConfig;
use crate::fetch::h1::{self, H1Conn, H1Error};
use crate::fetch::req_body::ReqBody;

/// Why a backend exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// TCP connect failed (refused, unreachable, name not resolved).
    #[error("backend {backend}: connect failed: {source}")]
    Connect {
        /// Backend name.
        backend: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TCP connect took longer than `connect_timeout`.
    #[error("backend {0}: connect timed out")]
    ConnectTimeout(String),
    /// All `max_connections` were busy for longer than `connect_timeout`.
    #[error("backend {0}: all connections busy")]
    PoolExhausted(String),
    /// Every backend of the director is sick.
    #[error("no healthy backend")]
    NoHealthyBackend,
    /// No response head within `first_byte_timeout`.
    #[error("backend {0}: no response within the first-byte timeout")]
    FirstByteTimeout(String),
    /// The backend broke HTTP (garbage, closed early, bad framing).
    #[error("backend {backend}: {source}")]
    Protocol {
        /// Backend name.
        backend: String,
        /// What went wrong.
        source: H1Error,
    },
}

impl FetchError {
    /// Short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            FetchError::Connect { .. } => "connect-failed",
            FetchError::ConnectTimeout(_) => "connect-timeout",
            FetchError::PoolExhausted(_) => "pool-exhausted",
            FetchError::FirstByteTimeout(_) => "first-byte-timeout",
            FetchError::NoHealthyBackend => "no-healthy-backend",
            FetchError::Protocol { .. } => "protocol-error",
        }
    }
}

/// Errors while streaming a backend body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No data for longer than `between_bytes_timeout`.
    #[error("backend body stalled beyond the between-bytes timeout")]
    BetweenBytesTimeout,
    /// The connection broke mid-body, or the body's framing was bad.
    #[error("backend body: {0}")]
    Backend(#[from] H1Error),
    /// The same, on a connection hyper reads (a pipe's answer).
    #[error("backend body: {0}")]
    Hyper(#[from] hyper::Error),
}

/// A pooled connection. Kept boxed from its opening to its close: it
/// travels in every response body and through the pool, and a pointer
/// moves where 150 bytes would be copied at each step (futures, results).
type Pooled = Box<Conn>;

struct Conn {
    h1: H1Conn,
    /// The pool shard of the thread that opened it (where its I/O task runs).
    shard: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Idle pools per backend. Each thread uses its own, so with one runtime per
/// worker thread a request reuses connections whose I/O task runs on its own
/// thread: no cross-thread wake-ups per backend exchange.
const SHARDS: usize = 16;

/// This thread's pool shard.
fn shard() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

struct Idle {
    conn: Pooled,
    since: Instant,
}

/// One app server and its connection pool.
pub struct Backend {
    name: String,
    address: String,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    between_bytes_timeout: Duration,
    idle_timeout: Duration,
    limits: h1::Limits,
    /// Idle connections, one stack per worker thread (see [`shard`]).
    idle: Box<[Mutex<Vec<Idle>>]>,
    limit: Option<Arc<Semaphore>>,
    released: Notify,
    /// Probe verdict; true without a probe.
    healthy: std::sync::atomic::AtomicBool,
    /// The last probes, newest in bit 0 (1 = success).
    probe_window: std::sync::atomic::AtomicU64,
    /// Probes remembered (0: no probe).
    probe_window_len: u32,
    /// The last failed exchange: when, and the full error (for operators).
    last_error: Mutex<Option<(std::time::SystemTime, String)>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("address", &self.address)
            .finish()
    }
}

impl Backend {
    /// A backend built from its settings.
    pub fn new(cfg: &BackendConfig) -> Arc<Backend> {
        let backend = Arc::new(Backend {
            name: cfg.name.clone(),
            address: cfg.address.clone(),
            connect_timeout: cfg.connect_timeout.0,
            first_byte_timeout: cfg.first_byte_timeout.0,
            between_bytes_timeout: cfg.between_bytes_timeout.0,
            idle_timeout: cfg.idle_timeout.0,
            limits: h1::Limits {
                max_head: usize::try_from(cfg.max_response_head.0).unwrap_or(usize::MAX),
                max_headers: cfg.max_response_headers,
            },
            idle: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            limit: (cfg.max_connections > 0).then(|| Arc::new(Semaphore::new(cfg.max_connections))),
            released: Notify::new(),
            healthy: std::sync::atomic::AtomicBool::new(true),
            // As Varnish's default `.initial`: threshold - 1 good probes are
            // assumed, so the first good probe confirms the backend healthy
            // and the first bad one makes it sick.
            probe_window: std::sync::atomic::AtomicU64::new(
                cfg.probe
                    .as_ref()
                    .map_or(0, |p| (1u64 << p.threshold.saturating_sub(1).min(63)) - 1),
            ),
            probe_window_len: cfg.probe.as_ref().map_or(0, |p| p.window),
            last_error: Mutex::new(None),
        });
        backend
    }

    /// Closes pooled connections once idle longer than `idle_timeout`, even
    /// when no request comes to notice them: background work for the
    /// server to run (it ends when the backend is dropped).
    pub fn reaper(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let period = (self.idle_timeout / 2).max(Duration::from_millis(50));
        crate::background::every_while_alive(Arc::downgrade(self), period, |backend| {
            let now = Instant::now();
            for shard in backend.idle.iter() {
                let mut idle = shard.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain_mut(|i| {
                    now.duration_since(i.since) < backend.idle_timeout && !i.conn.h1.is_closed()
                });
            }
            std::future::ready(())
        })
    }

    /// Whether the probe (if any) says the backend is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a probe result; returns the new verdict (healthy while at
    /// least `threshold` of the last `window` probes succeeded).
    pub fn record_probe(&self, ok: bool, window: u32, threshold: u32) -> bool {
        use std::sync::atomic::Ordering;
        let mask = if window >= 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        let bits = self
            .probe_window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(((w << 1) | u64::from(ok)) & mask)
            })
            .map_or(0, |old| ((old << 1) | u64::from(ok)) & mask);
        let healthy = bits.count_ones() >= threshold;
        let was = self.healthy.swap(healthy, Ordering::AcqRel);
        if was != healthy {
            tracing::warn!(backend = %self.name, healthy, probes = %format!("{bits:0w$b}", w = window as usize), "backend health changed");
        }
        healthy
    }

    /// The last probes, newest last (`X` success, `-` failure), like
    /// varnishadm's `backend.list -p`; empty without a probe.
    pub fn probe_history(&self) -> String {
        let bits = self.probe_window.load(std::sync::atomic::Ordering::Acquire);
        (0..self.probe_window_len)
            .rev()
            .map(|i| if bits >> i & 1 == 1 { 'X' } else { '-' })
            .collect()
    }

    /// Remembers `error` as this backend's last failure.
    pub fn note_error(&self, error: &FetchError) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((std::time::SystemTime::now(), error.to_string()));
    }

    /// The last failure and when it happened, if any.
    pub fn last_error(&self) -> Option<(std::time::SystemTime, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The backend's name from the settings.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A body of this backend read on a connection outside the pool (a
    /// pipe's answer that did not switch protocols), with the backend's
    /// between-bytes timeout.
    pub fn unpooled_body(&self, inner: Incoming) -> BackendBody {
        BackendBody {
            inner: Inner::Hyper(inner),
            backend: None,
            timeout: self.between_bytes_timeout,
            sleep: None,
        }
    }

    /// Its connect and first-byte timeouts.
    pub fn timeouts(&self) -> (Duration, Duration) {
        (self.connect_timeout, self.first_byte_timeout)
    }

    /// Sends `req` with `body` (and the request's own timeouts, `own`) and
    /// returns the response head with a streaming body.
    ///
    /// A request that fails on a reused connection before any response byte
    /// arrived (the backend closed it while idle) is sent again on a fresh
    /// connection when its method is idempotent and `remake` makes it anew
    /// (`None`: its body cannot be sent twice). Made anew only then: the
    /// caller keeps what the request is made from, so the common case pays
    /// for no copy.
    pub async fn send(
        self: &Arc<Self>,
        req: h1::RequestHead<'_>,
        own: RequestTimeouts,
        body: ReqBody,
        mut remake: impl FnMut() -> Option<ReqBody> + Send,
    ) -> Result<Response<BackendBody>, FetchError> {
        let idempotent = is_idempotent(req.method);
        // A streamed body cannot be replayed, so it never rides on a
        // connection that may have been closed while idle.
        let fresh_only = matches!(body, ReqBody::Stream(_)) && idempotent;
        let first_byte_timeout = own.first_byte.unwrap_or(self.first_byte_timeout);
        let between_bytes = own.between_bytes.unwrap_or(self.between_bytes_timeout);
        let connect_timeout = own.connect.unwrap_or(self.connect_timeout);
        let mut body = body;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut conn, reused) = self
                .checkout(fresh_only || attempts > 1, connect_timeout)
                .await?;
            let body_sent = body.sent();
            let sent = within_first_byte(
                first_byte_timeout,
                body_sent,
                conn.h1.exchange(req, body, self.limits, first_byte_timeout),
            )
            .await;
            match sent {
                // A backend that takes no more of the request body and
                // answers nothing is as late as one that never answers.
                Err(_) | Ok(Err(H1Error::SendStalled(_))) => {
                    return Err(FetchError::FirstByteTimeout(self.name.clone()))
                }
                Ok(Ok(head)) => return Ok(self.wrap(head, conn, between_bytes)),
                Ok(Err(err)) => {
                    // Only a reused connection can have been closed under us.
                    let retryable =
                        attempts < 3 && reused && idempotent && err.is_stale_connection();
                    match retryable.then(&mut remake).flatten() {
                        Some(anew) => {
                            tracing::debug!(backend = %self.name, error = %err,
                                "reused connection was closed by the backend; retrying");
                            body = anew;
                        }
                        None => return Err(self.protocol(err)),
                    }
                }
            }
        }
    }

    fn protocol(&self, source: H1Error) -> FetchError {
        FetchError::Protocol {
            backend: self.name.clone(),
            source,
        }
    }

    fn wrap(
        self: &Arc<Self>,
        head: h1::Head,
        conn: Pooled,
        between_bytes: Duration,
    ) -> Response<BackendBody> {
        let h1::Head {
            response, decoder, ..
        } = head;
        let mut body = BackendBody {
            inner: Inner::Own {
                conn: Some(conn),
                decoder,
            },
            backend: Some(self.clone()),
            timeout: between_bytes,
            sleep: None,
        };
        body.release_if_done();
        response.map(|()| body)
    }

    /// Takes an idle connection, or opens one, honouring `max_connections`.
    async fn checkout(
        &self,
        fresh_only: bool,
        connect_timeout: Duration,
    ) -> Result<(Pooled, bool), FetchError> {
        // Read the clock only when no idle connection is at hand.
        let mut started: Option<Instant> = None;
        let mut deadline = || *started.get_or_insert_with(Instant::now) + connect_timeout;
        loop {
            if !fresh_only {
                if let Some(conn) = self.pop_idle(Some(shard())) {
                    return Ok((conn, true));
                }
            }
            let permit = match &self.limit {
                None => None,
                Some(sem) => match sem.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        if let Some(idle) = self.pop_idle(None) {
                            if fresh_only {
                                // Make room: an idle connection is worth less than this request.
                                drop(idle);
                                continue;
                            }
                            // At the limit: use another worker's idle connection.
                            return Ok((idle, true));
                        }
                        let wait = deadline().saturating_duration_since(Instant::now());
                        // Wait for a connection to be closed (permit) or pooled (notify).
                        tokio::select! {
                            p = sem.clone().acquire_owned() => p.ok(),
                            _ = self.released.notified() => continue,
                            _ = tokio::time::sleep(wait) => {
                                return Err(FetchError::PoolExhausted(self.name.clone()))
                            }
                        }
                    }
                },
            };
            let remaining = deadline().saturating_duration_since(Instant::now());
            let h1 = self.connect(remaining).await?;
            return Ok((
                Box::new(Conn {
                    h1,
                    shard: shard(),
                    _permit: permit,
                }),
                false,
            ));
        }
    }

    /// An idle connection from `shard`, or from any shard.
    fn pop_idle(&self, shard: Option<usize>) -> Option<Pooled> {
        let now = Instant::now();
        let shards: &[Mutex<Vec<Idle>>] = match shard {
            Some(i) => std::slice::from_ref(&self.idle[i]),
            None => &self.idle,
        };
        for shard in shards {
            let mut idle = shard.lock().unwrap_or_else(|p| p.into_inner());
            while let Some(mut entry) = idle.pop() {
                if now.duration_since(entry.since) < self.idle_timeout && !entry.conn.h1.is_closed()
                {
                    return Some(entry.conn);
                }
            }
        }
        None
    }

    fn checkin(&self, conn: Pooled) {
        if !conn.h1.can_reuse() || self.idle_timeout.is_zero() {
            drop(conn);
        } else {
            let mut idle = self.idle[conn.shard]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Drop the stale end of the stack (oldest first) as we go.
            let now = Instant::now();
            idle.retain(|i| now.duration_since(i.since) < self.idle_timeout);
            idle.push(Idle { conn, since: now });
        }
        self.released.notify_one();
    }

    async fn connect(&self, within: Duration) -> Result<H1Conn, FetchError> {
        let connect = async {
            let stream =
                TcpStream::connect(&self.address)
                    .await
                    .map_err(|source| FetchError::Connect {
                        backend: self.name.clone(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            Ok(H1Conn::new(stream))
        };
        match tokio::time::timeout(within, connect).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::ConnectTimeout(self.name.clone())),
        }
    }
}

/// Runs `exchange` (send the request, await the response head) with the
/// first-byte timeout counted from the moment the request body has been
/// sent whole: a long upload at a steady pace is not a slow backend, and a
/// stalled one is `server.body_timeout`'s to cut (408). A backend may still
/// answer before the body is done (e.g. 413).
async fn within_first_byte<F: Future>(
    limit: Duration,
    body_sent: Option<crate::fetch::req_body::BodySent>,
    exchange: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::pin!(exchange);
    if let Some(body_sent) = body_sent {
        tokio::select! {
            answer = &mut exchange => return Ok(answer),
            () = body_sent.wait() => {}
        }
    }
    tokio::time::timeout(limit, exchange).await
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// A backend response body: streams the backend's bytes with the
/// between-bytes timeout, and gives the connection back to the pool once the
/// body has been read to its end.
pub struct BackendBody {
    inner: Inner,
    backend: Option<Arc<Backend>>,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

enum Inner {
    /// Read by lacquer's client; the connection rides along until the end.
    Own {
        conn: Option<Pooled>,
        decoder: h1::Decoder,
    },
    /// Read by hyper (a pipe's answer on a connection of its own).
    Hyper(Incoming),
}

impl BackendBody {
    /// Back to the pool once the body has been read whole.
    fn release_if_done(&mut self) {
        if let Inner::Own { conn, decoder } = &mut self.inner {
            if decoder.is_done() {
                if let (Some(conn), Some(backend)) = (conn.take(), self.backend.take()) {
                    backend.checkin(conn);
                }
            }
        }
    }

    /// The next piece, without the timeout.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        match &mut self.inner {
            Inner::Own { conn, decoder } => {
                let Some(c) = conn.as_mut() else {
                    return Poll::Ready(None);
                };
                match decoder.poll_data(&mut c.h1, cx) {
                    Poll::Ready(Ok(Some(data))) => Poll::Ready(Some(Ok(data))),
                    Poll::Ready(Ok(None)) => Poll::Ready(None),
                    Poll::Ready(Err(e)) => {
                        *conn = None;
                        Poll::Ready(Some(Err(BodyError::Backend(e))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Inner::Hyper(inner) => loop {
                match std::task::ready!(Pin::new(&mut *inner).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(BodyError::Hyper(e)))),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                }
            },
        }
    }
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match this.poll_inner(cx) {
            Poll::Ready(None) => {
                this.release_if_done();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(data))) => {
                this.sleep = None;
                this.release_if_done();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if let Inner::Own { conn, .. } = &mut this.inner {
                            *conn = None;
                        }
                        Poll::Ready(Some(Err(BodyError::BetweenBytesTimeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Own { decoder, .. } => decoder.is_done(),
            Inner::Hyper(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Own { decoder, .. } => match decoder.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
            Inner::Hyper(inner) => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeConfig;

    #[tokio::test]
    async fn probe_window_starts_one_short_of_the_threshold() {
        let cfg = BackendConfig {
            address: "127.0.0.1:9".into(),
            probe: Some(ProbeConfig {
                window: 5,
                threshold: 3,
                ..ProbeConfig::default()
            }),
            ..BackendConfig::default()
        };
        let b = Backend::new(&cfg);
        assert!(b.is_healthy(), "healthy until the first probe");
        assert!(
            b.record_probe(true, 5, 3),
            "first good probe confirms health"
        );
        assert_eq!(b.probe_history(), "--XXX");
        let b = Backend::new(&cfg);
        assert!(
            !b.record_probe(false, 5, 3),
            "first bad probe makes it sick"
        );
        assert!(b.record_probe(true, 5, 3), "3 of the last 5 good again");
        assert!(!b.record_probe(false, 5, 3) || b.is_healthy());
        assert_eq!(b.probe_history(), "XX-X-");
    }
}
