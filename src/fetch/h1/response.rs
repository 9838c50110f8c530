//! The response head: parsed (`httparse`), its fields shared with the read
//! buffer rather than copied, and the body's framing decided (RFC 9112
//! §6.3).

use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use std::mem::MaybeUninit;

use super::{H1Error, Limits};
use crate::h1::framing::{FramingFields, Length};
use crate::h1::{field_name, field_slots, note_spans, Decoder, STACK_HEADERS};

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version, fields (and a non-standard reason phrase as
    /// hyper's `ReasonPhrase` extension, which lacquer reads).
    pub response: Response<()>,
    /// How its body is read.
    pub decoder: Decoder,
    /// Whether the connection may carry another request after it.
    pub keep_alive: bool,
    /// A `1xx` other than `101`: skipped, the final answer follows.
    pub(super) interim: bool,
}

pub(super) use crate::h1::Spans;

/// The final (not `1xx`) head at the start of `buf`, interim ones read
/// past; `Ok(None)` until it is complete.
pub(super) fn parse_final(
    buf: &mut BytesMut,
    method: &Method,
    limits: Limits,
    spans: &mut Spans,
) -> Result<Option<Head>, H1Error> {
    while let Some(head) = parse(buf, method, limits, spans)? {
        if !head.interim {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

/// Parses the head at the start of `buf` and takes it out of `buf`;
/// `Ok(None)` when it is not complete yet.
/// `spans` is scratch space kept by the connection (where each field sits
/// in `buf`).
pub(super) fn parse(
    buf: &mut BytesMut,
    method: &Method,
    limits: Limits,
    spans: &mut Spans,
) -> Result<Option<Head>, H1Error> {
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let fields = field_slots(&mut stack, &mut heap, limits.max_headers);
    let mut parsed = httparse::Response::new(&mut []);
    let parsing = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        fields,
    );
    let len = match parsing {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(H1Error::HeadTooLarge(limits.max_head))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::TooManyHeaders(limits.max_headers))
        }
        Err(e) => return Err(H1Error::Malformed(e)),
    };
    if len > limits.max_head {
        return Err(H1Error::HeadTooLarge(limits.max_head));
    }
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| H1Error::Framing("status code"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr() as usize;
    let reason = parsed
        .reason
        .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
        .map(|r| r.as_bytes().to_vec());
    // Where each field's name and value sit in `buf`, so that the values
    // can be slices of the head once it is taken out.
    note_spans(parsed.headers, base, spans);
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut fields = FramingFields::default();
    for &(name, name_len, value, value_len) in spans.iter() {
        let name = field_name(&head[name..name + name_len])
            .map_err(|_| H1Error::Framing("invalid field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value + value_len))
            .map_err(|_| H1Error::Framing("invalid field value"))?;
        fields.note(&name, &value);
        headers.append(name, value);
    }
    let interim = status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS;
    let (decoder, keep_alive) = framing(&fields, status, version, method)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    if let Some(reason) = reason {
        if let Ok(p) = hyper::ext::ReasonPhrase::try_from(reason) {
            response.extensions_mut().insert(p);
        }
    }
    Ok(Some(Head {
        response,
        decoder,
        keep_alive,
        interim,
    }))
}

/// How the body is delimited (RFC 9112 §6.3), and whether the
/// connection may be reused after it: HTTP/1.1 keeps it unless
/// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`, and
/// a body delimited by the close never does.
fn framing(
    fields: &FramingFields,
    status: StatusCode,
    version: Version,
    method: &Method,
) -> Result<(Decoder, bool), H1Error> {
    let keeps = !fields.close && (version == Version::HTTP_11 || fields.keep_alive);
    let decoder = match status.as_u16() {
        101 => return Ok((Decoder::empty(), false)),
        100..=199 | 204 | 304 => Decoder::empty(),
        _ if method == Method::HEAD => Decoder::empty(),
        _ if fields.transfer_encoding => {
            if version == Version::HTTP_10 {
                return Err(H1Error::Framing("Transfer-Encoding on HTTP/1.0"));
            }
            if !fields.chunked_last {
                return Ok((Decoder::until_close(), false));
            }
            Decoder::chunked()
        }
        _ => match fields.length {
            Length::Is(n) => Decoder::length(n),
            Length::Invalid => {
                return Err(H1Error::Framing("invalid or conflicting Content-Length"))
            }
            Length::Absent => return Ok((Decoder::until_close(), false)),
        },
    };
    Ok((decoder, keeps))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 4096,
        max_headers: 10,
    };

    fn head(wire: &[u8], method: &Method) -> Result<Option<Head>, H1Error> {
        parse(&mut BytesMut::from(wire), method, LIMITS, &mut Spans::new())
    }

    #[test]
    fn a_head_is_parsed_and_taken_out_of_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 Fine\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\nabc"[..],
        );
        let h = parse(&mut buf, &Method::GET, LIMITS, &mut Spans::new())
            .expect("ok")
            .expect("complete");
        assert_eq!(&buf[..], b"abc");
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.decoder.remaining(), Some(3));
        assert!(h.keep_alive && !h.interim);
        let all: Vec<_> = h.response.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        let phrase = h.response.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(phrase.map(|p| p.as_bytes()), Some(&b"Fine"[..]));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let get = &Method::GET;
        let framed = |wire: &[u8], m: &Method| head(wire, m).expect("ok").expect("complete");
        let h = framed(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            get,
        );
        assert_eq!(h.decoder, Decoder::chunked());
        let h = framed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", get);
        assert_eq!(h.decoder, Decoder::until_close());
        assert!(!h.keep_alive);
        let h = framed(b"HTTP/1.1 200 OK\r\n\r\n", get);
        assert_eq!(h.decoder, Decoder::until_close());
        let h = framed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            &Method::HEAD,
        );
        assert!(h.decoder.is_done() && h.keep_alive);
        let h = framed(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            get,
        );
        assert!(h.decoder.is_done());
        let h = framed(b"HTTP/1.1 100 Continue\r\n\r\n", get);
        assert!(h.interim);
        let h = framed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\nConnection: close\r\n\r\n",
            get,
        );
        assert_eq!(h.decoder.remaining(), Some(4));
        assert!(!h.keep_alive);
        let h = framed(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n", get);
        assert!(!h.keep_alive);
        let h = framed(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 4\r\n\r\n",
            get,
        );
        assert!(h.keep_alive);
    }

    #[test]
    fn bad_heads_are_errors_and_partial_ones_wait() {
        assert!(matches!(
            head(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET),
            Ok(None)
        ));
        for (wire, what) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"[..],
                "conflicting",
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", "negative"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4x\r\n\r\n",
                "not a number",
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked on 1.0",
            ),
            (b"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n", "obs-fold"),
            (b"SPDY/3 200 OK\r\n\r\n", "not HTTP/1"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "status"),
        ] {
            assert!(head(wire, &Method::GET).is_err(), "{what} accepted");
        }
        let many: Vec<u8> = [
            &b"HTTP/1.1 200 OK\r\n"[..],
            &b"A: b\r\n".repeat(11),
            b"\r\n",
        ]
        .concat();
        assert!(matches!(
            head(&many, &Method::GET),
            Err(H1Error::TooManyHeaders(10))
        ));
        let big: Vec<u8> = [&b"HTTP/1.1 200 OK\r\nA: "[..], &[b'x'; 5000]].concat();
        assert!(matches!(
            head(&big, &Method::GET),
            Err(H1Error::HeadTooLarge(4096))
        ));
    }
}
