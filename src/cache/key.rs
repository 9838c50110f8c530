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
        let mut key = KeyParts::default();
        for p in parts {
            key.push(p);
        }
        key.finish()
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

/// A key being built from `hash_data` parts, in one buffer (a policy's
/// `vcl_hash` runs on every lookup: no string per part).
#[derive(Debug, Default)]
pub struct KeyParts {
    text: String,
    parts: usize,
}

impl KeyParts {
    /// Adds the next part.
    pub fn push(&mut self, part: &str) {
        if self.parts == 0 {
            // Room for a typical key (URL, host and a few variants) at once.
            self.text.reserve(part.len() + 96);
        } else {
            // A separator that cannot occur in a URL or a header value.
            self.text.push('\n');
        }
        self.text.push_str(part);
        self.parts += 1;
    }

    /// The key of the parts pushed so far.
    pub fn finish(self) -> CacheKey {
        CacheKey(Arc::from(self.text))
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
