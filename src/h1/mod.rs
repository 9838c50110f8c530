//! lacquer's own HTTP/1.1 server side: a client connection read and
//! answered in the connection's task, one request at a time (pipelined
//! requests wait in the read buffer).
//!
//! Why not hyper's server connection (used until session 17): of a 1 KiB
//! cache hit's ~17,500 instructions, ~8,000 were spent in hyper's
//! dispatcher, its head parsing and encoding and the buffers between them
//! (callgrind, benches/README "Session 17"). Here the head is parsed
//! straight from the read buffer (`head.rs`), the handler's future is
//! polled in place, and the response head and a small body are written
//! with one system call (`encode.rs`). Session 14 did the same for the
//! backend side (`fetch/h1`), whose body decoder this reuses.
//!
//! What it keeps from hyper's behaviour: keep-alive (HTTP/1.1 unless
//! `Connection: close`, HTTP/1.0 with `Connection: keep-alive`),
//! pipelining, `Expect: 100-continue` answered when the body is first
//! read, request bodies by length or chunked, 400/431 for bad heads,
//! upgrades handed over after a `101`, the header-read timeout (also the
//! idle keep-alive limit), the response framing rules (`encode.rs`), and
//! on shutdown: an idle connection closes at once, one with a request in
//! flight answers it with `Connection: close`.

mod body;
pub mod coarse_timer;
mod decoder;
mod encode;
mod field_name;
pub mod framing;
mod head;
mod upgrade;

pub use body::{BodyError, RequestBody};
pub use decoder::{ChunkError, Decoder, Step};
pub use encode::{field as write_field, read_by_encoder, Asked, BodySize, Framing};
pub use field_name::field_name;
pub use head::{field_slots, note_spans, HeadError, Limits, Spans, STACK_HEADERS};
pub use upgrade::{NotUpgraded, OnUpgrade, Upgraded};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::http::BoxError;
use body::Feed;
use coarse_timer::CoarseTimer;
use upgrade::Io;

/// Data frames up to this size are copied behind what is waiting to be
/// written (the head and a small body go in one system call); larger ones
/// are written from where they are, with what waits (one `writev`): a
/// 16 KiB body copied was ~16,000 of a 16 KiB hit's ~31,000 instructions.
const COPY_MAX: usize = 4 << 10;
/// Written out once this much is waiting.
const FLUSH_AT: usize = 64 << 10;
/// A write buffer grown past this is let go after its response.
const KEEP_WRITE_BUFFER: usize = 80 << 10;

/// What a read buffer grows by when it is full.
pub(crate) const READ_SIZE: usize = 8 << 10;
/// Most a read asks for while a body's length is known to be larger.
pub(crate) const BODY_READ_SIZE: usize = 64 << 10;

/// Reads what `io` has into `buf`, growing `buf` first when it has little
/// room (by `want`, the bytes expected, within the sizes above).
pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
    want: usize,
) -> Poll<std::io::Result<usize>> {
    if buf.capacity() - buf.len() < want.min(READ_SIZE) / 2 + 1 {
        buf.reserve(want.clamp(READ_SIZE, BODY_READ_SIZE));
    }
    // tokio's `poll_read` (under `read_buf`) forgets the socket's readiness
    // after a short read, so the next read waits for the next event instead
    // of starting with a system call that only says "would block".
    let read = io.read_buf(buf);
    std::pin::pin!(read).poll(cx)
}

/// One `Content-Length` field's length: digits only, a list of equal
/// lengths (`5, 5`) allowed; `None` for anything else (a byte loop: this
/// runs for nearly every response).
pub(crate) fn length_value(value: &http::HeaderValue) -> Option<u64> {
    let mut found: Option<u64> = None;
    for part in value.as_bytes().split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// A response body as the server writes it: it may write some of its
/// response's fields itself, from where they are kept (a stored object's
/// fields, without copying them into the response's map first).
pub trait ResponseBody: Body<Data = Bytes> + Unpin {
    /// Writes fields that go before the response's own (with
    /// [`write_field`]); whether a `Date` was among them. Never framing
    /// fields (`Content-Length`, `Transfer-Encoding`, `Connection`).
    fn write_fields(&self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

impl ResponseBody for http_body_util::Full<Bytes> {}

/// How client connections are served.
#[derive(Clone)]
pub struct Settings {
    /// Bounds on request heads.
    pub limits: Limits,
    /// Longest wait for a complete request head (from when the connection
    /// starts waiting for it: also the idle keep-alive limit).
    pub header_timeout: Duration,
    /// The timer the header-read timeout runs on.
    pub timer: CoarseTimer,
}

impl Settings {
    /// From the `[server]` settings.
    pub fn of(server: &crate::config::ServerConfig) -> Settings {
        Settings {
            limits: Limits {
                max_head: usize::try_from(server.max_header_bytes.0).unwrap_or(usize::MAX),
                max_headers: server.max_headers,
            },
            header_timeout: server.header_read_timeout.0,
            timer: CoarseTimer::new(server.header_read_timeout.0),
        }
    }
}

/// Why a client connection ended other than by a close between requests.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A bad request head, answered with a 4xx.
    #[error(transparent)]
    BadHead(#[from] HeadError),
    /// No complete request head within the header-read timeout.
    #[error("request head not complete within the header-read timeout")]
    HeadTimeout,
    /// The client closed the connection inside a request head.
    #[error("connection closed inside a request head")]
    HeadCut,
    /// Reading or writing the connection failed.
    #[error("client connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The response's body failed part-way; the connection was closed so
    /// the client sees it incomplete.
    #[error("response body failed: {0}")]
    Body(BoxError),
}

impl ConnError {
    /// The client's fault (a bad or slow head), logged as a refusal.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            ConnError::BadHead(_) | ConnError::HeadTimeout | ConnError::HeadCut
        )
    }
}

/// What a handler's future gives: its response, alone or with something
/// of the handler's own beside it (which the server drops). The second
/// form lets a handler hand over a future as it is, not wrapped in one
/// that takes the response out (moved into it, a few KiB, per request).
pub trait Answer {
    /// The response's body.
    type Body;
    /// The response.
    fn into_response(self) -> Response<Self::Body>;
}

impl<B> Answer for Response<B> {
    type Body = B;
    fn into_response(self) -> Response<B> {
        self
    }
}

impl<B, T> Answer for (Response<B>, T) {
    type Body = B;
    fn into_response(self) -> Response<B> {
        self.0
    }
}

/// Serves the connection `io` until it closes: each request is given to
/// `handler`, its response written. Once `stop` turns true, an idle
/// connection closes and one with a request in flight closes after
/// answering it.
pub async fn serve<I, H, F>(
    io: I,
    settings: &Settings,
    mut handler: H,
    stop: watch::Receiver<bool>,
) -> Result<(), ConnError>
where
    I: Io + 'static,
    H: FnMut(Request<RequestBody>) -> F,
    F: Future,
    F::Output: Answer,
    <F::Output as Answer>::Body: ResponseBody,
    <<F::Output as Answer>::Body as Body>::Error: Into<BoxError>,
{
    let mut conn = Conn {
        io,
        rbuf: BytesMut::with_capacity(READ_SIZE),
        wbuf: Vec::with_capacity(1024),
        spans: Vec::new(),
    };
    let mut stop = StopSignal::new(stop);
    loop {
        let Some(head) = conn.read_head(settings, &mut stop).await? else {
            let _ = conn.io.shutdown().await;
            return Ok(());
        };
        let (mut feed, body) = Feed::new(head.decoder, head.expect_continue);
        let method = head.parts.method.clone();
        let version = head.parts.version;
        let mut req = Request::from_parts(head.parts, body);
        let mut upgrade = None;
        if head.upgrade {
            let (on, tx) = OnUpgrade::pair();
            req.extensions_mut().insert(on);
            upgrade = Some(tx);
        }
        // Pinned where it is made: the handler's future (the whole
        // request's state, a few KiB) is not moved again into `respond`'s.
        let fut = pin!(handler(req));
        let resp = conn.respond(fut, &mut feed).await.into_response();
        let asked = Asked {
            method: &method,
            version,
            keep_alive: head.keep_alive && !stop.is_set(),
        };
        let (parts, body) = resp.into_parts();
        let size = if body.is_end_stream() {
            BodySize::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) => BodySize::Known(n),
                None => BodySize::Unknown,
            }
        };
        let first = |out: &mut Vec<u8>| body.write_fields(out);
        let encoded = match encode::encode_head(&parts, size, asked, &mut conn.wbuf, first) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, status = %parts.status, "response not written");
                conn.refuse(StatusCode::INTERNAL_SERVER_ERROR).await;
                return Ok(());
            }
        };
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            conn.flush(None).await?;
            // The connection is the pipe's now, with what the client sent
            // after its head; without an upgrade asked for, it closes.
            if let Some(tx) = upgrade {
                let Conn { io, rbuf, .. } = conn;
                let _ = tx.send(Upgraded::new(Box::new(io), rbuf.freeze()));
            }
            return Ok(());
        }
        drop(upgrade);
        let whole = conn.write_body(body, encoded.framing, &mut feed).await?;
        let body_read = feed.is_none_or(|f| f.finish(&mut conn.rbuf));
        if encoded.close || !whole || !body_read {
            let _ = conn.io.shutdown().await;
            return Ok(());
        }
        if conn.wbuf.capacity() > KEEP_WRITE_BUFFER {
            conn.wbuf = Vec::with_capacity(1024);
        }
    }
}

/// A connection's socket and buffers.
struct Conn<I> {
    io: I,
    /// Bytes read and not yet consumed (a head, a body, pipelined requests).
    rbuf: BytesMut,
    /// Bytes waiting to be written.
    wbuf: Vec<u8>,
    /// Scratch space for parsing heads.
    spans: head::Spans,
}

/// What ended a wait for a request head.
enum Waited {
    Read(std::io::Result<usize>),
    Timeout,
    Stop,
}

impl<I: Io> Conn<I> {
    /// The next request head; `None` when the client closed (or shutdown
    /// began, or the idle limit passed) between requests.
    async fn read_head(
        &mut self,
        settings: &Settings,
        stop: &mut StopSignal,
    ) -> Result<Option<head::Head>, ConnError> {
        let mut timer = None;
        loop {
            // Empty lines before a request line are ignored (RFC 9112
            // §2.2; some clients send one after a body): dropped here, so
            // that a connection holding only them counts as idle.
            let blank = self
                .rbuf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.rbuf.advance(blank);
            if !self.rbuf.is_empty() {
                match head::parse(&mut self.rbuf, settings.limits, &mut self.spans) {
                    Ok(Some(h)) => return Ok(Some(h)),
                    Ok(None) => {}
                    Err(e) => {
                        self.refuse(e.status()).await;
                        return Err(e.into());
                    }
                }
            }
            let idle = self.rbuf.is_empty();
            let waited = poll_fn(|cx| {
                if idle && stop.poll_stopped(cx) {
                    return Poll::Ready(Waited::Stop);
                }
                if let Poll::Ready(r) = poll_fill(&mut self.io, &mut self.rbuf, cx, READ_SIZE) {
                    return Poll::Ready(Waited::Read(r));
                }
                let t = timer.get_or_insert_with(|| settings.timer.sleep(settings.header_timeout));
                if Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(Waited::Timeout);
                }
                Poll::Pending
            })
            .await;
            match waited {
                Waited::Read(Ok(n)) if n > 0 => {}
                // The stop is only awaited while idle.
                Waited::Stop => return Ok(None),
                Waited::Read(_) | Waited::Timeout if idle => return Ok(None),
                Waited::Read(Ok(_)) => return Err(ConnError::HeadCut),
                Waited::Read(Err(e)) => return Err(e.into()),
                Waited::Timeout => return Err(ConnError::HeadTimeout),
            }
        }
    }

    /// Polls the handler's future to its response, feeding the request's
    /// body to it meanwhile.
    async fn respond<F: Future>(
        &mut self,
        mut fut: Pin<&mut F>,
        feed: &mut Option<Feed>,
    ) -> F::Output {
        poll_fn(|cx| loop {
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if !self.feed(feed, cx) {
                return Poll::Pending;
            }
        })
        .await
    }

    /// One turn of the request body's feed; whether it gave the reader
    /// something.
    fn feed(&mut self, feed: &mut Option<Feed>, cx: &mut Context<'_>) -> bool {
        feed.as_mut()
            .is_some_and(|f| f.feed(&mut self.io, &mut self.rbuf, cx))
    }

    /// Writes the response's body framed as `framing` (the head is in
    /// `wbuf`); whether it was written whole.
    async fn write_body<B>(
        &mut self,
        mut body: B,
        framing: Framing,
        feed: &mut Option<Feed>,
    ) -> Result<bool, ConnError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let length = match framing {
            Framing::None | Framing::Length(0) => {
                drop(body);
                self.flush(None).await?;
                return Ok(true);
            }
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        let mut sent: u64 = 0;
        loop {
            let frame = poll_fn(|cx| loop {
                if let Poll::Ready(f) = Pin::new(&mut body).poll_frame(cx) {
                    return Poll::Ready(Some(f));
                }
                if self.feed(feed, cx) {
                    continue;
                }
                // Nothing more yet: what is waiting goes out meanwhile.
                if !self.wbuf.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Pending;
            })
            .await;
            let frame = match frame {
                None => {
                    self.flush(None).await?;
                    continue;
                }
                Some(f) => f,
            };
            let data = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers are not passed on
                },
                Some(Err(e)) => {
                    // What came is sent; the close tells the client the rest
                    // will not.
                    self.flush(None).await?;
                    return Err(ConnError::Body(e.into()));
                }
                None => {
                    let whole = match length {
                        Some(n) => sent == n,
                        None => {
                            if framing == Framing::Chunked {
                                self.wbuf.extend_from_slice(b"0\r\n\r\n");
                            }
                            true
                        }
                    };
                    self.flush(None).await?;
                    return Ok(whole);
                }
            };
            if data.is_empty() {
                continue;
            }
            let data = match length {
                Some(n) if sent + data.len() as u64 > n => {
                    // More than the head announced: cut, and the connection
                    // closes (its framing can no longer be trusted).
                    let keep = usize::try_from(n - sent).unwrap_or(0);
                    self.flush(Some(&data[..keep])).await?;
                    tracing::warn!(length = n, "response body longer than its Content-Length");
                    return Ok(false);
                }
                _ => data,
            };
            sent += data.len() as u64;
            let chunked = framing == Framing::Chunked;
            if chunked {
                let mut hex = [0u8; 16];
                let digits = hex_digits(data.len(), &mut hex);
                self.wbuf.extend_from_slice(digits);
                self.wbuf.extend_from_slice(b"\r\n");
            }
            if data.len() <= COPY_MAX {
                self.wbuf.extend_from_slice(&data);
            } else {
                self.flush(Some(&data)).await?;
            }
            if chunked {
                self.wbuf.extend_from_slice(b"\r\n");
            }
            if self.wbuf.len() >= FLUSH_AT {
                self.flush(None).await?;
            }
        }
    }

    /// Writes what waits in `wbuf`, then `more`.
    async fn flush(&mut self, more: Option<&[u8]>) -> std::io::Result<()> {
        let more = more.unwrap_or(&[]);
        let (mut at, mut more_at) = (0, 0);
        poll_fn(|cx| loop {
            let head = &self.wbuf[at..];
            let tail = &more[more_at..];
            let n = match (head.is_empty(), tail.is_empty()) {
                (true, true) => return Poll::Ready(Ok::<(), std::io::Error>(())),
                (false, true) => std::task::ready!(Pin::new(&mut self.io).poll_write(cx, head)),
                (true, false) => std::task::ready!(Pin::new(&mut self.io).poll_write(cx, tail)),
                (false, false) => std::task::ready!(Pin::new(&mut self.io)
                    .poll_write_vectored(cx, &[IoSlice::new(head), IoSlice::new(tail)])),
            }?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            let from_head = n.min(head.len());
            at += from_head;
            more_at += n - from_head;
        })
        .await?;
        self.wbuf.clear();
        Ok(())
    }

    /// Answers `status` with no body and closes (a bad head, a response
    /// that cannot be written).
    async fn refuse(&mut self, status: StatusCode) {
        self.wbuf.clear();
        let mut resp = Response::new(());
        *resp.status_mut() = status;
        let (parts, ()) = resp.into_parts();
        let asked = Asked {
            method: &http::Method::GET,
            version: http::Version::HTTP_11,
            keep_alive: false,
        };
        if encode::encode_head(&parts, BodySize::Empty, asked, &mut self.wbuf, |_| false).is_ok() {
            let _ = self.flush(None).await;
        }
        let _ = self.io.shutdown().await;
    }
}

/// Keeps `waker` in `slot` to be woken later, unless the one there already
/// wakes the same task (no clone per poll).
fn remember(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// `n` in lowercase hex, written into the end of `buf`.
fn hex_digits(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The shutdown signal as a connection watches it: its future polled once
/// to register the connection's task and again only when the signal has
/// changed (an atomic read), not on every wake-up.
struct StopSignal {
    probe: watch::Receiver<bool>,
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    registered: bool,
    fired: bool,
}

impl StopSignal {
    fn new(stop: watch::Receiver<bool>) -> StopSignal {
        let probe = stop.clone();
        let mut stop = stop;
        StopSignal {
            probe,
            signal: Box::pin(async move {
                // Also when the signal is gone.
                let _ = stop.wait_for(|s| *s).await;
            }),
            registered: false,
            fired: false,
        }
    }

    /// Whether shutdown has begun; registers `cx` to be woken when it does.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.fired && (!self.registered || self.changed()) {
            self.registered = true;
            self.fired = self.signal.as_mut().poll(cx).is_ready();
        }
        self.fired
    }

    /// Whether shutdown has begun (or may have: the signal changed).
    fn is_set(&mut self) -> bool {
        self.fired || self.changed()
    }

    fn changed(&self) -> bool {
        !matches!(self.probe.has_changed(), Ok(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        let mut buf = [0u8; 16];
        assert_eq!(hex_digits(0, &mut buf), b"0");
        assert_eq!(hex_digits(255, &mut buf), b"ff");
        assert_eq!(hex_digits(0x1000, &mut buf), b"1000");
        assert_eq!(hex_digits(usize::MAX, &mut buf).len(), 16);
    }
}
