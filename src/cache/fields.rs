//! A stored response's header fields, packed for a long life in the cache.
//!
//! A `HeaderMap` is built for lookups while a message is worked on: a map
//! of 7 fields reserves a 16-slot index and 12 entries of ~104 bytes, about
//! 1.3 KiB, most of it empty. A stored object is read whole at every hit
//! (its fields become the response's `HeaderMap`) and looked up by name
//! only for validators and bans, so it keeps its fields as one exact-sized
//! list instead (~72 bytes a field), their values copied into one buffer.
//! Measured on the load bench's `zipf` scenario (1 KiB bodies): see
//! `OVERHEAD` in `object.rs`.

use crate::http::name_set::NameSet;
use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, ETAG};
use http::HeaderMap;

/// The fields of a stored response: those delivered to clients, then those
/// withheld from them (kept for revalidation, `obj.http.*` and bans).
#[derive(Debug, Clone)]
pub struct StoredFields {
    /// Delivered fields first, in the backend's order, then withheld ones.
    fields: Box<[(HeaderName, HeaderValue)]>,
    /// How many of `fields` are delivered.
    delivered: usize,
}

impl StoredFields {
    /// `headers` split by `withhold` (true: kept from clients), every
    /// value copied into one buffer: hyper's parsed values are slices of
    /// the connection's read buffer, which a stored object must not keep
    /// alive. The delivered `Content-Length` is `content_length` (in the
    /// backend's place for it, else last).
    pub fn pack(
        headers: &HeaderMap,
        withhold: impl Fn(&HeaderName) -> bool,
        content_length: HeaderValue,
    ) -> StoredFields {
        let total: usize = headers.values().map(HeaderValue::len).sum();
        let mut buf = BytesMut::with_capacity(total);
        for v in headers.values() {
            buf.extend_from_slice(v.as_bytes());
        }
        let buf = buf.freeze();
        let mut delivered = Vec::with_capacity(headers.len() + 1);
        let mut withheld = Vec::new();
        let mut length = Some(content_length);
        let mut at = 0;
        for (name, v) in headers {
            let end = at + v.len();
            let range = at..end;
            at = end;
            if name == CONTENT_LENGTH {
                // One Content-Length, the stored body's.
                if let Some(len) = length.take() {
                    delivered.push((name.clone(), len));
                }
                continue;
            }
            // The bytes were a valid value a moment ago.
            let mut copy =
                HeaderValue::from_maybe_shared(buf.slice(range)).unwrap_or_else(|_| v.clone());
            copy.set_sensitive(v.is_sensitive());
            if withhold(name) {
                withheld.push((name.clone(), copy));
            } else {
                delivered.push((name.clone(), copy));
            }
        }
        if let Some(len) = length {
            delivered.push((CONTENT_LENGTH, len));
        }
        let count = delivered.len();
        delivered.extend(withheld);
        StoredFields {
            fields: delivered.into_boxed_slice(),
            delivered: count,
        }
    }

    /// The fields delivered to clients.
    pub fn delivered(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields[..self.delivered]
    }

    /// The fields withheld from clients.
    pub fn withheld(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields[self.delivered..]
    }

    /// The delivered fields as a map with room for `more` fields besides
    /// (what delivery adds: `Age`, `X-Cache`, `Via`, …), so that adding
    /// them does not grow it.
    pub fn delivered_map(&self, more: usize) -> HeaderMap {
        self.delivered_map_without(more, NameSet::empty())
    }

    /// [`StoredFields::delivered_map`] without the fields named in
    /// `leave_out`.
    pub fn delivered_map_without(&self, more: usize, leave_out: &NameSet) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.delivered + more);
        for (name, v) in self.delivered() {
            if !leave_out.contains(name) {
                map.append(name.clone(), v.clone());
            }
        }
        map
    }

    /// The backend's value of `name` (withheld fields first: they hold the
    /// backend's value where lacquer delivers another, e.g. a strong `ETag`).
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.find(|n| n == name)
    }

    /// [`StoredFields::get`] for a name given as text (any case).
    pub fn get_named(&self, name: &str) -> Option<&HeaderValue> {
        self.find(|n| n.as_str().eq_ignore_ascii_case(name))
    }

    /// The first withheld value whose name is `wanted`, else the first
    /// delivered one.
    fn find(&self, wanted: impl Fn(&HeaderName) -> bool) -> Option<&HeaderValue> {
        let (delivered, withheld) = self.fields.split_at(self.delivered);
        withheld
            .iter()
            .chain(delivered)
            .find(|(n, _)| wanted(n))
            .map(|(_, v)| v)
    }

    /// The backend's fields as a map: the delivered ones, where a withheld
    /// field of the same name replaces them.
    pub fn backend_map(&self) -> HeaderMap {
        let mut all = HeaderMap::with_capacity(self.fields.len());
        let withheld = self.withheld();
        for (name, v) in self.delivered() {
            if !withheld.iter().any(|(n, _)| n == name) {
                all.append(name.clone(), v.clone());
            }
        }
        for (name, v) in withheld {
            all.append(name.clone(), v.clone());
        }
        all
    }

    /// Delivers a weak `ETag` and withholds the strong one (for
    /// revalidation with the backend); nothing if there is no strong one
    /// or one is withheld already.
    pub fn weaken_etag(&mut self) {
        if self.withheld().iter().any(|(n, _)| n == ETAG) {
            return;
        }
        let Some(at) = self.delivered().iter().position(|(n, _)| n == ETAG) else {
            return;
        };
        let strong = self.fields[at].1.clone();
        if strong.as_bytes().starts_with(b"W/") {
            return;
        }
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(strong.as_bytes());
        let Ok(weak) = HeaderValue::from_bytes(&weak) else {
            return;
        };
        let mut fields = std::mem::take(&mut self.fields).into_vec();
        fields[at].1 = weak;
        fields.push((ETAG, strong));
        self.fields = fields.into_boxed_slice();
    }

    /// Bytes the fields' text occupies (names, values, separators), for
    /// weighing.
    pub fn text_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum()
    }

    /// How many fields are kept, delivered and withheld.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no field is kept.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CACHE_CONTROL, DATE, SET_COOKIE};

    use crate::http::test_support::headers as map;

    fn surrogate(name: &HeaderName) -> bool {
        name == "surrogate-control"
    }

    #[test]
    fn delivered_fields_keep_their_order_and_repeats_and_one_content_length() {
        let headers = map(&[
            ("content-type", "text/html"),
            ("set-cookie", "a=1"),
            ("content-length", "999"),
            ("surrogate-control", "max-age=60"),
            ("set-cookie", "b=2"),
            ("x-custom", "yes"),
        ]);
        let f = StoredFields::pack(&headers, surrogate, HeaderValue::from(5));
        let got: Vec<(String, String)> = f
            .delivered_map(4)
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let want = [
            ("content-type", "text/html"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("content-length", "5"),
            ("x-custom", "yes"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(f.withheld().len(), 1);
        assert_eq!(
            f.get_named("Surrogate-Control").unwrap(),
            &HeaderValue::from_static("max-age=60")
        );
        assert_eq!(f.get(&SET_COOKIE).unwrap(), "a=1");
        assert!(f.get(&CACHE_CONTROL).is_none());
    }

    #[test]
    fn withheld_repeats_and_empty_values_are_kept_in_order() {
        let h = map(&[
            ("set-cookie", "a=1"),
            ("x-one", "one"),
            ("set-cookie", "b=2"),
            ("x-empty", ""),
        ]);
        let f = StoredFields::pack(&h, |n| n == SET_COOKIE, HeaderValue::from(0));
        let delivered: Vec<_> = f
            .delivered()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            delivered,
            [("x-one", "one"), ("x-empty", ""), ("content-length", "0")]
        );
        let cookies: Vec<_> = f.withheld().iter().map(|(_, v)| v).collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        let all = StoredFields::pack(&h, |_| false, HeaderValue::from(0)).backend_map();
        let mut want = h.clone();
        want.insert("content-length", HeaderValue::from(0));
        assert_eq!(all, want);
    }

    #[test]
    fn a_missing_content_length_is_added_last() {
        let f = StoredFields::pack(&map(&[("date", "x")]), surrogate, HeaderValue::from(0));
        let names: Vec<&str> = f.delivered().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["date", "content-length"]);
        assert_eq!(f.get(&DATE).unwrap(), "x");
    }

    #[test]
    fn values_are_copied_out_of_the_read_buffer() {
        let buf = bytes::Bytes::from(vec![b'a'; 8192]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-big",
            HeaderValue::from_maybe_shared(buf.slice(0..10)).unwrap(),
        );
        let f = StoredFields::pack(&headers, surrogate, HeaderValue::from(0));
        let kept = f.get_named("x-big").unwrap().as_bytes();
        assert_eq!(kept, &[b'a'; 10]);
        // A copy, not a slice of the 8 KiB buffer (which it would pin).
        let inside = buf.as_ptr_range();
        assert!(!inside.contains(&kept.as_ptr()));
        assert_eq!(
            f.text_bytes(),
            "x-big".len() + 10 + 4 + "content-length".len() + 1 + 4
        );
    }

    #[test]
    fn a_weakened_etag_is_delivered_weak_and_kept_strong() {
        let headers = map(&[("etag", "\"v1\""), ("surrogate-control", "x")]);
        let mut f = StoredFields::pack(&headers, surrogate, HeaderValue::from(0));
        f.weaken_etag();
        f.weaken_etag();
        assert_eq!(f.delivered_map(0).get(ETAG).unwrap(), "W/\"v1\"");
        assert_eq!(f.get(&ETAG).unwrap(), "\"v1\"");
        let backend = f.backend_map();
        assert_eq!(backend.get_all(ETAG).iter().count(), 1);
        assert_eq!(backend.get(ETAG).unwrap(), "\"v1\"");
        assert_eq!(backend.get("surrogate-control").unwrap(), "x");
        let weak = map(&[("etag", "W/\"v2\"")]);
        let mut f = StoredFields::pack(&weak, surrogate, HeaderValue::from(0));
        f.weaken_etag();
        assert!(f.withheld().is_empty());
        assert_eq!(f.get(&ETAG).unwrap(), "W/\"v2\"");
    }
}
