//! A request's header fields: an `http::HeaderMap` with a summary of which
//! names it holds, so that a policy asking for a field the request does not
//! have (`req.http.Cookie` on a request without cookies, a `User-Agent`
//! test on a bot's request) is answered without hashing the name and
//! probing the map (~110 instructions each; production.vcl asks for absent
//! fields ~10 times per hit).
//!
//! The summary is a 64-bit filter: bit [`name_bit`] of each name present.
//! A clear bit means the name is absent; a set bit means it may be present
//! (the map answers). It is made on demand ([`ReqFields::summarise`]) and
//! forgotten on any change made through `DerefMut`, so code that changes
//! the fields as a `HeaderMap` cannot leave it stale; the policy's own
//! writes ([`ReqFields::insert_known`]) keep it.

use std::ops::{Deref, DerefMut};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// A request's fields (see the module's documentation). Reads through
/// `Deref` as the `HeaderMap` it wraps.
#[derive(Debug, Clone, Default)]
pub struct ReqFields {
    map: HeaderMap,
    /// The filter; `None` until summarised, and after a change.
    present: Option<u64>,
}

/// The filter bit of a name: from its length and its last byte (names a
/// policy tests mostly differ in one or the other).
#[inline]
pub fn name_bit(name: &HeaderName) -> u64 {
    let bytes = name.as_str().as_bytes();
    let last = bytes.last().copied().unwrap_or(0);
    1 << (((bytes.len() as u32).wrapping_mul(7) ^ u32::from(last)) % 64)
}

impl ReqFields {
    /// The fields of `map`, not summarised yet.
    pub fn new(map: HeaderMap) -> ReqFields {
        ReqFields { map, present: None }
    }

    /// Makes the filter if there is none (one pass over the names).
    pub fn summarise(&mut self) {
        if self.present.is_none() {
            self.present = Some(self.map.keys().fold(0, |bits, n| bits | name_bit(n)));
        }
    }

    /// Whether the name whose [`name_bit`] is `bit` is certainly absent
    /// (the filter says so); false when not summarised.
    #[inline]
    fn absent(&self, bit: u64) -> bool {
        self.present.is_some_and(|bits| bits & bit == 0)
    }

    /// The first value of `name`, whose [`name_bit`] is `bit`, answered by
    /// the filter when it is absent.
    #[inline]
    pub fn first(&self, name: &HeaderName, bit: u64) -> Option<&HeaderValue> {
        debug_assert_eq!(bit, name_bit(name));
        if self.absent(bit) {
            return None;
        }
        self.map.get(name)
    }

    /// Sets `name` (whose [`name_bit`] is `bit`) to `value` alone, keeping
    /// the filter.
    pub fn insert_known(&mut self, name: HeaderName, value: HeaderValue, bit: u64) {
        debug_assert_eq!(bit, name_bit(&name));
        if let Some(bits) = &mut self.present {
            *bits |= bit;
        }
        self.map.insert(name, value);
    }

    /// Removes every value of `name` (whose [`name_bit`] is `bit`), keeping
    /// the filter (its bit may stay set: the filter only ever says "maybe"
    /// too often).
    pub fn remove_known(&mut self, name: &HeaderName, bit: u64) {
        debug_assert_eq!(bit, name_bit(name));
        if !self.absent(bit) {
            self.map.remove(name);
        }
    }

    /// [`crate::http::coding::normalise_request`], keeping the filter (it
    /// changes `Accept-Encoding` only).
    pub fn normalise_accept_encoding(&mut self) {
        crate::http::coding::normalise_request(&mut self.map);
        if let Some(bits) = &mut self.present {
            *bits |= name_bit(&http::header::ACCEPT_ENCODING);
        }
    }

    /// The map, taken out.
    pub fn into_map(self) -> HeaderMap {
        self.map
    }
}

impl From<HeaderMap> for ReqFields {
    fn from(map: HeaderMap) -> ReqFields {
        ReqFields::new(map)
    }
}

impl Deref for ReqFields {
    type Target = HeaderMap;

    fn deref(&self) -> &HeaderMap {
        &self.map
    }
}

impl DerefMut for ReqFields {
    /// The map to change: the filter is forgotten (made again when next
    /// asked for).
    fn deref_mut(&mut self) -> &mut HeaderMap {
        self.present = None;
        &mut self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{COOKIE, HOST, USER_AGENT};

    fn fields(pairs: &[(&str, &str)]) -> ReqFields {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        ReqFields::new(map)
    }

    #[test]
    fn a_summary_never_hides_a_field() {
        // Every name of the standard table and some custom ones, present
        // one at a time among others: the filter must let each through.
        let names: Vec<HeaderName> = ["x-device", "x-lang", "surrogate-capability", "x-a", "x-b"]
            .iter()
            .map(|n| HeaderName::from_static(n))
            .chain([HOST, COOKIE, USER_AGENT, http::header::ACCEPT_LANGUAGE])
            .collect();
        for name in &names {
            let mut f = fields(&[("accept", "*/*"), ("x-forwarded-for", "1.2.3.4")]);
            f.append(name.clone(), HeaderValue::from_static("v"));
            f.summarise();
            assert_eq!(
                f.first(name, name_bit(name)).map(|v| v.as_bytes()),
                Some(&b"v"[..]),
                "{name}"
            );
            assert!(!f.absent(name_bit(name)), "{name}");
        }
    }

    #[test]
    fn absent_fields_are_told_without_the_map() {
        let mut f = fields(&[("host", "h")]);
        assert!(!f.absent(name_bit(&COOKIE)), "not summarised: no answer");
        f.summarise();
        assert!(f.absent(name_bit(&COOKIE)));
        assert_eq!(f.first(&COOKIE, name_bit(&COOKIE)), None);
        assert_eq!(
            f.first(&HOST, name_bit(&HOST)).map(|v| v.as_bytes()),
            Some(&b"h"[..])
        );
    }

    #[test]
    fn accept_encoding_normalised_keeps_a_true_summary() {
        let ae = http::header::ACCEPT_ENCODING;
        for value in [None, Some("br;q=0, gzip;q=0.5, *;q=0"), Some("identity")] {
            let mut f = fields(&[("host", "h")]);
            if let Some(v) = value {
                f.insert(ae.clone(), HeaderValue::from_static(v));
            }
            f.summarise();
            f.normalise_accept_encoding();
            let after = f.get(&ae).cloned();
            assert_eq!(f.first(&ae, name_bit(&ae)), after.as_ref(), "{value:?}");
        }
    }

    #[test]
    fn changes_keep_or_forget_the_summary() {
        let mut f = fields(&[("host", "h")]);
        f.summarise();
        let device = HeaderName::from_static("x-device");
        let bit = name_bit(&device);
        f.insert_known(device.clone(), HeaderValue::from_static("mobile"), bit);
        assert_eq!(
            f.first(&device, name_bit(&device)).map(|v| v.as_bytes()),
            Some(&b"mobile"[..])
        );
        f.remove_known(&device, bit);
        assert_eq!(f.first(&device, name_bit(&device)), None);
        // A change as a map: the summary is gone, and made again right.
        f.insert(COOKIE, HeaderValue::from_static("a=1"));
        assert!(!f.absent(name_bit(&COOKIE)));
        f.summarise();
        assert_eq!(
            f.first(&COOKIE, name_bit(&COOKIE)).map(|v| v.as_bytes()),
            Some(&b"a=1"[..])
        );
    }
}
