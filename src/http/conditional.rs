//! Conditional requests answered from the cache (RFC 9110 §13).
//!
//! Given a client's GET/HEAD request and the validators of a stored
//! response, decide whether a 304 (Not Modified) can be sent, and trim the
//! stored headers down to what a 304 carries. Pure functions; header values
//! are untrusted and malformed ones never produce a 304 by accident.

use crate::http::req_fields::FieldsRead;
use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::syntax::{parse_http_date, trim_ows};

/// The client's conditional and range fields: dropped from requests lacquer
/// makes for the cache (the whole body is stored) and from ESI fragment
/// requests.
pub const CONDITIONAL_AND_RANGE: [HeaderName; 6] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// Whether the request is conditional on what a stored response holds
/// (`If-None-Match` or `If-Modified-Since`): when it is not, there is no
/// need to look its validators up.
pub fn is_conditional(req_headers: &impl FieldsRead) -> bool {
    req_headers.contains_key(header::IF_NONE_MATCH)
        || req_headers.contains_key(header::IF_MODIFIED_SINCE)
}

/// True when a GET/HEAD request with `req_headers` should get a 304 for a
/// stored response whose `ETag`, `Last-Modified` and `Date` values are given.
///
/// Follows the precondition order of RFC 9110 §13.2.2:
///
/// * `If-None-Match`, when present (on any number of lines), decides alone:
///   `*` matches any stored response; otherwise a list of entity-tags is
///   compared to `etag` with the weak comparison. Malformed list members
///   never match; a `*` mixed with entity-tags is malformed.
/// * Otherwise `If-Modified-Since` is used, unless it is not a single valid
///   HTTP-date. It is compared with `last_modified`, or, when that is
///   missing or invalid, with the stored `date`; with neither there is no
///   304. The answer is 304 when that time is not later than the
///   `If-Modified-Since` date.
pub fn is_not_modified(
    req_headers: &impl FieldsRead,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
    date: Option<&HeaderValue>,
) -> bool {
    if req_headers.contains_key(header::IF_NONE_MATCH) {
        return if_none_match_matches(req_headers, etag);
    }
    let mut ims_lines = req_headers.get_all(header::IF_MODIFIED_SINCE);
    let (Some(ims), None) = (ims_lines.next(), ims_lines.next()) else {
        return false;
    };
    let Some(ims) = parse_http_date(ims.as_bytes()) else {
        return false;
    };
    let reference = last_modified
        .and_then(|v| parse_http_date(v.as_bytes()))
        .or_else(|| date.and_then(|v| parse_http_date(v.as_bytes())));
    match reference {
        Some(t) => t <= ims,
        None => false,
    }
}

/// Weak comparison of two entity-tags (RFC 9110 §8.8.3.2): equal when their
/// opaque tags match, whether either is weak or not. False when either is
/// not a well-formed entity-tag (`[W/]"opaque"`, surrounding spaces and tabs
/// allowed).
pub fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    match (parse_entity_tag(a), parse_entity_tag(b)) {
        (Some(a), Some(b)) => a.opaque == b.opaque,
        _ => false,
    }
}

/// Strong comparison of two entity-tags (RFC 9110 §8.8.3.2): equal when
/// neither is weak and their opaque tags match. False when either is not a
/// well-formed entity-tag.
pub fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    match (parse_entity_tag(a), parse_entity_tag(b)) {
        (Some(a), Some(b)) => !a.weak && !b.weak && a.opaque == b.opaque,
        _ => false,
    }
}

/// Strip a stored 200's headers down to those of a 304 built from it
/// (RFC 9110 §15.4.5).
///
/// A 304 keeps the fields a 200 would carry (`Cache-Control`,
/// `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`, `Last-Modified`
/// and other response fields) but should not carry representation metadata:
/// `Content-Type`, `Content-Encoding` and `Content-Language` are removed
/// (the client keeps its stored values; §15.4.5 says a sender SHOULD NOT
/// send them, and a client would otherwise apply them to its stored copy),
/// as are the framing fields `Content-Length`, `Transfer-Encoding` and
/// `Content-Range`, which describe a body the 304 does not have.
pub fn strip_for_304(headers: &mut HeaderMap) {
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::CONTENT_RANGE,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// Weaken an `ETag` value: `"x"` becomes `W/"x"`, a weak tag is returned
/// unchanged (minus surrounding whitespace). `None` when the value is not a
/// well-formed entity-tag.
pub fn weaken_etag(v: &HeaderValue) -> Option<HeaderValue> {
    let tag = parse_entity_tag(v.as_bytes())?;
    let trimmed = trim_ows(v.as_bytes());
    if tag.weak {
        return HeaderValue::from_bytes(trimmed).ok();
    }
    let mut weak = Vec::with_capacity(trimmed.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(trimmed);
    HeaderValue::from_bytes(&weak).ok()
}

/// A parsed entity-tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The opaque tag, without its quotes.
    opaque: &'a [u8],
}

/// `etagc = %x21 / %x23-7E / obs-text`
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Parse a whole value as one entity-tag, allowing surrounding OWS.
fn parse_entity_tag(s: &[u8]) -> Option<EntityTag<'_>> {
    let s = trim_ows(s);
    let (weak, rest) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let opaque = rest.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !opaque.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    Some(EntityTag { weak, opaque })
}

/// One member of an `If-None-Match` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    Star,
    Tag(EntityTag<'a>),
    Malformed,
}

/// Split one `If-None-Match` line into members. Entity-tags may contain
/// commas, so the split honours quotes; anything unexpected makes the
/// member malformed and parsing resumes after the next comma.
fn if_none_match_members(s: &[u8]) -> Vec<Member<'_>> {
    let mut members = Vec::new();
    let mut i = 0;
    let skip_ows = |mut i: usize| {
        while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        i
    };
    let skip_to_comma = |i: usize| match s[i..].iter().position(|&b| b == b',') {
        Some(p) => i + p,
        None => s.len(),
    };
    loop {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= s.len() {
            return members;
        }
        let start = i;
        let member = if s[i] == b'*' {
            i += 1;
            Some(Member::Star)
        } else {
            let open = if s[i..].starts_with(b"W/") { i + 2 } else { i };
            if s.get(open) == Some(&b'"') {
                match s[open + 1..].iter().position(|&b| b == b'"') {
                    Some(p) => {
                        i = open + 1 + p + 1;
                        Some(
                            parse_entity_tag(&s[start..i])
                                .map(Member::Tag)
                                .unwrap_or(Member::Malformed),
                        )
                    }
                    None => {
                        members.push(Member::Malformed);
                        return members;
                    }
                }
            } else {
                None
            }
        };
        i = skip_ows(i);
        match member {
            Some(m) if i >= s.len() || s[i] == b',' => members.push(m),
            _ => {
                members.push(Member::Malformed);
                i = skip_to_comma(i);
            }
        }
    }
}

/// Evaluate `If-None-Match` (present): true when the condition is false,
/// i.e. a 304 is due.
fn if_none_match_matches(req_headers: &impl FieldsRead, etag: Option<&HeaderValue>) -> bool {
    let members: Vec<Member<'_>> = req_headers
        .get_all(header::IF_NONE_MATCH)
        .flat_map(|v| if_none_match_members(v.as_bytes()))
        .collect();
    if members == [Member::Star] {
        return true;
    }
    let Some(stored) = etag.and_then(|v| parse_entity_tag(v.as_bytes())) else {
        return false;
    };
    members.iter().any(|m| match m {
        Member::Tag(t) => t.opaque == stored.opaque,
        Member::Star | Member::Malformed => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::header::HeaderName;
    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_700_000_000;

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), hv(value));
        }
        map
    }

    fn inm(value: &str, etag: Option<&str>) -> bool {
        let etag = etag.map(hv);
        is_not_modified(&req(&[("if-none-match", value)]), etag.as_ref(), None, None)
    }

    fn ims(value: &str, last_modified: Option<&str>, date: Option<&str>) -> bool {
        let lm = last_modified.map(hv);
        let d = date.map(hv);
        is_not_modified(
            &req(&[("if-modified-since", value)]),
            None,
            lm.as_ref(),
            d.as_ref(),
        )
    }

    // ---- weak comparison --------------------------------------------------

    #[test]
    fn weak_eq_rules() {
        assert!(weak_eq(b"\"1\"", b"\"1\""));
        assert!(weak_eq(b"W/\"1\"", b"\"1\""));
        assert!(weak_eq(b"\"1\"", b"W/\"1\""));
        assert!(weak_eq(b"W/\"1\"", b"W/\"1\""));
        assert!(weak_eq(b" \"1\"\t", b"\"1\""));
        assert!(weak_eq(b"\"\"", b"W/\"\""));
        assert!(!weak_eq(b"W/\"1\"", b"W/\"2\""));
        assert!(!weak_eq(b"\"1\"", b"\"2\""));
    }

    #[test]
    fn weak_eq_malformed() {
        for bad in [
            &b"1"[..],
            b"\"1",
            b"1\"",
            b"w/\"1\"",
            b"W/1",
            b"\"a\"b\"",
            b"\"a b\"",
            b"",
            b"\"",
            b"W/",
        ] {
            assert!(!weak_eq(bad, bad), "{bad:?}");
            assert!(!weak_eq(bad, b"\"1\""), "{bad:?}");
        }
        // obs-text is allowed in entity-tags.
        assert!(weak_eq(b"\"caf\xc3\xa9\"", b"W/\"caf\xc3\xa9\""));
    }

    // ---- If-None-Match ------------------------------------------------------

    #[test]
    fn if_none_match_strong_and_weak() {
        assert!(inm("\"v1\"", Some("\"v1\"")));
        assert!(inm("W/\"v1\"", Some("\"v1\"")));
        assert!(inm("\"v1\"", Some("W/\"v1\"")));
        assert!(!inm("\"v2\"", Some("\"v1\"")));
        // No stored ETag: nothing to match.
        assert!(!inm("\"v1\"", None));
        // Malformed stored ETag never matches.
        assert!(!inm("\"v1\"", Some("v1")));
    }

    #[test]
    fn if_none_match_star() {
        assert!(inm("*", Some("\"v1\"")));
        assert!(inm("*", None));
        assert!(inm(" * ", None));
        // `*` is only valid alone.
        assert!(!inm("*, \"v2\"", Some("\"v1\"")));
        assert!(inm("*, \"v1\"", Some("\"v1\"")));
    }

    #[test]
    fn if_none_match_list() {
        assert!(inm("\"a\", \"b\", W/\"v1\"", Some("\"v1\"")));
        assert!(!inm("\"a\", \"b\"", Some("\"v1\"")));
        assert!(inm("\"a\",\"v1\"", Some("\"v1\"")));
        // Commas inside an entity-tag do not split it.
        assert!(inm("\"x\", \"a,b\"", Some("\"a,b\"")));
        assert!(!inm("\"a,b\"", Some("\"a\"")));
        // Multiple lines combine.
        let headers = req(&[("if-none-match", "\"a\""), ("if-none-match", "\"v1\"")]);
        assert!(is_not_modified(&headers, Some(&hv("\"v1\"")), None, None));
    }

    #[test]
    fn if_none_match_malformed_members() {
        // Unquoted members never match, but do not hide later valid ones.
        assert!(!inm("v1", Some("\"v1\"")));
        assert!(inm("v1, \"v1\"", Some("\"v1\"")));
        assert!(inm("\"x\"junk, \"v1\"", Some("\"v1\"")));
        assert!(!inm("\"v1", Some("\"v1\"")));
        assert!(!inm("w/\"v1\"", Some("\"v1\"")));
        assert!(!inm("", Some("\"v1\"")));
        assert!(!inm(",,,", Some("\"v1\"")));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"\xff\", \"v1\"").unwrap(),
        );
        assert!(is_not_modified(&headers, Some(&hv("\"v1\"")), None, None));
    }

    // ---- If-Modified-Since ----------------------------------------------------

    #[test]
    fn if_modified_since_before_and_after() {
        let lm = date(T0);
        // Not modified since a later or equal date.
        assert!(ims(&date(T0), Some(&lm), None));
        assert!(ims(&date(T0 + 60), Some(&lm), None));
        // Modified after the IMS date.
        assert!(!ims(&date(T0 - 1), Some(&lm), None));
        // Other date formats are accepted.
        assert!(ims(
            "Sunday, 06-Nov-94 08:49:37 GMT",
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            None
        ));
        assert!(ims(
            "Sun Nov  6 08:49:37 1994",
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            None
        ));
    }

    #[test]
    fn if_modified_since_garbage_is_ignored() {
        let lm = date(T0);
        for bad in ["garbage", "0", "", "-1", "Sun, 06 Nov 1994"] {
            assert!(!ims(bad, Some(&lm), None), "{bad:?}");
        }
        // Two lines are not a valid single HTTP-date.
        let headers = req(&[
            ("if-modified-since", &date(T0 + 10)),
            ("if-modified-since", &date(T0 + 20)),
        ]);
        assert!(!is_not_modified(&headers, None, Some(&hv(&lm)), None));
    }

    #[test]
    fn if_modified_since_falls_back_to_date() {
        // No Last-Modified: the stored Date is used.
        assert!(ims(&date(T0), None, Some(&date(T0 - 10))));
        assert!(!ims(&date(T0), None, Some(&date(T0 + 10))));
        // An invalid Last-Modified counts as missing.
        assert!(ims(&date(T0), Some("bogus"), Some(&date(T0 - 10))));
        // Neither: no 304.
        assert!(!ims(&date(T0), None, None));
        assert!(!ims(&date(T0), Some("bogus"), Some("bogus")));
        // Last-Modified wins over Date when both are valid.
        assert!(!ims(&date(T0), Some(&date(T0 + 5)), Some(&date(T0 - 5))));
    }

    #[test]
    fn if_modified_since_ignored_when_if_none_match_present() {
        let lm = hv(&date(T0));
        let etag = hv("\"v1\"");
        // INM does not match: no 304 even though IMS would give one.
        let headers = req(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &date(T0 + 60)),
        ]);
        assert!(!is_not_modified(&headers, Some(&etag), Some(&lm), None));
        // INM matches: 304 even though IMS says modified.
        let headers = req(&[
            ("if-none-match", "\"v1\""),
            ("if-modified-since", &date(T0 - 60)),
        ]);
        assert!(is_not_modified(&headers, Some(&etag), Some(&lm), None));
        // Malformed INM still takes precedence over IMS.
        let headers = req(&[
            ("if-none-match", "garbage"),
            ("if-modified-since", &date(T0 + 60)),
        ]);
        assert!(!is_not_modified(&headers, Some(&etag), Some(&lm), None));
    }

    #[test]
    fn no_conditionals_no_304() {
        assert!(!is_not_modified(
            &HeaderMap::new(),
            Some(&hv("\"v1\"")),
            Some(&hv(&date(T0))),
            Some(&hv(&date(T0)))
        ));
    }

    // ---- 304 headers and weakening -------------------------------------------

    #[test]
    fn strip_for_304_drops_representation_metadata() {
        let mut headers = req(&[
            ("content-length", "10"),
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
            ("content-language", "en"),
            ("content-range", "bytes 0-9/10"),
            ("transfer-encoding", "chunked"),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("expires", &date(T0)),
            ("date", &date(T0)),
            ("vary", "accept-encoding"),
            ("content-location", "/a"),
            ("last-modified", &date(T0)),
            ("set-cookie", "a=b"),
        ]);
        strip_for_304(&mut headers);
        for gone in [
            "content-length",
            "content-type",
            "content-encoding",
            "content-language",
            "content-range",
            "transfer-encoding",
        ] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        for kept in [
            "etag",
            "cache-control",
            "expires",
            "date",
            "vary",
            "content-location",
            "last-modified",
            "set-cookie",
        ] {
            assert!(headers.contains_key(kept), "{kept}");
        }
    }

    #[test]
    fn weaken_etag_rules() {
        assert_eq!(weaken_etag(&hv("\"v1\"")), Some(hv("W/\"v1\"")));
        assert_eq!(weaken_etag(&hv("W/\"v1\"")), Some(hv("W/\"v1\"")));
        assert_eq!(weaken_etag(&hv("\"\"")), Some(hv("W/\"\"")));
        for bad in ["v1", "\"v1", "w/\"v1\"", "", "W/v1", "\"a\" \"b\""] {
            assert_eq!(weaken_etag(&hv(bad)), None, "{bad:?}");
        }
        let weak = weaken_etag(&hv("\"v1\"")).unwrap();
        assert!(weak_eq(weak.as_bytes(), b"\"v1\""));
    }
}
