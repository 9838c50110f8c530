//! `[compression]`: content codings — how `Accept-Encoding` is normalised,
//! and what lacquer compresses when it stores a response.

use serde::Deserialize;

use crate::config::ByteSize;
use crate::http::coding::{Coding, Encoder};

/// The coding lacquer compresses bodies with when it stores them
/// (`compression.store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreCoding {
    /// gzip: every client accepts it.
    #[default]
    Gzip,
    /// brotli: smaller; clients that do not accept it get the body
    /// decoded.
    Br,
    /// zstd: clients that do not accept it get the body decoded.
    Zstd,
}

impl StoreCoding {
    /// The content coding it stands for.
    pub fn coding(self) -> Coding {
        match self {
            StoreCoding::Gzip => Coding::Gzip,
            StoreCoding::Br => Coding::Br,
            StoreCoding::Zstd => Coding::Zstd,
        }
    }
}

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
    /// Compress responses of these media types (with `store`) when they
    /// are stored, unless the origin coded them already or sent
    /// `Cache-Control: no-transform`. A trailing `/*` matches a whole
    /// type (`text/*`). Empty: never (a policy's `beresp.do_gzip` still
    /// can).
    pub types: Vec<String>,
    /// The coding bodies are compressed with when stored: `"gzip"`
    /// (default), `"br"` or `"zstd"`. A client that does not accept it
    /// gets the body decoded (identity), never re-encoded.
    pub store: StoreCoding,
    /// gzip level, 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// brotli quality, 0 (fastest) to 11 (smallest; slow).
    pub br_quality: u32,
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
            store: StoreCoding::Gzip,
            level: 6,
            br_quality: 5,
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
        if self.br_quality > 11 {
            return Err(format!(
                "compression.br_quality: {} (expected 0 to 11)",
                self.br_quality
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

    /// The encoder for `coding` at the configured level.
    pub fn encoder(&self, coding: StoreCoding) -> Encoder {
        match coding {
            StoreCoding::Gzip => Encoder::Gzip(self.level),
            StoreCoding::Br => Encoder::Br(self.br_quality),
            StoreCoding::Zstd => Encoder::Zstd,
        }
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
        c.br_quality = 12;
        assert!(c.validate().is_err());
        c.br_quality = 11;
        assert!(c.validate().is_ok());
        c.types = vec!["*/*".into()];
        assert!(c.validate().is_err());
    }
}
