//! Decoding gzip'd bodies (ESI pages and fragments are assembled from
//! identity bytes), with a bound on the decoded size.

use bytes::Bytes;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    /// Not valid gzip data.
    #[error("invalid gzip data: {0}")]
    Invalid(#[from] std::io::Error),
    /// Decodes to more than the limit.
    #[error("decoded body larger than {0} bytes")]
    TooLarge(u64),
}

/// Whether `Content-Encoding` says gzip (`gzip` or `x-gzip`, alone).
pub fn is_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip")
        })
}

/// Decodes `data` (all members of a multi-member stream), refusing to
/// produce more than `limit` bytes.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Bytes, GunzipError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(limit as usize));
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(limit + 1);
    reader.read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn round_trip_and_limit() {
        let z = gz(b"hello world");
        assert_eq!(&gunzip(&z, 100).expect("decodes")[..], b"hello world");
        assert!(matches!(gunzip(&z, 5), Err(GunzipError::TooLarge(5))));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(GunzipError::Invalid(_))
        ));
    }
}
