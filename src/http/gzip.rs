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
    /// The blocking task decoding it panicked or was cancelled.
    #[error("gzip decoding task failed")]
    Task,
}

/// The most bytes deflate produces per input byte (RFC 1951: a 258-byte
/// match costs at least 2 bits, so ~1032:1). Gzip headers produce nothing.
pub const MAX_EXPANSION: u64 = 1032;

/// Inputs up to this size are decoded on the calling (async worker)
/// thread: at most ~1 MiB of output, about a millisecond of CPU. Larger
/// ones go to the blocking pool (see [`gunzip_off_worker`]).
pub const INLINE_MAX: usize = 1024;

/// The most bytes `compressed` bytes of gzip can decode to under `limit`:
/// what to reserve before decoding.
pub fn decoded_bound(compressed: usize, limit: u64) -> u64 {
    (compressed as u64)
        .saturating_mul(MAX_EXPANSION)
        .min(limit.saturating_add(1))
}

/// Decodes `data` (all members of a multi-member stream), refusing to
/// produce more than `limit` bytes.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Bytes, GunzipError> {
    let guess = data.len().saturating_mul(3);
    let mut out = Vec::with_capacity(usize::try_from(limit).map_or(guess, |l| guess.min(l)));
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(limit + 1);
    reader.read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// [`gunzip`], on the blocking thread pool unless `data` is small enough
/// to decode at once ([`INLINE_MAX`]): lacquer runs one single-threaded
/// runtime per worker, so a long decode there would stall every connection
/// of that worker. The output bound applies as in [`gunzip`].
pub async fn gunzip_off_worker(data: Bytes, limit: u64) -> Result<Bytes, GunzipError> {
    if data.len() <= INLINE_MAX {
        return gunzip(&data, limit);
    }
    tokio::task::spawn_blocking(move || gunzip(&data, limit))
        .await
        .map_err(|_| GunzipError::Task)?
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

    #[test]
    fn a_bomb_stops_at_the_limit_and_the_bound_holds() {
        let one = gz(&vec![0u8; 1 << 20]);
        let bomb = one.repeat(64);
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(GunzipError::TooLarge(_))
        ));
        assert!(decoded_bound(one.len(), u64::MAX) >= 1 << 20);
        assert_eq!(decoded_bound(bomb.len(), 1000), 1001);
    }

    #[tokio::test]
    async fn off_the_worker_decodes_the_same() {
        // Pseudo-random bytes: compressed, still larger than INLINE_MAX.
        let mut x = 0x2545_f491_u32;
        let big: Vec<u8> = (0..64 << 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let z = Bytes::from(gz(&big));
        assert!(z.len() > INLINE_MAX);
        let out = gunzip_off_worker(z, 2 << 20).await.expect("decodes");
        assert_eq!(&out[..], &big[..]);
    }
}
