//! A client's request head: parsed (`httparse`), its fields shared with the
//! read buffer rather than copied, and what the connection needs from it
//! noted on the way (the body's framing by RFC 9112 §6, keep-alive,
//! `Expect: 100-continue`, an upgrade).

use bytes::BytesMut;
use http::header::{EXPECT, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use std::mem::MaybeUninit;

use super::framing::{FramingFields, Length};
use super::Decoder;

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// Method, target, version and fields.
    pub parts: http::request::Parts,
    /// How its body is read (no framing field: no body).
    pub decoder: Decoder,
    /// The client may send another request after this one: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: the client waits for a `100`
    /// before it sends the body.
    pub expect_continue: bool,
    /// An HTTP/1.1 request with `Upgrade`: the connection may be handed
    /// over after a `101`.
    pub upgrade: bool,
}

/// Bounds on a request head (`server.max_header_bytes`,
/// `server.max_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the request line and header fields together.
    pub max_head: usize,
    /// Header fields.
    pub max_headers: usize,
}

/// Why a request head was refused; the client is answered
/// [`HeadError::status`] and the connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not an HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// Larger than `server.max_header_bytes`.
    #[error("request head larger than {0} bytes (server.max_header_bytes)")]
    TooLarge(usize),
    /// More fields than `server.max_headers`.
    #[error("request head with more than {0} fields (server.max_headers)")]
    TooManyFields(usize),
    /// The body's length cannot be told: a bad or conflicting
    /// `Content-Length`, a `Transfer-Encoding` not ending in `chunked`, on
    /// HTTP/1.0, or beside a `Content-Length` (refused rather than guessed:
    /// the request-smuggling case of RFC 9112 §6.1).
    #[error("invalid request framing: {0}")]
    Framing(&'static str),
}

impl HeadError {
    /// The status the client is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge(_) | HeadError::TooManyFields(_) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::Malformed(_) | HeadError::Framing(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Header fields parsed on the stack up to this many; more (a raised
/// `server.max_headers`, a backend's `max_response_headers`) take an
/// allocation.
pub const STACK_HEADERS: usize = 100;

/// Where each field's name and value sit in the read buffer (offset and
/// length of each): once the head is taken out of the buffer, the values
/// are slices of it rather than copies. Kept by the connection.
pub type Spans = Vec<(usize, usize, usize, usize)>;

/// The slots httparse parses at most `max` fields into: on the stack, or
/// (more than [`STACK_HEADERS`]) in `heap`. Left uninitialised: httparse
/// writes the fields it finds (an initialised array would be cleared for
/// every head).
pub fn field_slots<'s, 'b>(
    stack: &'s mut [MaybeUninit<httparse::Header<'b>>; STACK_HEADERS],
    heap: &'s mut Vec<MaybeUninit<httparse::Header<'b>>>,
    max: usize,
) -> &'s mut [MaybeUninit<httparse::Header<'b>>] {
    if max <= STACK_HEADERS {
        &mut stack[..max]
    } else {
        heap.resize_with(max, MaybeUninit::uninit);
        heap
    }
}

/// Notes in `spans` where each of `fields` sits in the buffer starting at
/// address `base`.
pub fn note_spans(fields: &[httparse::Header<'_>], base: usize, spans: &mut Spans) {
    spans.clear();
    spans.extend(fields.iter().map(|h| {
        let name = h.name.as_ptr() as usize - base;
        let value = h.value.as_ptr() as usize - base;
        (name, h.name.len(), value, h.value.len())
    }));
}

/// Parses the head at the start of `buf` and takes it out of `buf`;
/// `Ok(None)` while it is not complete. Empty lines before it are skipped
/// (RFC 9112 §2.2).
pub fn parse(
    buf: &mut BytesMut,
    limits: Limits,
    spans: &mut Spans,
) -> Result<Option<Head>, HeadError> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let fields = field_slots(&mut stack, &mut heap, limits.max_headers);
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(HeadError::TooLarge(limits.max_head))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyFields(limits.max_headers))
        }
        Err(e) => return Err(HeadError::Malformed(malformed(e))),
    };
    if len > limits.max_head {
        return Err(HeadError::TooLarge(limits.max_head));
    }
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed("method"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr() as usize;
    let target = parsed.path.unwrap_or("");
    let target_span = (target.as_ptr() as usize - base, target.len());
    note_spans(parsed.headers, base, spans);
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target_span.0..target_span.0 + target_span.1))
        .map_err(|_| HeadError::Malformed("request target"))?;
    // RFC 9112 §3.2: origin-form (`/…`) or absolute-form; authority-form
    // only for CONNECT, `*` only for OPTIONS. `GET foo` is not a request
    // for `/`.
    let target = &head[target_span.0..target_span.0 + target_span.1];
    let form_ok = target.first() == Some(&b'/')
        || uri.scheme().is_some()
        || method == Method::CONNECT
        || (method == Method::OPTIONS && target == b"*");
    if !form_ok {
        return Err(HeadError::Malformed("request target form"));
    }
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut noted = Noted::default();
    for &(name, name_len, value, value_len) in spans.iter() {
        let name = super::field_name(&head[name..name + name_len])
            .map_err(|_| HeadError::Malformed("field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len))
            .map_err(|_| HeadError::Malformed("field value"))?;
        noted.note(&name, &value);
        headers.append(name, value);
    }
    let decoder = noted.framing(version)?;
    let http11 = version == Version::HTTP_11;
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    Ok(Some(Head {
        parts,
        decoder,
        keep_alive: !noted.framing.close && (http11 || noted.framing.keep_alive),
        expect_continue: http11 && noted.expect_continue,
        upgrade: http11 && noted.upgrade,
    }))
}

/// What httparse found wrong, in words.
fn malformed(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "field name",
        httparse::Error::HeaderValue => "field value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Token => "method or target",
        httparse::Error::Version => "version",
        httparse::Error::Status | httparse::Error::TooManyHeaders => "request line",
    }
}

/// The fields the connection acts on, noted as the head's fields are read
/// (no lookup in the map afterwards).
#[derive(Debug, Default)]
struct Noted {
    framing: FramingFields,
    expect_continue: bool,
    upgrade: bool,
}

impl Noted {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if self.framing.note(name, value) {
            return;
        }
        if name == EXPECT {
            self.expect_continue |= value.as_bytes().eq_ignore_ascii_case(b"100-continue");
        } else if name == UPGRADE {
            self.upgrade = true;
        }
    }

    /// How the request's body is delimited (RFC 9112 §6.3): chunked when
    /// the last transfer coding is, else by `Content-Length`, else none.
    fn framing(&self, version: Version) -> Result<Decoder, HeadError> {
        let f = &self.framing;
        if f.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(HeadError::Framing("Transfer-Encoding on HTTP/1.0"));
            }
            if f.length != Length::Absent {
                return Err(HeadError::Framing(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            if !f.chunked_last {
                return Err(HeadError::Framing(
                    "Transfer-Encoding not ending in chunked",
                ));
            }
            return Ok(Decoder::chunked());
        }
        match f.length {
            Length::Is(n) => Ok(Decoder::length(n)),
            Length::Invalid => Err(HeadError::Framing("invalid or conflicting Content-Length")),
            Length::Absent => Ok(Decoder::empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 4096,
        max_headers: 10,
    };

    fn head(wire: &[u8]) -> Result<Option<Head>, HeadError> {
        parse(&mut BytesMut::from(wire), LIMITS, &mut Spans::new())
    }

    fn whole(wire: &[u8]) -> Head {
        head(wire).expect("valid").expect("complete")
    }

    #[test]
    fn a_head_is_parsed_and_taken_out_of_the_buffer() {
        let mut buf = BytesMut::from(
            &b"\r\nPOST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabcGET"[..],
        );
        let h = parse(&mut buf, LIMITS, &mut Spans::new())
            .expect("ok")
            .expect("complete");
        assert_eq!(&buf[..], b"abcGET");
        assert_eq!(h.parts.method, Method::POST);
        assert_eq!(h.parts.uri, "/a?b=1");
        assert_eq!(h.parts.version, Version::HTTP_11);
        assert_eq!(h.decoder.remaining(), Some(3));
        let all: Vec<_> = h.parts.headers.get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert!(h.keep_alive && !h.expect_continue && !h.upgrade);
    }

    #[test]
    fn keep_alive_expect_and_upgrade_follow_the_version() {
        let h = whole(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive && h.decoder.is_done());
        let h = whole(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = whole(b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = whole(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
        let h = whole(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.expect_continue);
        let h = whole(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
        assert!(h.upgrade);
        let h = whole(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n");
        assert!(!h.upgrade);
        let h = whole(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.decoder, Decoder::chunked());
        let h = whole(b"POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n");
        assert_eq!(h.decoder.remaining(), Some(4));
        for target in [
            &b"OPTIONS * "[..],
            b"CONNECT a.test:443 ",
            b"GET http://a.test/x ",
        ] {
            let wire = [target, b"HTTP/1.1\r\n\r\n"].concat();
            assert!(head(&wire).is_ok_and(|h| h.is_some()), "{wire:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused_with_their_status_and_partial_ones_wait() {
        assert!(matches!(head(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None)));
        for (wire, what) in [
            (
                &b"GET / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"[..],
                "conflicting lengths",
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: -4\r\n\r\n",
                "negative length",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
                "TE and CL",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "TE not ending in chunked",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "TE on 1.0",
            ),
            (b"GET / HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n", "obs-fold"),
            (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", "no colon"),
            (b"GET / HTTP/2.0\r\n\r\n", "version"),
            (b"GET /a b HTTP/1.1\r\n\r\n", "space in the target"),
            (b"G(T / HTTP/1.1\r\n\r\n", "method"),
            (b"GET foo HTTP/1.1\r\n\r\n", "a target in no form"),
            (
                b"GET example.com:80 HTTP/1.1\r\n\r\n",
                "authority-form on GET",
            ),
            (b"GET * HTTP/1.1\r\n\r\n", "asterisk on GET"),
        ] {
            let got = head(wire);
            assert!(
                matches!(&got, Err(e) if e.status() == StatusCode::BAD_REQUEST),
                "{what}: {got:?}"
            );
        }
        let many: Vec<u8> = [&b"GET / HTTP/1.1\r\n"[..], &b"A: b\r\n".repeat(11), b"\r\n"].concat();
        assert_eq!(head(&many).unwrap_err(), HeadError::TooManyFields(10));
        let big: Vec<u8> = [&b"GET / HTTP/1.1\r\nA: "[..], &[b'x'; 5000]].concat();
        assert_eq!(head(&big).unwrap_err(), HeadError::TooLarge(4096));
        assert_eq!(
            head(&big).unwrap_err().status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }
}
