//! `[compression]`: content codings — how `Accept-Encoding` is normalised,
//! and what lacquer compresses when it stores a response.

use serde::Deserialize;

use crate::config::ByteSize;

/// Content-coding support (see docs/LIFECYCLE.md, Compression).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Normalise requests' `Accept-Encoding` before lookup (so `Vary:
    /// Accept-Encoding` does not split the cache), ask the origin for gzip
    /// on fetches for the cache, and decode a stored coded body for clients
    /// that do not accept its coding (Varnish's `http_gzip_support`). Off:
    /// `Accept-Encoding` is a header like any other.
    pub enabled: bool,
    /// Compress (gzip) responses of these media types when they are
    /// stored, unless the origin coded them already or sent
    /// `Cache-Control: no-transform`. A trailing `/*` matches a whole
    /// type (`text/*`). Empty: never (a policy's `beresp.do_gzip` still
    /// can).
    pub types: Vec<String>,
    /// gzip level, 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// Bodies smaller than this are stored as they came.
    pub min_size: ByteSize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            types: [
                "text/*",
                "application/json",
                "application/javascript",
                "application/xml",
                "application/xhtml+xml",
                "application/rss+xml",
                "application/atom+xml",
                "application/manifest+json",
                "application/ld+json",
                "image/svg+xml",
            ]
            .map(String::from)
            .to_vec(),
            level: 6,
            min_size: ByteSize(1024),
        }
    }
}

impl CompressionConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.level) {
            return Err(format!(
                "compression.level: {} (expected 1 to 9)",
                self.level
            ));
        }
        for t in &self.types {
            let ok = t.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && !b.is_empty() && !a.contains('*') && (b == "*" || !b.contains('*'))
            });
            if !ok {
                return Err(format!(
                    "compression.types: {t:?} (expected type/subtype or type/*)"
                ));
            }
        }
        Ok(())
    }

    /// Whether a body of `content_type` (parameters ignored) is one to
    /// compress.
    pub fn compressible(&self, content_type: Option<&[u8]>) -> bool {
        let Some(ct) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        let Some((ty, _)) = media.split_once('/') else {
            return false;
        };
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(whole) => whole.eq_ignore_ascii_case(ty),
            None => t.eq_ignore_ascii_case(media),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_with_wildcards_and_without_parameters() {
        let c = CompressionConfig::default();
        assert!(c.compressible(Some(b"text/html; charset=utf-8")));
        assert!(c.compressible(Some(b"Application/JSON")));
        assert!(c.compressible(Some(b"image/svg+xml")));
        assert!(!c.compressible(Some(b"image/png")));
        assert!(!c.compressible(Some(b"textual/x")));
        assert!(!c.compressible(None));
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = CompressionConfig::default();
        assert!(c.validate().is_ok());
        c.level = 0;
        assert!(c.validate().is_err());
        c.level = 6;
        c.types = vec!["*/*".into()];
        assert!(c.validate().is_err());
    }
}
