//! The response head as it goes to the client, and how its body is framed:
//! the rules hyper's server applied (so clients see what they saw before
//! lacquer had its own server side), written for lacquer's responses.
//!
//! - A `Content-Length` field the response carries frames its body; else
//!   a body of known size gets one, a body of unknown size is chunked on
//!   HTTP/1.1 and delimited by the close on HTTP/1.0.
//! - No body for HEAD, `1xx`, `204`, `304`; a HEAD keeps the
//!   `Content-Length` it was given (the size a GET would have).
//! - `Connection: close` when the connection will close after this
//!   response on HTTP/1.1; `Connection: keep-alive` when an HTTP/1.0
//!   client asked to keep it; the status line says HTTP/1.0 to HTTP/1.0
//!   clients.
//! - `Date` when the response has none.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{Method, StatusCode, Version};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use super::framing::{connection_tokens, last_coding_is_chunked};
use super::length_value;

/// What the request said that the response's head depends on.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The request's version.
    pub version: Version,
    /// The connection may carry another request after this one (the
    /// client's wish, shutdown not begun).
    pub keep_alive: bool,
}

/// The size of a response's body as the body itself tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// No body (already at its end).
    Empty,
    /// Exactly this many bytes.
    Known(u64),
    /// Not known until it ends.
    Unknown,
}

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body is sent (whatever the response holds).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked coding.
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// What [`encode_head`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The body's framing.
    pub framing: Framing,
    /// The connection closes after this response.
    pub close: bool,
}

/// Why a response could not be written (lacquer's own mistake, answered
/// with a 500 instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("response with an invalid Content-Length")]
pub struct BadLength;

/// Whether [`encode_head`] reads a field of `name` among a response's own
/// to decide the framing, the connection or the `Date`: the fields its
/// `first` writes must not be one of these.
pub fn read_by_encoder(name: &http::HeaderName) -> bool {
    name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION || name == DATE
}

/// Writes `resp`'s status line and fields into `out` (appended) and
/// decides the body's framing. `first` writes fields that go before the
/// response's own (a stored object's, see [`super::ResponseBody`]) and
/// says whether a `Date` was among them; they must not include framing
/// fields (`Content-Length`, `Transfer-Encoding`, `Connection`:
/// [`read_by_encoder`]).
pub fn encode_head(
    resp: &http::response::Parts,
    size: BodySize,
    asked: Asked<'_>,
    out: &mut Vec<u8>,
    first: impl FnOnce(&mut Vec<u8>) -> bool,
) -> Result<Encoded, BadLength> {
    let start = out.len();
    let status = resp.status;
    let http10 = asked.version == Version::HTTP_10;
    let head = asked.method == Method::HEAD;
    let can_length = !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    let can_body = can_length && !head;
    status_line(resp, http10, out);
    let mut date_said = first(out);
    let mut framing = None;
    let mut close = !asked.keep_alive;
    let mut keep_alive_said = false;
    let mut close_said = false;
    for (name, value) in &resp.headers {
        if name == CONTENT_LENGTH {
            if head {
                framing.get_or_insert(Framing::None);
            } else if size == BodySize::Empty || framing.is_some() || !can_length {
                // An empty body is sent as empty whatever the field says.
                continue;
            } else {
                let n = match size {
                    BodySize::Known(n) => n,
                    _ => match length_value(value) {
                        Some(n) => n,
                        None => {
                            out.truncate(start);
                            return Err(BadLength);
                        }
                    },
                };
                framing = Some(Framing::Length(n));
            }
        } else if name == TRANSFER_ENCODING {
            if http10 || !can_body || framing.is_some() {
                continue;
            }
            framing = Some(Framing::Chunked);
            field(out, name.as_str(), value.as_bytes());
            if !last_coding_is_chunked(value) {
                out.truncate(out.len() - 2);
                out.extend_from_slice(b", chunked\r\n");
            }
            continue;
        } else if name == CONNECTION {
            let (c, k) = connection_tokens(value);
            close_said |= c;
            keep_alive_said |= k;
        } else if name == DATE {
            date_said = true;
        }
        field(out, name.as_str(), value.as_bytes());
    }
    let framing = match framing {
        Some(f) => f,
        None => match size {
            BodySize::Unknown if !can_body => Framing::None,
            BodySize::Unknown if http10 => {
                close = true;
                Framing::UntilClose
            }
            BodySize::Unknown => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodySize::Empty | BodySize::Known(0) => {
                if can_length && !head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            BodySize::Known(n) => {
                if can_length {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    let framing = if can_body { framing } else { Framing::None };
    if framing == Framing::UntilClose {
        close = true;
    }
    close |= close_said;
    if http10 {
        if !close && !keep_alive_said {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    } else if close && !close_said {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !date_said {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Encoded { framing, close })
}

fn status_line(resp: &http::response::Parts, http10: bool, out: &mut Vec<u8>) {
    let reason = resp.extensions.get::<hyper::ext::ReasonPhrase>();
    if !http10 && resp.status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(resp.status.as_str().as_bytes());
    out.push(b' ');
    match reason {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        // A reason must be written: many parsers expect one.
        None => out.extend_from_slice(
            resp.status
                .canonical_reason()
                .unwrap_or("<none>")
                .as_bytes(),
        ),
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the field line `name: value`.
pub fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the current time as an HTTP date, formatted once a second per
/// thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                c.1.copy_from_slice(text.as_bytes());
                c.0 = secs;
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&c.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The head written for `resp` with `size` to a request of `method`
    /// and `version`, with the `date` field's value left out.
    fn head_of(
        resp: http::Response<()>,
        size: BodySize,
        method: &Method,
        version: Version,
        keep_alive: bool,
    ) -> (String, Encoded) {
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        let asked = Asked {
            method,
            version,
            keep_alive,
        };
        let e = encode_head(&parts, size, asked, &mut out, |_| false).expect("encodes");
        let text = String::from_utf8(out).expect("ASCII");
        let text = text
            .lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("|");
        (text, e)
    }

    fn resp(status: u16, fields: &[(&'static str, &'static str)]) -> http::Response<()> {
        let mut r = http::Response::new(());
        *r.status_mut() = StatusCode::from_u16(status).expect("status");
        for (n, v) in fields {
            r.headers_mut().append(*n, HeaderValue::from_static(v));
        }
        r
    }

    const GET: &Method = &Method::GET;
    const V11: Version = Version::HTTP_11;

    #[test]
    fn bodies_are_framed_by_their_field_their_size_or_chunks() {
        let (t, e) = head_of(
            resp(200, &[("x-a", "1")]),
            BodySize::Known(5),
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|x-a: 1|content-length: 5|");
        assert_eq!(
            e,
            Encoded {
                framing: Framing::Length(5),
                close: false
            }
        );
        let (t, e) = head_of(
            resp(200, &[("content-length", "7")]),
            BodySize::Unknown,
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 7|");
        assert_eq!(e.framing, Framing::Length(7));
        let (t, e) = head_of(resp(200, &[]), BodySize::Unknown, GET, V11, true);
        assert_eq!(t, "HTTP/1.1 200 OK|transfer-encoding: chunked|");
        assert_eq!(e.framing, Framing::Chunked);
        let (t, e) = head_of(
            resp(200, &[("transfer-encoding", "gzip")]),
            BodySize::Unknown,
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|transfer-encoding: gzip, chunked|");
        assert_eq!(e.framing, Framing::Chunked);
        let (t, e) = head_of(
            resp(200, &[("content-length", "9")]),
            BodySize::Empty,
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 0|");
        assert_eq!(e.framing, Framing::Length(0));
        let bad = resp(200, &[("content-length", "nine")]);
        let (parts, ()) = bad.into_parts();
        let asked = Asked {
            method: GET,
            version: V11,
            keep_alive: true,
        };
        let mut out = b"kept".to_vec();
        assert_eq!(
            encode_head(&parts, BodySize::Unknown, asked, &mut out, |_| false),
            Err(BadLength)
        );
        assert_eq!(out, b"kept");
    }

    #[test]
    fn head_204_304_and_1xx_send_no_body() {
        let head = &Method::HEAD;
        let (t, e) = head_of(
            resp(200, &[("content-length", "42")]),
            BodySize::Empty,
            head,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 42|");
        assert_eq!(e.framing, Framing::None);
        let (t, e) = head_of(resp(200, &[]), BodySize::Known(42), head, V11, true);
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 42|");
        assert_eq!(e.framing, Framing::None);
        let (t, _) = head_of(resp(200, &[]), BodySize::Empty, head, V11, true);
        assert_eq!(t, "HTTP/1.1 200 OK|");
        let (t, e) = head_of(
            resp(304, &[("content-length", "42"), ("etag", "\"a\"")]),
            BodySize::Empty,
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 304 Not Modified|etag: \"a\"|");
        assert_eq!(e.framing, Framing::None);
        let (t, e) = head_of(resp(204, &[]), BodySize::Unknown, GET, V11, true);
        assert_eq!(t, "HTTP/1.1 204 No Content|");
        assert_eq!(
            e,
            Encoded {
                framing: Framing::None,
                close: false
            }
        );
        let (t, e) = head_of(
            resp(101, &[("upgrade", "websocket"), ("connection", "upgrade")]),
            BodySize::Empty,
            GET,
            V11,
            true,
        );
        assert_eq!(
            t,
            "HTTP/1.1 101 Switching Protocols|upgrade: websocket|connection: upgrade|"
        );
        assert_eq!(e.framing, Framing::None);
    }

    #[test]
    fn connection_fields_say_what_the_connection_does() {
        let (t, e) = head_of(resp(200, &[]), BodySize::Known(1), GET, V11, false);
        assert_eq!(t, "HTTP/1.1 200 OK|content-length: 1|connection: close|");
        assert!(e.close);
        let (t, e) = head_of(
            resp(200, &[("connection", "close")]),
            BodySize::Known(1),
            GET,
            V11,
            true,
        );
        assert_eq!(t, "HTTP/1.1 200 OK|connection: close|content-length: 1|");
        assert!(e.close);
        let v10 = Version::HTTP_10;
        let (t, e) = head_of(resp(404, &[]), BodySize::Known(1), GET, v10, true);
        assert_eq!(
            t,
            "HTTP/1.0 404 Not Found|content-length: 1|connection: keep-alive|"
        );
        assert!(!e.close);
        let (t, e) = head_of(resp(200, &[]), BodySize::Unknown, GET, v10, true);
        assert_eq!(t, "HTTP/1.0 200 OK|");
        assert_eq!(
            e,
            Encoded {
                framing: Framing::UntilClose,
                close: true
            }
        );
        let (t, e) = head_of(resp(200, &[]), BodySize::Known(1), GET, v10, false);
        assert_eq!(t, "HTTP/1.0 200 OK|content-length: 1|");
        assert!(e.close);
    }

    #[test]
    fn a_reason_phrase_given_is_written_and_a_date_added_once() {
        let mut r = resp(200, &[]);
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Fine"));
        let (t, _) = head_of(r, BodySize::Empty, GET, V11, true);
        assert_eq!(t, "HTTP/1.1 200 Fine|content-length: 0|");
        let (parts, ()) = resp(599, &[]).into_parts();
        let mut out = Vec::new();
        let asked = Asked {
            method: GET,
            version: V11,
            keep_alive: true,
        };
        encode_head(&parts, BodySize::Empty, asked, &mut out, |_| false).expect("encodes");
        let text = String::from_utf8(out).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 599 <none>\r\n"), "{text}");
        let date = text
            .lines()
            .find_map(|l| l.strip_prefix("date: "))
            .expect("a date");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        let (parts, ()) = resp(200, &[("date", "Sun, 06 Nov 1994 08:49:37 GMT")]).into_parts();
        let mut out = Vec::new();
        encode_head(&parts, BodySize::Empty, asked, &mut out, |_| false).expect("encodes");
        assert_eq!(
            String::from_utf8(out)
                .expect("ASCII")
                .matches("date: ")
                .count(),
            1
        );
    }
}
