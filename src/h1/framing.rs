//! The framing fields of an HTTP/1 head (RFC 9112 §6 and §9.3), noted as
//! its fields are read (no lookup in a map afterwards): shared by client
//! request heads (`head.rs`), backend response heads
//! (`fetch::h1::response`) and the response encoder (`encode.rs`).

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue};

use super::length_value;

/// What a head's framing fields said.
#[derive(Debug, Default)]
pub struct FramingFields {
    /// A `Transfer-Encoding` was present.
    pub transfer_encoding: bool,
    /// The last transfer coding named is `chunked`.
    pub chunked_last: bool,
    /// `Content-Length`: absent, one agreed length, or unusable.
    pub length: Length,
    /// `Connection: close` seen.
    pub close: bool,
    /// `Connection: keep-alive` seen.
    pub keep_alive: bool,
}

/// A head's `Content-Length`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// No `Content-Length`.
    #[default]
    Absent,
    /// One length, however many fields said it.
    Is(u64),
    /// A value that is not a length, or lengths that disagree.
    Invalid,
}

impl FramingFields {
    /// Notes `name: value` when it is a framing field; whether it was.
    pub fn note(&mut self, name: &HeaderName, value: &HeaderValue) -> bool {
        if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            self.chunked_last = last_coding_is_chunked(value);
        } else if name == CONTENT_LENGTH {
            self.length = match (self.length, length_value(value)) {
                (Length::Absent, Some(n)) => Length::Is(n),
                (Length::Is(m), Some(n)) if m == n => Length::Is(n),
                _ => Length::Invalid,
            };
        } else if name == CONNECTION {
            let (close, keep_alive) = connection_tokens(value);
            self.close |= close;
            self.keep_alive |= keep_alive;
        } else {
            return false;
        }
        true
    }
}

/// Whether a `Transfer-Encoding` value's last coding is `chunked`.
pub fn last_coding_is_chunked(value: &HeaderValue) -> bool {
    value
        .to_str()
        .ok()
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
}

/// Whether a `Connection` value names `close`, and `keep-alive`.
pub fn connection_tokens(value: &HeaderValue) -> (bool, bool) {
    let mut found = (false, false);
    for token in value.to_str().unwrap_or("").split(',').map(str::trim) {
        found.0 |= token.eq_ignore_ascii_case("close");
        found.1 |= token.eq_ignore_ascii_case("keep-alive");
    }
    found
}
