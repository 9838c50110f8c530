//! A handful of header fields kept in order without a map: the fields each
//! delivery of a stored object sets (`Age`, `X-Cache`, `Via`,
//! `Accept-Ranges`) on the usual hit, written after the object's own. A
//! `HeaderMap` for them was built, hashed into and dropped on every hit
//! (~1,000 instructions of a ~14,000-instruction 1 KiB hit) only to be
//! written out at once.

use http::header::{HeaderMap, HeaderName, HeaderValue, AGE};

/// How many fields a [`FewFields`] holds.
pub const CAPACITY: usize = 4;

/// Up to [`CAPACITY`] fields, in the order they were added.
#[derive(Debug, Clone)]
pub struct FewFields {
    /// The first `len` are the fields; the rest fill the array.
    slots: [(HeaderName, HeaderValue); CAPACITY],
    len: usize,
}

impl Default for FewFields {
    fn default() -> FewFields {
        FewFields {
            slots: std::array::from_fn(|_| (AGE, HeaderValue::from_static(""))),
            len: 0,
        }
    }
}

impl FewFields {
    /// Adds a field after the others. A list already full keeps what it
    /// has and hands the field back (the caller's list of names is longer
    /// than [`CAPACITY`]: a mistake, caught by the tests).
    pub fn push(
        &mut self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), (HeaderName, HeaderValue)> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = (name, value);
                self.len += 1;
                Ok(())
            }
            None => Err((name, value)),
        }
    }

    /// `name` set to `value` alone: the first field of that name takes the
    /// value where it stands (as `HeaderMap::insert` does) and any others
    /// go; a name not there is added after the others. A full list without
    /// the name hands the field back.
    pub fn put(
        &mut self,
        name: HeaderName,
        value: HeaderValue,
    ) -> Result<(), (HeaderName, HeaderValue)> {
        let Some(first) = self.as_slice().iter().position(|(n, _)| *n == name) else {
            return self.push(name, value);
        };
        self.slots[first].1 = value;
        let mut kept = first + 1;
        for i in first + 1..self.len {
            if self.slots[i].0 != name {
                self.slots.swap(kept, i);
                kept += 1;
            }
        }
        self.len = kept;
        Ok(())
    }

    /// The fields, in order.
    pub fn as_slice(&self) -> &[(HeaderName, HeaderValue)] {
        &self.slots[..self.len]
    }

    /// Whether a field is named `name`.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.as_slice().iter().any(|(n, _)| n == name)
    }

    /// Moves the fields named `name` to the end of `map`, in order.
    pub fn move_into(&mut self, name: &HeaderName, map: &mut HeaderMap) {
        let mut kept = 0;
        for i in 0..self.len {
            if self.slots[i].0 == *name {
                map.append(name.clone(), self.slots[i].1.clone());
            } else {
                self.slots.swap(kept, i);
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Moves every field to the end of `map`, in order.
    pub fn drain_into(&mut self, map: &mut HeaderMap) {
        for (name, value) in &self.slots[..self.len] {
            map.append(name.clone(), value.clone());
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: &'static str, v: &'static str) -> (HeaderName, HeaderValue) {
        (HeaderName::from_static(n), HeaderValue::from_static(v))
    }

    fn listed(f: &FewFields) -> Vec<(String, String)> {
        f.as_slice()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect()
    }

    #[test]
    fn keeps_order_and_refuses_beyond_capacity() {
        let mut f = FewFields::default();
        assert!(f.as_slice().is_empty());
        for (n, v) in [
            ("age", "1"),
            ("x-cache", "HIT"),
            ("via", "1.1 a"),
            ("via", "1.1 b"),
        ] {
            let (n, v) = field(n, v);
            assert!(f.push(n, v).is_ok());
        }
        let (n, v) = field("accept-ranges", "bytes");
        assert!(f.push(n, v).is_err());
        assert_eq!(
            listed(&f),
            [
                ("age", "1"),
                ("x-cache", "HIT"),
                ("via", "1.1 a"),
                ("via", "1.1 b")
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(f.contains(&HeaderName::from_static("via")));
        assert!(!f.contains(&HeaderName::from_static("accept-ranges")));
    }

    #[test]
    fn put_replaces_in_place_or_adds_last() {
        let mut f = FewFields::default();
        for (n, v) in [("age", "1"), ("x-cache", "a"), ("via", "v")] {
            let (n, v) = field(n, v);
            assert!(f.push(n, v).is_ok());
        }
        let (n, v) = field("x-cache", "b");
        assert!(f.put(n, v).is_ok());
        let (n, v) = field("x-new", "n");
        assert!(f.put(n, v).is_ok());
        assert_eq!(
            listed(&f),
            [("age", "1"), ("x-cache", "b"), ("via", "v"), ("x-new", "n")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        let (n, v) = field("x-more", "m");
        assert!(f.put(n, v).is_err(), "full");
        // A name twice: the first takes the value, the second goes.
        let mut f = FewFields::default();
        for (n, v) in [("via", "1"), ("age", "2"), ("via", "3"), ("x-cache", "4")] {
            let (n, v) = field(n, v);
            assert!(f.push(n, v).is_ok());
        }
        let (n, v) = field("via", "9");
        assert!(f.put(n, v).is_ok());
        assert_eq!(
            listed(&f),
            [("via", "9"), ("age", "2"), ("x-cache", "4")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn moving_a_name_keeps_the_others_in_order() {
        let mut f = FewFields::default();
        for (n, v) in [("via", "1"), ("age", "2"), ("via", "3"), ("x-cache", "4")] {
            let (n, v) = field(n, v);
            assert!(f.push(n, v).is_ok());
        }
        let mut map = HeaderMap::new();
        f.move_into(&HeaderName::from_static("via"), &mut map);
        assert_eq!(
            listed(&f),
            [("age", "2"), ("x-cache", "4")].map(|(n, v)| (n.to_string(), v.to_string()))
        );
        let vias: Vec<_> = map.get_all("via").iter().collect();
        assert_eq!(vias, ["1", "3"]);
        f.drain_into(&mut map);
        assert!(f.as_slice().is_empty());
        assert_eq!(map.len(), 4);
        assert_eq!(map.get("age").map(|v| v.as_bytes()), Some(&b"2"[..]));
    }
}
