//! Cache keys: what `vcl_hash` feeds. By default the Host and the URL.

use std::sync::Arc;

/// The primary key of a stored URL. Vary variants live under one key.
///
/// The parts are kept in full (not hashed) so two URLs can never share an
/// entry by collision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// A key from `hash_data` parts, in order.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> CacheKey {
        let mut s = String::new();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                // A separator that cannot occur in a URL or a header value.
                s.push('\n');
            }
            s.push_str(p);
        }
        CacheKey(Arc::from(s))
    }

    /// The default key: URL then Host (Varnish's built-in `vcl_hash`).
    pub fn for_request(host: &str, url: &str) -> CacheKey {
        // As `from_parts([url, host])`, sized once (this runs on every hit).
        let mut s = String::with_capacity(url.len() + 1 + host.len());
        s.push_str(url);
        s.push('\n');
        s.push_str(host);
        CacheKey(Arc::from(s))
    }

    /// The key's text, parts separated by newlines.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Bytes the key occupies (for weighing).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a key of no parts.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(
            CacheKey::from_parts(["/ab", "c"]),
            CacheKey::from_parts(["/a", "bc"])
        );
        assert_eq!(
            CacheKey::for_request("h", "/x"),
            CacheKey::from_parts(["/x", "h"])
        );
    }
}
