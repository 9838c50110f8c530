//! A small set of header names asked, on every hit, whether it holds each
//! field of a response: most fields are not in it, and their name's length
//! says so without comparing names.

use http::HeaderName;
use std::sync::Arc;

/// Header names, with the lengths they have. Cheap to clone (a stored
/// hit's response keeps the names its policy leaves out).
#[derive(Debug, Clone, Default)]
pub struct NameSet {
    names: Option<Arc<[HeaderName]>>,
    /// Bit `n` set when a name is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

impl NameSet {
    /// The empty set.
    pub fn empty() -> &'static NameSet {
        static EMPTY: NameSet = NameSet {
            names: None,
            lengths: 0,
        };
        &EMPTY
    }

    /// The set of `names`.
    pub fn new(names: Vec<HeaderName>) -> NameSet {
        let lengths = names.iter().fold(0, |bits, n| bits | length_bit(n));
        let names = (!names.is_empty()).then(|| names.into());
        NameSet { names, lengths }
    }

    /// Whether it holds `name`.
    #[inline]
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.lengths & length_bit(name) != 0 && self.names().contains(name)
    }

    /// Whether it holds no name.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.names.is_none()
    }

    /// The names.
    pub fn names(&self) -> &[HeaderName] {
        self.names.as_deref().unwrap_or(&[])
    }
}

fn length_bit(name: &HeaderName) -> u64 {
    1 << name.as_str().len().min(63)
}

#[cfg(test)]
mod tests {
    use super::NameSet;
    use http::HeaderName;

    #[test]
    fn holds_its_names_and_no_other() {
        let long = "x".repeat(70);
        let set = NameSet::new(
            ["via", "x-varnish", "server", long.as_str()]
                .iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("name"))
                .collect(),
        );
        for held in ["via", "x-varnish", "server", long.as_str()] {
            let name = HeaderName::from_bytes(held.as_bytes()).expect("name");
            assert!(set.contains(&name), "{held}");
        }
        let other_long = "y".repeat(80);
        // Same lengths as held names, and others.
        for other in [
            "age",
            "x-cache-",
            "vary",
            "x-varnisk",
            "etag",
            other_long.as_str(),
        ] {
            let name = HeaderName::from_bytes(other.as_bytes()).expect("name");
            assert!(!set.contains(&name), "{other}");
        }
        assert!(!NameSet::empty().contains(&http::header::VIA));
        assert!(NameSet::empty().is_empty() && !set.is_empty());
    }
}
