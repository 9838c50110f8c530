//! Range requests answered from the cache (RFC 9110 §14).
//!
//! Parses a `Range` field (`bytes` only), resolves it against a body's
//! length, applies lacquer's limits (`server.max_ranges`, no overlapping
//! ranges), evaluates `If-Range` (§13.1.5), and frames `multipart/byteranges`
//! bodies (§14.6). Pure functions on untrusted values: anything lacquer
//! cannot read makes it ignore the `Range` field and send the whole 200.

use crate::http::req_fields::FieldsRead;
use ::http::header::{self, HeaderValue};
use bytes::Bytes;
use std::collections::VecDeque;

use super::syntax::{parse_http_date, trim_ows};

/// One `range-spec` as written by the client (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `first-last` (inclusive) or `first-` (to the end: `last` is `None`).
    From {
        /// First byte position.
        first: u64,
        /// Last byte position, when given.
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A satisfiable range resolved against a length: bytes `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a resolved range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value of this range of a body of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// What to answer to a request's `Range` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Send the whole 200: no `Range`, or one that is invalid, in a unit
    /// other than bytes, on several lines, over the limits, or covering a
    /// zero-length body with a suffix.
    Whole,
    /// 416 with `Content-Range: bytes */len`: no range is satisfiable.
    Unsatisfiable,
    /// 206: these ranges, in the order the client asked (one or more).
    Partial(Vec<ByteRange>),
}

/// Parses a `Range` value: `bytes=` (unit case-insensitive) and a list of
/// range-specs separated by commas with optional whitespace around them
/// (empty list elements are skipped, RFC 9110 §5.6.1). `None` when it is
/// not valid: another unit, a spec with letters or inner spaces, `b-a`
/// with `b < a`, no spec at all — or more than `max` specs (so a huge
/// field costs no more than `max` entries).
pub fn parse(value: &[u8], max: usize) -> Option<Vec<Spec>> {
    let value = trim_ows(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for element in value[eq + 1..].split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        if specs.len() == max {
            return None;
        }
        specs.push(parse_spec(element)?);
    }
    if specs.is_empty() {
        return None;
    }
    Some(specs)
}

fn parse_spec(s: &[u8]) -> Option<Spec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(digits(last)?)
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

/// `1*DIGIT`; a number too large for u64 saturates (a first position that
/// large is simply unsatisfiable, a last position is clamped anyway).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Resolves specs against a body of `len` bytes: unsatisfiable specs are
/// dropped (§14.1.1); none left is [`Answer::Unsatisfiable`]. Ranges that
/// overlap are refused with [`Answer::Whole`] (§14.2 lets a server ignore
/// such a field: they only serve to make it send bytes twice). A zero-length
/// body has no satisfiable int-range; a suffix of it is the whole (empty)
/// body.
pub fn resolve(specs: &[Spec], len: u64) -> Answer {
    let mut out: Vec<ByteRange> = Vec::with_capacity(specs.len());
    for spec in specs {
        let r = match *spec {
            Spec::From { first, .. } if first >= len => continue,
            Spec::From { first, last } => ByteRange {
                first,
                last: last.map_or(len - 1, |l| l.min(len - 1)),
            },
            Spec::Suffix(0) => continue,
            Spec::Suffix(_) if len == 0 => return Answer::Whole,
            Spec::Suffix(n) => ByteRange {
                first: len.saturating_sub(n),
                last: len - 1,
            },
        };
        if out.iter().any(|o| o.first <= r.last && r.first <= o.last) {
            return Answer::Whole;
        }
        out.push(r);
    }
    if out.is_empty() {
        Answer::Unsatisfiable
    } else {
        Answer::Partial(out)
    }
}

/// The answer to `req_headers`' `Range` for a body of `len` bytes, with at
/// most `max_ranges` ranges (0: ranges are not served). One `Range` line
/// only; `If-Range` must hold (see [`if_range_holds`]).
pub fn answer(
    req_headers: &impl FieldsRead,
    len: u64,
    max_ranges: usize,
    validators: Validators<'_>,
) -> Answer {
    if max_ranges == 0 {
        return Answer::Whole;
    }
    let mut lines = req_headers.get_all(header::RANGE);
    let (Some(range), None) = (lines.next(), lines.next()) else {
        return Answer::Whole;
    };
    if !if_range_holds(req_headers, validators) {
        return Answer::Whole;
    }
    match parse(range.as_bytes(), max_ranges) {
        Some(specs) => resolve(&specs, len),
        None => Answer::Whole,
    }
}

/// The stored response's validators, as `If-Range` compares them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    /// `ETag`.
    pub etag: Option<&'a HeaderValue>,
    /// `Last-Modified`.
    pub last_modified: Option<&'a HeaderValue>,
    /// `Date`.
    pub date: Option<&'a HeaderValue>,
}

/// True when there is no `If-Range`, or when it holds (RFC 9110 §13.1.5):
/// an entity-tag that is strong and equal (strong comparison) to a strong
/// `ETag`, or an HTTP-date equal to `Last-Modified` when that date is
/// strong — the response's `Date` at least one second later. Anything else
/// (a weak tag, a date that is not exactly `Last-Modified`, several lines,
/// an unreadable value) does not hold: the whole 200 is sent.
pub fn if_range_holds(req_headers: &impl FieldsRead, v: Validators<'_>) -> bool {
    let mut lines = req_headers.get_all(header::IF_RANGE);
    let Some(cond) = lines.next() else {
        return true;
    };
    if lines.next().is_some() {
        return false;
    }
    let cond = trim_ows(cond.as_bytes());
    if cond.starts_with(b"\"") || cond.starts_with(b"W/") {
        return v
            .etag
            .is_some_and(|etag| super::conditional::strong_eq(cond, etag.as_bytes()));
    }
    let Some(asked) = parse_http_date(cond) else {
        return false;
    };
    let Some(lm) = v.last_modified.and_then(|h| parse_http_date(h.as_bytes())) else {
        return false;
    };
    let Some(date) = v.date.and_then(|h| parse_http_date(h.as_bytes())) else {
        return false;
    };
    let strong = date
        .duration_since(lm)
        .is_ok_and(|d| d >= std::time::Duration::from_secs(1));
    strong && asked == lm
}

/// A `multipart/byteranges` body (RFC 9110 §14.6) of `ranges` of `body`:
/// each part opens with the boundary delimiter, its `Content-Type` (when
/// the representation has one) and `Content-Range`, a blank line, then the
/// bytes (slices of `body`, not copies); the close delimiter ends it. Lines
/// end in CRLF. Returns the pieces in order and their total length.
pub fn multipart(
    body: &Bytes,
    ranges: &[ByteRange],
    content_type: Option<&HeaderValue>,
    boundary: &str,
) -> (VecDeque<Bytes>, u64) {
    let total = body.len() as u64;
    let mut parts = VecDeque::with_capacity(ranges.len() * 2 + 1);
    let mut len = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let mut head = Vec::with_capacity(boundary.len() + 96);
        if i > 0 {
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"--");
        head.extend_from_slice(boundary.as_bytes());
        head.extend_from_slice(b"\r\n");
        if let Some(ct) = content_type {
            head.extend_from_slice(b"Content-Type: ");
            head.extend_from_slice(ct.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"Content-Range: ");
        head.extend_from_slice(r.content_range(total).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
        len += head.len() as u64 + r.len();
        parts.push_back(Bytes::from(head));
        parts.push_back(body.slice(r.first as usize..=r.last as usize));
    }
    let close = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    len += close.len() as u64;
    parts.push_back(close);
    (parts, len)
}

/// A boundary for one multipart response: 32 hex digits from a per-process
/// random key (std's `RandomState`), the time and a counter. It is not
/// checked against the body; with 128 such bits a collision is not a
/// practical concern.
pub fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let word = |salt: u64| {
        let mut h = key.build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u64(nanos);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::header::HeaderMap;

    fn p(s: &str) -> Option<Vec<Spec>> {
        parse(s.as_bytes(), 16)
    }

    fn from(first: u64, last: Option<u64>) -> Spec {
        Spec::From { first, last }
    }

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn resolved(s: &str, len: u64) -> Answer {
        match p(s) {
            Some(specs) => resolve(&specs, len),
            None => Answer::Whole,
        }
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(p("bytes=0-499"), Some(vec![from(0, Some(499))]));
        assert_eq!(p("bytes=500-"), Some(vec![from(500, None)]));
        assert_eq!(p("bytes=-500"), Some(vec![Spec::Suffix(500)]));
        assert_eq!(p("BYTES=1-1"), Some(vec![from(1, Some(1))]));
        assert_eq!(
            p("bytes=0-0, -1,5-"),
            Some(vec![from(0, Some(0)), Spec::Suffix(1), from(5, None)])
        );
    }

    #[test]
    fn whitespace_and_empty_elements() {
        assert_eq!(
            p("  bytes=1-2 ,\t3-4 , ,"),
            Some(vec![from(1, Some(2)), from(3, Some(4))])
        );
        assert_eq!(p("bytes= 1-2"), Some(vec![from(1, Some(2))]));
        // Whitespace inside a range-spec, or around the unit, is invalid.
        assert_eq!(p("bytes=1 -2"), None);
        assert_eq!(p("bytes=1- 2"), None);
        assert_eq!(p("bytes =1-2"), None);
    }

    #[test]
    fn invalid_fields() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=5-4",
            "bytes=+1-2",
            "bytes=1",
            "bytes=0x1-2",
            "items=0-1",
            "bytes=--1",
            "bytes=1-2;x",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn too_many_specs_is_invalid() {
        let many = format!("bytes={}", vec!["0-0"; 17].join(","));
        assert_eq!(p(&many), None);
        let ok = format!("bytes={}", vec!["0-0"; 16].join(","));
        assert_eq!(p(&ok).map(|v| v.len()), Some(16));
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(
            p("bytes=0-99999999999999999999999"),
            Some(vec![from(0, Some(u64::MAX))])
        );
        assert_eq!(
            resolved("bytes=0-99999999999999999999999", 10),
            Answer::Partial(vec![r(0, 9)])
        );
        assert_eq!(
            resolved("bytes=99999999999999999999999-", 10),
            Answer::Unsatisfiable
        );
        assert_eq!(
            resolved("bytes=-99999999999999999999999", 10),
            Answer::Partial(vec![r(0, 9)])
        );
    }

    #[test]
    fn resolution_against_a_length() {
        assert_eq!(resolved("bytes=0-4", 10), Answer::Partial(vec![r(0, 4)]));
        assert_eq!(resolved("bytes=5-", 10), Answer::Partial(vec![r(5, 9)]));
        assert_eq!(resolved("bytes=-3", 10), Answer::Partial(vec![r(7, 9)]));
        assert_eq!(resolved("bytes=-30", 10), Answer::Partial(vec![r(0, 9)]));
        assert_eq!(resolved("bytes=8-20", 10), Answer::Partial(vec![r(8, 9)]));
        assert_eq!(resolved("bytes=9-9", 10), Answer::Partial(vec![r(9, 9)]));
        assert_eq!(resolved("bytes=10-", 10), Answer::Unsatisfiable);
        assert_eq!(resolved("bytes=-0", 10), Answer::Unsatisfiable);
        // Unsatisfiable specs are dropped when another one is satisfiable.
        assert_eq!(
            resolved("bytes=20-30,0-0", 10),
            Answer::Partial(vec![r(0, 0)])
        );
        // Order kept.
        assert_eq!(
            resolved("bytes=8-9,0-1", 10),
            Answer::Partial(vec![r(8, 9), r(0, 1)])
        );
    }

    #[test]
    fn zero_length_bodies() {
        assert_eq!(resolved("bytes=0-", 0), Answer::Unsatisfiable);
        assert_eq!(resolved("bytes=0-0", 0), Answer::Unsatisfiable);
        assert_eq!(resolved("bytes=-5", 0), Answer::Whole);
        assert_eq!(resolved("bytes=-0", 0), Answer::Unsatisfiable);
    }

    #[test]
    fn overlapping_ranges_get_the_whole_body() {
        assert_eq!(resolved("bytes=0-5,5-9", 10), Answer::Whole);
        assert_eq!(resolved("bytes=0-5,-5", 10), Answer::Whole);
        assert_eq!(resolved("bytes=0-,0-", 10), Answer::Whole);
        // Adjacent is not overlapping.
        assert_eq!(
            resolved("bytes=0-4,5-9", 10),
            Answer::Partial(vec![r(0, 4), r(5, 9)])
        );
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                ::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    #[test]
    fn answer_reads_one_range_line_and_the_limit() {
        let v = Validators::default();
        let h = headers(&[("range", "bytes=0-1")]);
        assert_eq!(answer(&h, 10, 16, v), Answer::Partial(vec![r(0, 1)]));
        assert_eq!(answer(&h, 10, 0, v), Answer::Whole);
        let two = headers(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
        assert_eq!(answer(&two, 10, 16, v), Answer::Whole);
        let three = headers(&[("range", "bytes=0-1,3-4,6-7")]);
        assert_eq!(answer(&three, 10, 2, v), Answer::Whole);
        assert_eq!(answer(&HeaderMap::new(), 10, 16, v), Answer::Whole);
    }

    #[test]
    fn if_range_with_entity_tags_is_strong() {
        let strong = HeaderValue::from_static("\"v1\"");
        let weak = HeaderValue::from_static("W/\"v1\"");
        let with = |etag| Validators {
            etag: Some(etag),
            ..Validators::default()
        };
        let ask = |v: &str| headers(&[("if-range", v)]);
        assert!(if_range_holds(&HeaderMap::new(), with(&strong)));
        assert!(if_range_holds(&ask("\"v1\""), with(&strong)));
        assert!(if_range_holds(&ask(" \"v1\" "), with(&strong)));
        assert!(!if_range_holds(&ask("\"v2\""), with(&strong)));
        assert!(!if_range_holds(&ask("W/\"v1\""), with(&strong)));
        assert!(!if_range_holds(&ask("\"v1\""), with(&weak)));
        assert!(!if_range_holds(&ask("\"v1\""), Validators::default()));
        assert!(!if_range_holds(&ask("\"v1"), with(&strong)));
        let twice = headers(&[("if-range", "\"v1\""), ("if-range", "\"v1\"")]);
        assert!(!if_range_holds(&twice, with(&strong)));
    }

    #[test]
    fn if_range_with_a_date_needs_a_strong_last_modified() {
        let lm = HeaderValue::from_static(LM);
        let later = HeaderValue::from_static(LATER);
        let same = HeaderValue::from_static(LM);
        let ask = headers(&[("if-range", LM)]);
        let v = |date| Validators {
            etag: None,
            last_modified: Some(&lm),
            date,
        };
        assert!(if_range_holds(&ask, v(Some(&later))));
        // Date == Last-Modified: weak, not usable.
        assert!(!if_range_holds(&ask, v(Some(&same))));
        assert!(!if_range_holds(&ask, v(None)));
        // Another date does not match.
        assert!(!if_range_holds(
            &headers(&[("if-range", LATER)]),
            v(Some(&later))
        ));
        assert!(!if_range_holds(
            &headers(&[("if-range", "yesterday")]),
            v(Some(&later))
        ));
    }

    #[test]
    fn multipart_framing_is_byte_exact() {
        let body = Bytes::from_static(b"0123456789");
        let ct = HeaderValue::from_static("text/plain");
        let (parts, len) = multipart(&body, &[r(0, 1), r(8, 9)], Some(&ct), "XB");
        let all: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        let want = b"--XB\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
\r\n--XB\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
\r\n--XB--\r\n";
        assert_eq!(String::from_utf8_lossy(&all), String::from_utf8_lossy(want));
        assert_eq!(len, want.len() as u64);
        let (parts, _) = multipart(&body, &[r(2, 2), r(4, 4)], None, "B");
        let all: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(
            &all[..],
            b"--B\r\nContent-Range: bytes 2-2/10\r\n\r\n2\r\n--B\r\nContent-Range: bytes 4-4/10\r\n\r\n4\r\n--B--\r\n"
        );
    }

    #[test]
    fn boundaries_differ() {
        let (a, b) = (boundary(), boundary());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
