//! The request head as it goes on the wire, and the streamed request body.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};
use http_body::Body;
use std::future::poll_fn;
use std::io::Write as _;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncWrite;

use super::{write_all, H1Error, RequestHead};
use crate::fetch::req_body::ReqBody;
use crate::h1::length_value;

/// What [`encode_head`] wrote: the body's framing, and whether the
/// request asked for the connection to close after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub framing: Framing,
    pub close: bool,
}

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (or one sent whole, with its length in the head).
    Whole,
    /// Exactly this many bytes, streamed.
    Length(u64),
    /// Chunked coding.
    Chunked,
}

/// Writes the request line and header fields into `out`, with the body's
/// framing: a body held in memory is sent with its `Content-Length`; a
/// streamed one with the client's `Content-Length` when it gave one, else
/// chunked; no body with no framing fields but those the request carries
/// (a `Transfer-Encoding` without a body is dropped). As hyper's client did,
/// a streamed body of unknown length on GET, HEAD or CONNECT is not sent.
pub(super) fn encode_head(parts: &RequestHead<'_>, body: &ReqBody, out: &mut Vec<u8>) -> Written {
    let framing = match body {
        ReqBody::Empty | ReqBody::Full(_) => Framing::Whole,
        ReqBody::Stream(_) => match content_length(parts.headers) {
            Some(n) if !parts.headers.contains_key(TRANSFER_ENCODING) => Framing::Length(n),
            _ if matches!(*parts.method, Method::GET | Method::HEAD | Method::CONNECT)
                && !parts.headers.contains_key(TRANSFER_ENCODING) =>
            {
                Framing::Length(0)
            }
            _ => Framing::Chunked,
        },
    };
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let own_length = matches!(body, ReqBody::Full(Some(_))) || framing == Framing::Chunked;
    let mut close = false;
    for (name, value) in parts.headers {
        if name == TRANSFER_ENCODING || (own_length && name == CONTENT_LENGTH) {
            continue;
        }
        if name == CONNECTION {
            close |= says_close(value);
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        ReqBody::Full(Some(b)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        _ if framing == Framing::Chunked => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    Written { framing, close }
}

/// The one length the `Content-Length` fields agree on, if any.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut found = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = length_value(value)?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

/// Whether a `Connection` field names `close`.
fn says_close(value: &http::HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// Writes `head`, then `body` as it arrives, framed as `framing` says;
/// each write within `stall`.
pub(super) async fn write_streamed<W: AsyncWrite + Unpin>(
    io: &mut W,
    head: &[u8],
    mut body: ReqBody,
    framing: Framing,
    stall: Duration,
) -> Result<(), H1Error> {
    let mut io = Stalling { io, stall };
    io.write(head).await?;
    let mut sent: u64 = 0;
    let mut frame_head = Vec::with_capacity(20);
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let Some(frame) = frame else { break };
        let data: Bytes = match frame.map_err(H1Error::RequestBody)?.into_data() {
            Ok(d) if !d.is_empty() => d,
            _ => continue,
        };
        match framing {
            Framing::Length(n) => {
                sent += data.len() as u64;
                if sent > n {
                    return Err(H1Error::RequestBodyLength("is longer than"));
                }
                io.write(&data).await?;
            }
            Framing::Chunked => {
                frame_head.clear();
                let _ = write!(frame_head, "{:x}\r\n", data.len());
                io.write(&frame_head).await?;
                io.write(&data).await?;
                io.write(b"\r\n").await?;
            }
            Framing::Whole => {}
        }
    }
    match framing {
        Framing::Length(n) if sent < n => Err(H1Error::RequestBodyLength("is shorter than")),
        Framing::Chunked => io.write(b"0\r\n\r\n").await,
        _ => Ok(()),
    }
}

/// A writer whose every write must be done within `stall`.
struct Stalling<'a, W> {
    io: &'a mut W,
    stall: Duration,
}

impl<W: AsyncWrite + Unpin> Stalling<'_, W> {
    async fn write(&mut self, data: &[u8]) -> Result<(), H1Error> {
        tokio::time::timeout(self.stall, write_all(&mut *self.io, data))
            .await
            .map_err(|_| H1Error::SendStalled(self.stall))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(req: http::Request<ReqBody>) -> (String, Framing) {
        let (parts, body) = req.into_parts();
        let target = parts.uri.to_string();
        let head = RequestHead {
            method: &parts.method,
            target: &target,
            headers: &parts.headers,
        };
        let mut out = Vec::new();
        let written = encode_head(&head, &body, &mut out);
        (String::from_utf8(out).expect("text"), written.framing)
    }

    #[test]
    fn heads_carry_their_framing() {
        let req = http::Request::get("/a?b=c")
            .header("host", "h")
            .header("transfer-encoding", "chunked")
            .body(ReqBody::Empty)
            .expect("request");
        let (text, framing) = wire(req);
        assert_eq!(text, "GET /a?b=c HTTP/1.1\r\nhost: h\r\n\r\n");
        assert_eq!(framing, Framing::Whole);
        let req = http::Request::post("/f")
            .header("content-length", "99")
            .body(ReqBody::Full(Some(Bytes::from_static(b"abc"))))
            .expect("request");
        let (text, _) = wire(req);
        assert_eq!(text, "POST /f HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
        let req = http::Request::get("http://example.com/x")
            .body(ReqBody::Empty)
            .expect("request");
        assert!(wire(req)
            .0
            .starts_with("GET http://example.com/x HTTP/1.1\r\n"));
    }

    #[test]
    fn lengths_and_close_are_read_from_fields() {
        let mut h = HeaderMap::new();
        h.append(CONTENT_LENGTH, "5".parse().expect("value"));
        h.append(CONTENT_LENGTH, "5, 5".parse().expect("value"));
        assert_eq!(content_length(&h), Some(5));
        h.append(CONTENT_LENGTH, "6".parse().expect("value"));
        assert_eq!(content_length(&h), None);
        for bad in [
            "",
            " ",
            "+5",
            "-5",
            "5x",
            "0x5",
            "5 5",
            "5,",
            "18446744073709551616",
        ] {
            let v = http::HeaderValue::from_str(bad).expect("value");
            assert_eq!(length_value(&v), None, "{bad:?}");
        }
        for (good, n) in [
            ("0", 0),
            (" 0005 ", 5),
            ("7,7", 7),
            ("18446744073709551615", u64::MAX),
        ] {
            let v = http::HeaderValue::from_str(good).expect("value");
            assert_eq!(length_value(&v), Some(n), "{good:?}");
        }
        assert!(says_close(&"keep-alive, Close".parse().expect("value")));
        assert!(!says_close(&"keep-alive".parse().expect("value")));
        let req = http::Request::get("/")
            .header("connection", "close")
            .body(ReqBody::Empty)
            .expect("request");
        let (parts, body) = req.into_parts();
        let head = RequestHead {
            method: &parts.method,
            target: "/",
            headers: &parts.headers,
        };
        assert!(encode_head(&head, &body, &mut Vec::new()).close);
    }
}
