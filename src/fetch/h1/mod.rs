//! lacquer's own HTTP/1.1 client for backend exchanges.
//!
//! Why not hyper's client connection (used until session 14): hyper runs
//! each backend connection as a task of its own and hands it every request
//! through a channel, so a pass crossed tasks twice (request over, response
//! back) with a wake-up each way, and the channel's blocks were new memory
//! every 32 requests (`Backend::send`'s hottest instruction was the atomic
//! on that block; benches/README "Session 13"). Here the request's own task
//! writes the request and reads the response: the connection (its socket
//! and read buffer) travels inside the response body and goes back to the
//! pool once the body has been read to its end. Pingora's HTTP/1 client is
//! built the same way.
//!
//! Scope: requests with no body, a body held in memory, or the client's
//! body streamed (with `Content-Length` or chunked); responses framed by
//! length, chunked coding or the connection's close; interim `1xx`
//! responses skipped. Upgrades (pipes) keep hyper (`fetch/tunnel.rs`):
//! they need the connection handed over after a `101`.

mod body;
mod request;
mod response;

pub use crate::h1::Decoder;
pub use response::Head;

use crate::h1::{poll_fill, READ_SIZE};

use bytes::BytesMut;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fetch::req_body::ReqBody;
use crate::http::BoxError;

/// A request as it goes to a backend, borrowed from what it is made of
/// (no copy of the fields per attempt).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Its method.
    pub method: &'a http::Method,
    /// Its request-target as written on the request line; must pass
    /// [`is_wire_target`].
    pub target: &'a str,
    /// Its fields (framing fields are set by the client for the body).
    pub headers: &'a http::HeaderMap,
}

/// Whether `target` can go on a request line as it is: not empty, and
/// visible ASCII only (RFC 9112 §3.2: no space, no control byte that could
/// end the line early).
pub fn is_wire_target(target: &str) -> bool {
    !target.is_empty() && target.bytes().all(|b| b.is_ascii_graphic())
}

/// Bounds on a backend's response head (`[[backend]]`'s
/// `max_response_head` and `max_response_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the status line and header fields together.
    pub max_head: usize,
    /// Header fields.
    pub max_headers: usize,
}

/// Why an exchange with a backend failed at the HTTP level.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The connection ended (closed, reset) before any byte of a response:
    /// on a reused connection, the backend closed it while it was idle.
    #[error("connection closed before the response{}", .0.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    ClosedBeforeHead(Option<std::io::Error>),
    /// Reading or writing the connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The response head did not fit in `max_response_head`.
    #[error("response head larger than {0} bytes (max_response_head)")]
    HeadTooLarge(usize),
    /// The response head had more fields than `max_response_headers`.
    #[error("response head with more than {0} fields (max_response_headers)")]
    TooManyHeaders(usize),
    /// The response head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// The head ended with the connection, part-way.
    #[error("connection closed inside the response head")]
    HeadCut,
    /// The response's length cannot be told (bad or conflicting
    /// `Content-Length`, `Transfer-Encoding` on HTTP/1.0).
    #[error("invalid response framing: {0}")]
    Framing(&'static str),
    /// Bad chunked coding in the response body.
    #[error(transparent)]
    Chunk(#[from] crate::h1::ChunkError),
    /// The connection ended before the body's announced end.
    #[error("connection closed before the end of the response body")]
    BodyCut,
    /// The backend took no request bytes for this long (it reads nothing
    /// and answers nothing): the exchange's first-byte timeout.
    #[error("the backend took no request bytes for {0:?}")]
    SendStalled(std::time::Duration),
    /// The client's request body failed while it was being sent (its
    /// fault, if any, is in the request's fault slot).
    #[error("request body: {0}")]
    RequestBody(BoxError),
    /// The request body did not match its `Content-Length`.
    #[error("request body {0} its Content-Length")]
    RequestBodyLength(&'static str),
    /// hyper's error, for the exchanges that still use it (pipes).
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

impl H1Error {
    /// Whether the request may not have reached the backend's application:
    /// the connection was found closed before any byte of an answer came.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, H1Error::ClosedBeforeHead(_))
    }
}

/// A connection to a backend: the socket and the bytes read from it that
/// no response has consumed yet.
#[derive(Debug)]
pub struct H1Conn {
    io: TcpStream,
    buf: BytesMut,
    /// The request head being written (kept: no allocation per request).
    out: Vec<u8>,
    /// Scratch space for parsing response heads (kept likewise).
    spans: response::Spans,
    /// False once something makes the connection unfit for another
    /// request (`Connection: close`, a body sent or read only in part).
    reusable: bool,
}

impl H1Conn {
    /// A fresh connection.
    pub fn new(io: TcpStream) -> H1Conn {
        H1Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            out: Vec::with_capacity(1024),
            spans: Vec::new(),
            reusable: true,
        }
    }

    /// Whether the backend closed this idle connection (or sent bytes
    /// nobody asked for). Costs no system call while the socket has not
    /// been reported readable.
    pub fn is_closed(&mut self) -> bool {
        if !self.can_reuse() {
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            // End of stream, bytes nobody asked for, or an error: closed.
            Poll::Ready(Ok(())) => !matches!(
                self.io.try_read_buf(&mut self.buf),
                Err(e) if e.kind() == ErrorKind::WouldBlock
            ),
        }
    }

    /// Sends `req` and reads the response head. `Err` before any byte of
    /// an answer came is [`H1Error::ClosedBeforeHead`].
    ///
    /// A body that cannot be written at once is written while the answer
    /// is watched for (a backend may answer before reading it all), each
    /// write within `send_stall` (a backend that neither reads nor answers
    /// is given up on).
    pub async fn exchange(
        &mut self,
        req: RequestHead<'_>,
        body: ReqBody,
        limits: Limits,
        send_stall: std::time::Duration,
    ) -> Result<Head, H1Error> {
        self.out.clear();
        let written = request::encode_head(&req, &body, &mut self.out);
        if written.close {
            self.reusable = false;
        }
        let method = req.method;
        let plan = match &body {
            ReqBody::Stream(_) => Some(written.framing),
            ReqBody::Full(Some(bytes)) if bytes.len() > READ_SIZE => {
                Some(request::Framing::Length(bytes.len() as u64))
            }
            _ => None,
        };
        let head = if let Some(plan) = plan {
            // Uploads and large bodies are the rare case, and their future
            // (body and answer watched at once) the large one: boxed, so
            // that every other exchange's future, moved through the
            // caller's, stays small.
            Box::pin(self.send_watching(body, plan, method, limits, send_stall)).await?
        } else {
            // Small enough for the socket's buffer: written at once.
            if let ReqBody::Full(Some(bytes)) = &body {
                self.out.extend_from_slice(bytes);
            }
            write_all(&mut self.io, &self.out).await?;
            read_head(&mut self.io, &mut self.buf, &mut self.spans, method, limits).await?
        };
        if !head.keep_alive {
            self.reusable = false;
        }
        Ok(head)
    }

    /// Writes the head in `self.out` and `body` while watching for the
    /// answer, which may come before the body's end.
    async fn send_watching(
        &mut self,
        body: ReqBody,
        plan: request::Framing,
        method: &http::Method,
        limits: Limits,
        stall: std::time::Duration,
    ) -> Result<Head, H1Error> {
        let (mut rd, mut wr) = self.io.split();
        let writing = request::write_streamed(&mut wr, &self.out, body, plan, stall);
        let reading = read_head(&mut rd, &mut self.buf, &mut self.spans, method, limits);
        tokio::pin!(writing, reading);
        tokio::select! {
            biased;
            sent = &mut writing => match sent {
                Ok(()) => reading.await,
                // The backend may have answered and closed (a 413 to an
                // upload): its answer wins.
                Err(e @ (H1Error::ClosedBeforeHead(_) | H1Error::Io(_))) => {
                    self.reusable = false;
                    reading.await.map_err(|_| e)
                }
                Err(e) => Err(e),
            },
            head = &mut reading => {
                // An answer before the whole body was sent (a 413, a
                // redirect): the rest stays unsent, so the connection
                // cannot carry another request.
                self.reusable = false;
                head
            }
        }
    }

    /// Whether the connection may carry another request: nothing made it
    /// unfit and no byte is left over from the last response.
    pub fn can_reuse(&self) -> bool {
        self.reusable && self.buf.is_empty()
    }

    /// Reads more bytes into the buffer, room for `want` made first;
    /// `Ready(Ok(0))` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        poll_fill(&mut self.io, &mut self.buf, cx, want)
    }
}

/// What [`read_response`] read: the final head, the body's pieces as
/// decoded, and whether the body's end was found.
#[derive(Debug)]
pub struct ReadResponse {
    /// The final (not `1xx`) response head.
    pub head: Head,
    /// The body as it was decoded, piece by piece.
    pub body: Vec<bytes::Bytes>,
    /// Whether the framing's end was reached (a close-delimited body never
    /// is: its end is the connection's).
    pub ended: bool,
}

/// A response read from `pieces` (the bytes as successive reads of a
/// connection would give them) the way an exchange reads one, without a
/// connection: for the `backend_response` fuzz target and tests. `Ok(None)`
/// when the pieces end before the head does.
pub fn read_response(
    pieces: &[&[u8]],
    method: &http::Method,
    limits: Limits,
) -> Result<Option<ReadResponse>, H1Error> {
    let mut buf = BytesMut::new();
    let mut spans = response::Spans::new();
    let mut read: Option<ReadResponse> = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        if read.is_none() {
            read = response::parse_final(&mut buf, method, limits, &mut spans)?.map(|head| {
                ReadResponse {
                    head,
                    body: Vec::new(),
                    ended: false,
                }
            });
        }
        let Some(r) = read.as_mut() else { continue };
        loop {
            match r.head.decoder.step(&mut buf, false)? {
                crate::h1::Step::Data(data) => r.body.push(data),
                crate::h1::Step::NeedMore => break,
                crate::h1::Step::End => {
                    r.ended = true;
                    return Ok(read);
                }
            }
        }
    }
    Ok(read)
}

/// Reads until a final (not `1xx`) response head is complete.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    spans: &mut response::Spans,
    method: &http::Method,
    limits: Limits,
) -> Result<Head, H1Error> {
    let mut received = !buf.is_empty();
    loop {
        if let Some(head) = response::parse_final(buf, method, limits, spans)? {
            return Ok(head);
        }
        match poll_fn(|cx| poll_fill(&mut *io, &mut *buf, cx, READ_SIZE)).await {
            Ok(0) if !received => return Err(H1Error::ClosedBeforeHead(None)),
            Ok(0) => return Err(H1Error::HeadCut),
            Ok(_) => received = true,
            Err(e) if !received && is_reset(&e) => return Err(H1Error::ClosedBeforeHead(Some(e))),
            Err(e) => return Err(H1Error::Io(e)),
        }
    }
}

/// Writes all of `data`; a connection found reset or closed while writing
/// is [`H1Error::ClosedBeforeHead`] (nothing can have been answered yet).
async fn write_all<W: AsyncWrite + Unpin>(io: &mut W, data: &[u8]) -> Result<(), H1Error> {
    io.write_all(data).await.map_err(|e| {
        if is_reset(&e) {
            H1Error::ClosedBeforeHead(Some(e))
        } else {
            H1Error::Io(e)
        }
    })
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 4096,
        max_headers: 20,
    };

    /// The status, body and end of a read, comparable across cuts.
    fn outcome(r: Result<Option<ReadResponse>, H1Error>) -> String {
        match r {
            Err(e) => format!("error {e}"),
            Ok(None) => "incomplete".into(),
            Ok(Some(r)) => {
                let body: Vec<u8> = r.body.iter().flat_map(|b| b.iter().copied()).collect();
                format!("{} {} {:?}", r.head.response.status(), r.ended, body)
            }
        }
    }

    #[test]
    fn where_reads_cut_a_response_changes_nothing() {
        let answers: [&[u8]; 7] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil the close",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ];
        for wire in answers {
            let whole = outcome(read_response(&[wire], &http::Method::GET, LIMITS));
            for cut in 0..=wire.len() {
                let split =
                    read_response(&[&wire[..cut], &wire[cut..]], &http::Method::GET, LIMITS);
                assert_eq!(
                    outcome(split),
                    whole,
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
        assert_eq!(
            outcome(read_response(&[answers[0]], &http::Method::GET, LIMITS)),
            "200 OK true [104, 101, 108, 108, 111]"
        );
        assert_eq!(
            outcome(read_response(&[answers[0]], &http::Method::HEAD, LIMITS)),
            "200 OK true []"
        );
    }
}
