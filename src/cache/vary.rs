//! Vary (RFC 9111 §4.1): one URL, several stored variants, each selected by
//! the request headers its response names.

use bytes::Bytes;
use http::header::{HeaderName, VARY};
use http::HeaderMap;

use super::storable::NoCacheReason;

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

/// The normalised value of `name` in `req`: every field line, trimmed,
/// joined by `", "` (RFC 9111 §4.1 allows this normalisation).
fn normalised(req: &HeaderMap, name: &HeaderName) -> Option<Bytes> {
    let mut values = req.get_all(name).iter().peekable();
    let first = values.next()?;
    if values.peek().is_none() {
        return Some(Bytes::copy_from_slice(first.as_bytes().trim_ascii()));
    }
    let mut out = first.as_bytes().trim_ascii().to_vec();
    for v in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(v.as_bytes().trim_ascii());
    }
    Some(Bytes::from(out))
}

impl Variant {
    /// Captures the request's values for `names`.
    pub fn capture(names: &[HeaderName], req: &HeaderMap) -> Variant {
        Variant(
            names
                .iter()
                .map(|n| (n.clone(), normalised(req, n)))
                .collect(),
        )
    }

    /// Whether `req` selects this variant.
    pub fn matches(&self, req: &HeaderMap) -> bool {
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

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

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
}
