//! Vary (RFC 9111 §4.1): one URL, several stored variants, each selected by
//! the request headers its response names.

use crate::http::req_fields::FieldsRead;
use bytes::Bytes;
use http::header::{HeaderName, VARY};
use http::HeaderMap;

use super::storable::NoCacheReason;
use crate::http::syntax::{split_list, trim_ows};

/// The request header values a variant was stored for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variant(Vec<(HeaderName, Option<Bytes>)>);

/// The header names a response varies on. `Err` when the response must
/// not be stored: `Vary: *` matches no later request, and a `Vary` that is
/// not a comma-separated list of field names (RFC 9110 §12.5.5) leaves the
/// selecting headers unknown.
pub fn vary_names(resp: &HeaderMap) -> Result<Vec<HeaderName>, NoCacheReason> {
    let mut names: Vec<HeaderName> = Vec::new();
    for v in resp.get_all(VARY) {
        let Ok(s) = v.to_str() else {
            return Err(NoCacheReason::VaryInvalid);
        };
        for item in s.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                // Empty list elements are allowed (RFC 9110 §5.6.1).
                continue;
            }
            if item == "*" {
                return Err(NoCacheReason::VaryStar);
            }
            let name =
                HeaderName::from_bytes(item.as_bytes()).map_err(|_| NoCacheReason::VaryInvalid)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Selecting fields whose values are case-insensitive tokens (language
/// tags, codings, charsets): compared in lowercase.
const CASE_INSENSITIVE: [&str; 3] = ["accept-language", "accept-encoding", "accept-charset"];

/// The normalised value of `name` in `req` (RFC 9111 §4.1 allows
/// normalising to a value with the same semantics): every field line split
/// into list members (commas inside quoted strings kept), each trimmed,
/// empty ones dropped, joined by `", "`; lowercased for
/// [`CASE_INSENSITIVE`] fields. Member order is kept: it can carry
/// preference.
fn normalised(req: &impl FieldsRead, name: &HeaderName) -> Option<Bytes> {
    let mut lines = req.get_all(name).peekable();
    lines.peek()?;
    let fold = CASE_INSENSITIVE.contains(&name.as_str());
    let mut out = Vec::new();
    for line in lines {
        for member in split_list(line.as_bytes()) {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            if fold {
                out.extend(member.iter().map(u8::to_ascii_lowercase));
            } else {
                out.extend_from_slice(member);
            }
        }
    }
    Some(Bytes::from(out))
}

impl Variant {
    /// Captures the request's values for `names`.
    pub fn capture(names: &[HeaderName], req: &impl FieldsRead) -> Variant {
        Variant(
            names
                .iter()
                .map(|n| (n.clone(), normalised(req, n)))
                .collect(),
        )
    }

    /// Whether `req` selects this variant.
    pub fn matches(&self, req: &impl FieldsRead) -> bool {
        self.0.iter().all(|(n, v)| normalised(req, n) == *v)
    }

    /// True when the response did not vary.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes this variant description occupies (for weighing).
    pub fn weight(&self) -> usize {
        self.0
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, |v| v.len()) + 16)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    use crate::http::test_support::headers as map;

    #[test]
    fn names_and_star() {
        let r = map(&[
            ("vary", "Accept-Encoding, accept-language"),
            ("vary", "x-a"),
        ]);
        assert_eq!(vary_names(&r).unwrap().len(), 3);
        assert_eq!(
            vary_names(&map(&[("vary", "a, *")])),
            Err(NoCacheReason::VaryStar)
        );
        assert_eq!(vary_names(&map(&[("vary", "a, , b,")])).unwrap().len(), 2);
    }

    #[test]
    fn an_unparsable_vary_is_refused() {
        for bad in ["Cookie Session", "Cookie;q=1", "Cookie, (x)", "a/b"] {
            assert_eq!(
                vary_names(&map(&[("vary", bad)])),
                Err(NoCacheReason::VaryInvalid),
                "{bad}"
            );
        }
        let mut m = HeaderMap::new();
        m.insert(VARY, HeaderValue::from_bytes(b"Cookie, X-\xe9").unwrap());
        assert_eq!(vary_names(&m), Err(NoCacheReason::VaryInvalid));
    }

    #[test]
    fn matching_normalises_whitespace_and_lines() {
        let names = vary_names(&map(&[("vary", "accept-encoding")])).unwrap();
        let v = Variant::capture(&names, &map(&[("accept-encoding", " gzip ")]));
        assert!(v.matches(&map(&[("accept-encoding", "gzip")])));
        assert!(!v.matches(&map(&[("accept-encoding", "br")])));
        assert!(!v.matches(&map(&[])));
        let absent = Variant::capture(&names, &map(&[]));
        assert!(absent.matches(&map(&[("x", "y")])));
        let two = Variant::capture(
            &names,
            &map(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]),
        );
        assert!(two.matches(&map(&[("accept-encoding", "gzip, br")])));
    }

    #[test]
    fn matching_normalises_list_spacing_and_token_case() {
        let names = vary_names(&map(&[("vary", "foo, accept-language")])).unwrap();
        let v = Variant::capture(
            &names,
            &map(&[("foo", "1,2"), ("accept-language", "en, de")]),
        );
        assert!(v.matches(&map(&[
            ("foo", " 1, 2 "),
            ("accept-language", " eN ,   De")
        ])));
        assert!(v.matches(&map(&[
            ("foo", "1"),
            ("foo", "2"),
            ("accept-language", "en,de")
        ])));
        assert!(
            !v.matches(&map(&[("foo", "1,2"), ("accept-language", "de, en")])),
            "order kept"
        );
        assert!(!v.matches(&map(&[("foo", "1,3"), ("accept-language", "en, de")])));
        // Case is kept for fields not known to be case-insensitive, and
        // commas inside quoted strings are not separators.
        let q = Variant::capture(&names, &map(&[("foo", "\"a,b\", X")]));
        assert!(q.matches(&map(&[("foo", "\"a,b\",X")])));
        assert!(!q.matches(&map(&[("foo", "\"a, b\", X")])));
        assert!(!q.matches(&map(&[("foo", "\"a,b\", x")])));
    }
}
