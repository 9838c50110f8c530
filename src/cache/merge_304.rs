//! Updating a stored response's headers from a 304 (RFC 9111 §4.3.4, §3.2).

use ::http::header::{self, HeaderMap, HeaderName};

use crate::http::syntax::{split_list, trim_ows};

/// RFC 9111 §4.3.4 / §3.2: the headers of a stored response updated by a
/// 304 (or a HEAD response) `not_modified`.
///
/// Every field of the 304 replaces all stored lines of the same name, except:
/// `Content-Length` (never updated from a 304); hop-by-hop fields
/// (`Connection` and the fields it lists, `Proxy-Connection`, `Keep-Alive`,
/// `TE`, `Transfer-Encoding`, `Upgrade`) and proxy-specific fields
/// (`Proxy-Authenticate`, `Proxy-Authentication-Info`,
/// `Proxy-Authorization`), which are never stored; and `Content-Encoding`
/// and `Content-Range`, which describe the stored body bytes: §3.2 allows a
/// cache to skip fields whose update would break the integrity of what it
/// stored.
///
/// `Date` and `Age` describe a message, not the representation: when the
/// 304 lacks them, the stored ones are dropped (rather than kept), so that a
/// freshness recomputed from the merged headers is based on the revalidation
/// time and not on the original response.
pub fn merge_304(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let listed = connection_listed(not_modified);
    for name in not_modified.keys() {
        if !updatable_from_304(name) || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        out.remove(name);
        for value in not_modified.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if !not_modified.contains_key(header::DATE) {
        out.remove(header::DATE);
    }
    if !not_modified.contains_key(header::AGE) {
        out.remove(header::AGE);
    }
    out
}

/// RFC 9111 §4.3.5: whether a HEAD response describes the same
/// representation as a stored GET response, so that its headers may update
/// the stored ones (with [`merge_304`]; never the body).
///
/// `ETag` and `Last-Modified` must be present in both with the same bytes,
/// or absent from both; a `Content-Length` in both must be equal (the stored
/// one is the header, else `stored_len`, the stored body's length).
pub fn head_matches(stored: &HeaderMap, stored_len: u64, head: &HeaderMap) -> bool {
    let same = |name: header::HeaderName| match (stored.get(&name), head.get(&name)) {
        (Some(a), Some(b)) => a.as_bytes() == b.as_bytes(),
        (None, None) => true,
        _ => false,
    };
    let length = |h: &HeaderMap| -> Option<u64> {
        std::str::from_utf8(h.get(header::CONTENT_LENGTH)?.as_bytes())
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let stored_length = length(stored).unwrap_or(stored_len);
    same(header::ETAG)
        && same(header::LAST_MODIFIED)
        && length(head).is_none_or(|l| l == stored_length)
}

/// False for the fields a 304 must not update (see [`merge_304`]).
fn updatable_from_304(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-length"
            | "content-encoding"
            | "content-range"
            | "connection"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authentication-info"
            | "proxy-authorization"
    )
}

/// Lowercase field names listed in `Connection`.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    let mut names = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for item in split_list(value.as_bytes()) {
            let item = trim_ows(item);
            if !item.is_empty() {
                names.push(String::from_utf8_lossy(item).to_ascii_lowercase());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_matches_on_validators_and_length() {
        let stored = headers(&[("etag", "\"a\""), ("content-length", "5")]);
        assert!(head_matches(&stored, 5, &headers(&[("etag", "\"a\"")])));
        assert!(head_matches(
            &stored,
            5,
            &headers(&[("etag", "\"a\""), ("content-length", "5")])
        ));
        assert!(!head_matches(&stored, 5, &headers(&[("etag", "\"b\"")])));
        assert!(!head_matches(&stored, 5, &headers(&[])), "validator gone");
        assert!(!head_matches(
            &stored,
            5,
            &headers(&[("etag", "\"a\""), ("content-length", "6")])
        ));
        let bare = headers(&[]);
        assert!(head_matches(&bare, 3, &headers(&[("content-length", "3")])));
        assert!(!head_matches(
            &bare,
            3,
            &headers(&[("content-length", "4")])
        ));
        assert!(!head_matches(
            &bare,
            3,
            &headers(&[("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")])
        ));
    }
    use crate::cache::test_support::*;
    use ::http::{Method, StatusCode};

    use crate::cache::freshness::{evaluate, FreshnessPolicy};

    // ---- 304 merge ---------------------------------------------------------

    #[test]
    fn merge_304_replaces_fields() {
        let stored = headers(&[
            ("content-type", "text/html"),
            ("content-length", "1234"),
            ("content-encoding", "gzip"),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("date", &date(T0 - 1000)),
            ("age", "500"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("x-keep", "k"),
        ]);
        let nm = headers(&[
            ("etag", "\"v2\""),
            ("cache-control", "max-age=120"),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-hop", "1"),
            ("x-multi", "c"),
            ("x-multi", "d"),
            ("proxy-authenticate", "Basic"),
        ]);
        let merged = merge_304(&stored, &nm);
        assert_eq!(merged["etag"], "\"v2\"");
        assert_eq!(merged["cache-control"], "max-age=120");
        assert_eq!(merged["content-length"], "1234");
        assert_eq!(merged["content-encoding"], "gzip");
        assert_eq!(merged["content-type"], "text/html");
        assert_eq!(merged["x-keep"], "k");
        let multi: Vec<_> = merged.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["c", "d"]);
        for hop in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "x-hop",
            "proxy-authenticate",
        ] {
            assert!(!merged.contains_key(hop), "{hop}");
        }
        // Date and Age of the old message are dropped when the 304 has none.
        assert!(!merged.contains_key("date"));
        assert!(!merged.contains_key("age"));
    }

    #[test]
    fn merge_304_takes_date_and_age_from_the_304() {
        let stored = headers(&[("date", &date(T0 - 1000)), ("age", "500")]);
        let nm = headers(&[("date", &date(T0)), ("age", "3")]);
        let merged = merge_304(&stored, &nm);
        assert_eq!(merged["date"], date(T0).as_str());
        assert_eq!(merged["age"], "3");
        // Freshness recomputed from the merged headers starts over.
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &merge_304(
                &headers(&[("cache-control", "max-age=60"), ("date", &date(T0 - 1000))]),
                &headers(&[("etag", "\"a\"")]),
            ),
            at(T0),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert!(f.is_fresh(at(T0)));
    }
}
