//! Field-value syntax shared by the cache and the conditional-request code:
//! optional whitespace, comma-separated lists, HTTP-dates and
//! delta-seconds (RFC 9110 §5.6, RFC 9111 §1.2.2). Headers are untrusted:
//! nothing here panics on malformed bytes.

use std::time::{Duration, SystemTime};

use ::http::header::{HeaderMap, HeaderName};

/// The largest delta-seconds value this cache represents (RFC 9111 §1.2.2):
/// bigger values, and values that overflow, are taken as 2^31 seconds.
pub const MAX_DELTA_SECONDS: u64 = 2_147_483_648;

/// The first line of a date-valued header, if it is a valid HTTP-date.
pub(crate) fn first_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| parse_http_date(v.as_bytes()))
}

/// Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime), trimming OWS.
pub(crate) fn parse_http_date(bytes: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(trim_ows(bytes)).ok()?;
    httpdate::parse_http_date(s).ok()
}

/// `delta-seconds = 1*DIGIT`, clamped to [`MAX_DELTA_SECONDS`].
pub(crate) fn parse_delta_seconds(bytes: &[u8]) -> Option<Duration> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut secs: u64 = 0;
    for b in bytes {
        secs = secs
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(MAX_DELTA_SECONDS);
    }
    Some(Duration::from_secs(secs))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strip leading and trailing spaces and tabs.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Split a comma-separated list at commas outside quoted strings (a
/// backslash inside a quoted string escapes the next byte).
pub(crate) fn split_list(s: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b',' {
            items.push(&s[start..i]);
            start = i + 1;
        }
    }
    items.push(&s[start..]);
    items
}
