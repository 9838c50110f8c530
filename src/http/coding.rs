//! Content codings (RFC 9110 §8.4): what a stored body is coded with, what
//! a client accepts, the `Accept-Encoding` lacquer normalises requests to,
//! and coding / decoding bodies (whole, or as they stream).

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, VARY};
use http::HeaderMap;
use std::io::Write;

use crate::http::gzip::{gunzip, GunzipError, INLINE_MAX};
use crate::http::req_fields::FieldsRead;
use crate::http::syntax::{split_list, trim_ows};

/// A body's content coding, as far as lacquer can transform it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// None (`identity`).
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `br`.
    Br,
    /// `zstd`.
    Zstd,
    /// Anything else (several codings, `deflate`, unknown): delivered as
    /// it is, never decoded.
    Other,
}

impl Coding {
    /// The coding `Content-Encoding` in `headers` names.
    pub fn of(headers: &HeaderMap) -> Coding {
        let mut values = headers.get_all(CONTENT_ENCODING).iter();
        let Some(v) = values.next() else {
            return Coding::Identity;
        };
        if values.next().is_some() {
            return Coding::Other;
        }
        let v = trim_ows(v.as_bytes());
        if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else if v.eq_ignore_ascii_case(b"br") {
            Coding::Br
        } else if v.eq_ignore_ascii_case(b"zstd") {
            Coding::Zstd
        } else if v.eq_ignore_ascii_case(b"identity") || v.is_empty() {
            Coding::Identity
        } else {
            Coding::Other
        }
    }

    /// Whether lacquer can decode it.
    pub fn decodable(self) -> bool {
        DECODABLE.contains(&self)
    }

    fn bit(self) -> u8 {
        match self {
            Coding::Identity => 0,
            Coding::Gzip => 1,
            Coding::Br => 2,
            Coding::Zstd => 4,
            Coding::Other => 0,
        }
    }

    /// Its name in `Content-Encoding` and `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Identity | Coding::Other => "identity",
        }
    }
}

/// The codings lacquer decodes (and so may store for every client), in
/// the order a normalised `Accept-Encoding` lists them.
pub const DECODABLE: [Coding; 3] = [Coding::Gzip, Coding::Br, Coding::Zstd];

/// The codings a request accepts, of those lacquer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted(u8);

impl Accepted {
    /// Reads `Accept-Encoding` (RFC 9110 §12.5.3): a coding with `q=0` is
    /// refused, `*` stands for the codings not named; absent or empty:
    /// none (identity only).
    pub fn of(headers: &impl FieldsRead) -> Accepted {
        let (mut yes, mut no, mut star) = (0u8, 0u8, false);
        for line in headers.get_all(ACCEPT_ENCODING) {
            for member in split_list(line.as_bytes()) {
                let member = trim_ows(member);
                let mut parts = member.split(|&b| b == b';');
                let name = trim_ows(parts.next().unwrap_or_default());
                let refused = parts.any(|p| {
                    let p = trim_ows(p);
                    p.len() >= 2
                        && p[..2].eq_ignore_ascii_case(b"q=")
                        && trim_ows(&p[2..]).iter().all(|&b| b == b'0' || b == b'.')
                });
                let bit = if name == b"*" {
                    star = !refused;
                    continue;
                } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip")
                {
                    Coding::Gzip.bit()
                } else if name.eq_ignore_ascii_case(b"br") {
                    Coding::Br.bit()
                } else if name.eq_ignore_ascii_case(b"zstd") {
                    Coding::Zstd.bit()
                } else {
                    continue;
                };
                if refused {
                    no |= bit;
                } else {
                    yes |= bit;
                }
            }
        }
        if star {
            yes |= !no & 0b111;
        }
        Accepted(yes & !no)
    }

    /// Whether a body of `coding` may be sent as it is.
    pub fn allows(self, coding: Coding) -> bool {
        match coding {
            Coding::Identity | Coding::Other => true,
            c => self.0 & c.bit() != 0,
        }
    }
}

/// The request's `Accept-Encoding` as lacquer normalises it after
/// `vcl_recv` (`ReqFields::normalise_accept_encoding`): the codings it
/// accepts that lacquer can decode, in a fixed order (`"gzip"`), or `None`
/// for no field: the one form lookups, `Vary` and the origin see (Varnish
/// does the same with `http_gzip_support`).
pub fn normal_accept_encoding(headers: &impl FieldsRead) -> Option<HeaderValue> {
    let accepted = Accepted::of(headers);
    // Every subset of `DECODABLE`, in its order: made without allocating.
    let text = match (
        accepted.allows(Coding::Gzip),
        accepted.allows(Coding::Br),
        accepted.allows(Coding::Zstd),
    ) {
        (false, false, false) => return None,
        (true, false, false) => "gzip",
        (false, true, false) => "br",
        (false, false, true) => "zstd",
        (true, true, false) => "gzip, br",
        (true, false, true) => "gzip, zstd",
        (false, true, true) => "br, zstd",
        (true, true, true) => "gzip, br, zstd",
    };
    Some(HeaderValue::from_static(text))
}

/// A fetch for the cache asks for the coding lacquer stores (`gzip` by
/// default: settings' `compression.store`), whatever this client accepts:
/// the one stored copy then serves every client, coded for those that
/// accept it and decoded for the others. Only that coding: an origin that
/// preferred another would have its choice stored (lacquer does not
/// transcode), and one that has none of it sends identity, which lacquer
/// compresses when it stores it.
pub fn ask_backend(headers: &mut HeaderMap, store: Coding) {
    let token = match store {
        Coding::Gzip | Coding::Br | Coding::Zstd => store.token(),
        Coding::Identity | Coding::Other => "gzip",
    };
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(token));
}

/// Adds `Accept-Encoding` to `Vary` unless it is there (or `Vary: *`).
pub fn vary_on_accept_encoding(headers: &mut HeaderMap) {
    let named = headers.get_all(VARY).iter().any(|v| {
        split_list(v.as_bytes()).any(|m| {
            let m = trim_ows(m);
            m == b"*" || m.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !named {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// Whether `Cache-Control` says `no-transform` (RFC 9110 §7.7: no
/// intermediary may change the coding).
pub fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .any(|v| {
            split_list(v.as_bytes()).any(|m| trim_ows(m).eq_ignore_ascii_case(b"no-transform"))
        })
}

/// Makes a strong `ETag` weak (`W/`): the bytes are not the origin's.
pub fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    if etag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(etag.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, v);
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// gzip: invalid, too large, or the task failed.
    #[error(transparent)]
    Gzip(#[from] GunzipError),
    /// Invalid `br` or `zstd` data.
    #[error("invalid {0:?} data: {1}")]
    Invalid(Coding, String),
    /// Decodes to more than the limit.
    #[error("decoded body larger than {0} bytes")]
    TooLarge(u64),
    /// A coding lacquer does not decode.
    #[error("content coding {0:?} is not decoded")]
    Unsupported(Coding),
}

/// Decodes `data` of `coding`, producing at most `limit` bytes.
pub fn decode(coding: Coding, data: &[u8], limit: u64) -> Result<Bytes, DecodeError> {
    match coding {
        Coding::Gzip => Ok(gunzip(data, limit)?),
        Coding::Br => read_bounded(
            Coding::Br,
            brotli_decompressor::Decompressor::new(data, 4096),
            data.len(),
            limit,
        ),
        Coding::Zstd => {
            let d = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| DecodeError::Invalid(Coding::Zstd, e.to_string()))?;
            read_bounded(Coding::Zstd, d, data.len(), limit)
        }
        Coding::Identity => Ok(Bytes::copy_from_slice(data)),
        Coding::Other => Err(DecodeError::Unsupported(coding)),
    }
}

/// All `reader` decodes, refusing more than `limit` bytes.
fn read_bounded(
    coding: Coding,
    reader: impl std::io::Read,
    coded_len: usize,
    limit: u64,
) -> Result<Bytes, DecodeError> {
    use std::io::Read;
    let guess = coded_len.saturating_mul(4);
    let mut out = Vec::with_capacity(usize::try_from(limit).map_or(guess, |l| guess.min(l)));
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid(coding, e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// [`decode`], on the blocking pool unless `data` is small (as
/// [`crate::http::gzip::gunzip_off_worker`]).
pub async fn decode_off_worker(
    coding: Coding,
    data: Bytes,
    limit: u64,
) -> Result<Bytes, DecodeError> {
    if data.len() <= INLINE_MAX {
        return decode(coding, &data, limit);
    }
    tokio::task::spawn_blocking(move || decode(coding, &data, limit))
        .await
        .map_err(|_| DecodeError::Gzip(GunzipError::Task))?
}

/// A coding lacquer compresses bodies with, and how hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// gzip (flate2's pure-Rust deflate) at a level, 1 (fastest) to 9.
    Gzip(u32),
    /// brotli (the `brotli` crate) at a quality, 0 (fastest) to 11.
    Br(u32),
    /// zstd (ruzstd's encoder, its one level: about `zstd -1`).
    Zstd,
}

/// brotli's window for a body of `len` bytes: the smallest that holds it
/// (a larger one costs memory, not ratio), from 256 KiB (below, quality 5
/// switches to a hasher of 33 MiB) to 4 MiB (the format's usual most;
/// what decoders must hold). Encoding 16 KiB at quality 5 then peaks at
/// 1.9 MiB instead of 9.5, 1 MiB at 9 MiB instead of 15 (measured with a
/// counting allocator).
fn brotli_lgwin(len: usize) -> i32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(18, 22) as i32
}

impl Encoder {
    /// The coding it produces.
    pub fn coding(self) -> Coding {
        match self {
            Encoder::Gzip(_) => Coding::Gzip,
            Encoder::Br(_) => Coding::Br,
            Encoder::Zstd => Coding::Zstd,
        }
    }

    /// Its `Content-Encoding` value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.coding().token())
    }

    /// Bodies up to this size are compressed on the calling (async
    /// worker) thread, a fraction of a millisecond of CPU (measured,
    /// benches/compression.rs: gzip-6 ~70 MiB/s, br-5 ~27 MiB/s, ruzstd
    /// ~80 MiB/s); larger ones go to the blocking pool.
    pub fn inline_max(self) -> usize {
        match self {
            Encoder::Gzip(_) => GZIP_INLINE_MAX,
            Encoder::Br(q) if q <= 5 => 4 << 10,
            // Slower qualities: never on the worker.
            Encoder::Br(_) => 0,
            Encoder::Zstd => 16 << 10,
        }
    }

    /// `data` compressed. `None` only if the encoder failed (it writes to
    /// memory: it should not).
    pub fn encode(self, data: &[u8]) -> Option<Bytes> {
        match self {
            Encoder::Gzip(level) => Some(gzip(data, level)),
            Encoder::Br(quality) => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: quality.min(11) as i32,
                    lgwin: brotli_lgwin(data.len()),
                    size_hint: data.len(),
                    ..Default::default()
                };
                let mut out = Vec::with_capacity(data.len() / 4 + 64);
                brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
                Some(Bytes::from(out))
            }
            Encoder::Zstd => Some(Bytes::from(ruzstd::encoding::compress_to_vec(
                data,
                ruzstd::encoding::CompressionLevel::Fastest,
            ))),
        }
    }

    /// [`Encoder::encode`], on the blocking pool for bodies over
    /// [`Encoder::inline_max`].
    pub async fn encode_off_worker(self, data: Bytes) -> Option<Bytes> {
        if data.len() <= self.inline_max() {
            return self.encode(&data);
        }
        tokio::task::spawn_blocking(move || self.encode(&data))
            .await
            .ok()
            .flatten()
    }
}

/// gzip of `data` at `level` (1–9).
pub fn gzip(data: &[u8], level: u32) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::new(level.clamp(1, 9)),
    );
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    Bytes::from(e.finish().unwrap_or_default())
}

/// gzip'd bodies up to this size are compressed on the calling (async
/// worker) thread: about 0.2 ms of CPU at level 6.
pub const GZIP_INLINE_MAX: usize = 32 << 10;

/// A body gzip'd as it streams: each chunk is compressed and flushed (a
/// sync flush, so what arrived can be sent at once), the end closes the
/// stream. gzip only, whatever is stored: a streaming brotli encoder holds
/// about 9 MiB (quality 5, 4 MiB window) against gzip's 0.35 MiB, for every
/// client of a miss at once (benches/README.md, "Encoders"); ruzstd's
/// cannot flush part of a stream.
pub struct StreamGzip {
    inner: flate2::write::GzEncoder<Vec<u8>>,
}

impl StreamGzip {
    /// An encoder at `level` (1–9).
    pub fn new(level: u32) -> StreamGzip {
        StreamGzip {
            inner: flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(1, 9)),
            ),
        }
    }

    /// Compresses `chunk`: the bytes that can go out now.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        // Writing to a Vec cannot fail.
        let _ = self.inner.write_all(chunk);
        let _ = self.inner.flush();
        Bytes::from(std::mem::take(self.inner.get_mut()))
    }

    /// The end of the body: the stream's last bytes (its trailer).
    pub fn finish(&mut self) -> Bytes {
        let _ = self.inner.try_finish();
        Bytes::from(std::mem::take(self.inner.get_mut()))
    }
}

/// A coded body decoded as it arrives, at most `limit` bytes out: gzip
/// as each chunk comes; `br` and `zstd` once the body is complete (their
/// decoders read, they cannot be fed).
pub struct StreamDecoder {
    kind: DecoderKind,
    produced: u64,
    limit: u64,
}

enum DecoderKind {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Whole(Coding, Vec<u8>),
}

impl StreamDecoder {
    /// A decoder of `coding` stopping past `limit` decoded bytes.
    pub fn new(coding: Coding, limit: u64) -> StreamDecoder {
        let kind = match coding {
            Coding::Gzip => {
                DecoderKind::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            other => DecoderKind::Whole(other, Vec::new()),
        };
        StreamDecoder {
            kind,
            produced: 0,
            limit,
        }
    }

    /// Decodes `chunk`: the bytes it completes (maybe none).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, DecodeError> {
        match &mut self.kind {
            DecoderKind::Gzip(d) => {
                d.write_all(chunk)
                    .map_err(|e| DecodeError::Gzip(GunzipError::Invalid(e)))?;
                let out = std::mem::take(d.get_mut());
                self.count(out)
            }
            DecoderKind::Whole(_, buf) => {
                // Coded bytes never outnumber decoded ones by much: the
                // decoded limit bounds what is held.
                if (buf.len() + chunk.len()) as u64 > self.limit {
                    return Err(DecodeError::TooLarge(self.limit));
                }
                buf.extend_from_slice(chunk);
                Ok(Bytes::new())
            }
        }
    }

    /// The end of the input: the last bytes; an error if the stream was
    /// cut short or does not decode.
    pub fn finish(&mut self) -> Result<Bytes, DecodeError> {
        match &mut self.kind {
            DecoderKind::Gzip(d) => {
                d.try_finish()
                    .map_err(|e| DecodeError::Gzip(GunzipError::Invalid(e)))?;
                let out = std::mem::take(d.get_mut());
                self.count(out)
            }
            DecoderKind::Whole(coding, buf) => decode(*coding, &std::mem::take(buf), self.limit),
        }
    }

    fn count(&mut self, out: Vec<u8>) -> Result<Bytes, DecodeError> {
        self.produced += out.len() as u64;
        if self.produced > self.limit {
            return Err(DecodeError::Gzip(GunzipError::TooLarge(self.limit)));
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_support::headers as map;

    #[test]
    fn accept_encoding_with_q_values_and_star() {
        let a = |v: &str| Accepted::of(&map(&[("accept-encoding", v)]));
        assert!(a("gzip, deflate, br").allows(Coding::Gzip));
        assert!(a("GZIP;q=0.5").allows(Coding::Gzip));
        assert!(!a("gzip;q=0").allows(Coding::Gzip));
        assert!(!a("gzip; q=0.000, br").allows(Coding::Gzip));
        assert!(a("*").allows(Coding::Zstd));
        assert!(!a("*, gzip;q=0").allows(Coding::Gzip));
        assert!(!a("").allows(Coding::Gzip));
        assert!(!Accepted::of(&HeaderMap::new()).allows(Coding::Gzip));
        assert!(a("").allows(Coding::Identity));
        assert!(a("x-gzip").allows(Coding::Gzip));
    }

    #[test]
    fn requests_normalise_to_what_lacquer_decodes() {
        let h = map(&[("accept-encoding", "zstd, br;q=1.0, GZIP;q=0.8, deflate")]);
        assert_eq!(normal_accept_encoding(&h).unwrap(), "gzip, br, zstd");
        let h = map(&[("accept-encoding", "br, deflate")]);
        assert_eq!(normal_accept_encoding(&h).unwrap(), "br");
        let h = map(&[("accept-encoding", "deflate, compress")]);
        assert!(normal_accept_encoding(&h).is_none());
    }

    /// `data` as brotli uncompressed meta-blocks (RFC 7932 §9.2): window
    /// bits 16, one meta-block of raw bytes, then an empty last one.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        assert!(!data.is_empty() && data.len() <= 1 << 16);
        let header = ((data.len() as u32 - 1) << 4) | (1 << 20);
        let mut out = header.to_le_bytes()[..3].to_vec();
        out.extend_from_slice(data);
        out.push(0x03);
        out
    }

    #[test]
    fn brotli_and_zstd_decode_whole_and_streamed_within_the_limit() {
        let text = b"lacquer decodes br and zstd for clients without them".repeat(20);
        let br = brotli_stored(&text);
        assert_eq!(&decode(Coding::Br, &br, 1 << 20).unwrap()[..], &text[..]);
        assert!(matches!(
            decode(Coding::Br, &br, 10),
            Err(DecodeError::TooLarge(10))
        ));
        assert!(decode(Coding::Br, b"\xffnot brotli", 1 << 20).is_err());
        let zst = ruzstd::encoding::compress_to_vec(
            &text[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(&decode(Coding::Zstd, &zst, 1 << 20).unwrap()[..], &text[..]);
        assert!(decode(Coding::Zstd, b"not zstd", 1 << 20).is_err());
        let mut d = StreamDecoder::new(Coding::Zstd, 1 << 20);
        for c in zst.chunks(7) {
            assert!(d.push(c).unwrap().is_empty(), "zstd waits for the end");
        }
        assert_eq!(&d.finish().unwrap()[..], &text[..]);
    }

    #[test]
    fn codings_of_responses() {
        assert_eq!(Coding::of(&HeaderMap::new()), Coding::Identity);
        assert_eq!(
            Coding::of(&map(&[("content-encoding", "x-gzip")])),
            Coding::Gzip
        );
        assert_eq!(Coding::of(&map(&[("content-encoding", "br")])), Coding::Br);
        assert_eq!(
            Coding::of(&map(&[
                ("content-encoding", "gzip"),
                ("content-encoding", "br")
            ])),
            Coding::Other
        );
        assert_eq!(
            Coding::of(&map(&[("content-encoding", "deflate")])),
            Coding::Other
        );
    }

    #[test]
    fn vary_and_etag() {
        let mut h = map(&[("vary", "Cookie"), ("etag", "\"a\"")]);
        vary_on_accept_encoding(&mut h);
        vary_on_accept_encoding(&mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 2);
        weaken_etag(&mut h);
        weaken_etag(&mut h);
        assert_eq!(h.get(ETAG).unwrap(), "W/\"a\"");
    }

    #[test]
    fn gzip_round_trips_whole_and_streamed() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_string().into_bytes())
            .collect();
        let z = gzip(&text, 6);
        assert!(z.len() < text.len() / 2);
        assert_eq!(&decode(Coding::Gzip, &z, 1 << 20).unwrap()[..], &text[..]);
        let mut d = StreamDecoder::new(Coding::Gzip, 1 << 20);
        let mut out = Vec::new();
        for c in z.chunks(100) {
            out.extend_from_slice(&d.push(c).unwrap());
        }
        out.extend_from_slice(&d.finish().unwrap());
        assert_eq!(out, text);
        let mut small = StreamDecoder::new(Coding::Gzip, 1000);
        assert!(small.push(&z).is_err() || small.finish().is_err());
        let mut cut = StreamDecoder::new(Coding::Gzip, 1 << 20);
        let _ = cut.push(&z[..z.len() / 2]);
        assert!(cut.finish().is_err());
    }

    #[test]
    fn a_streamed_gzip_sends_each_chunk_at_once_and_decodes_whole() {
        let mut e = StreamGzip::new(6);
        let mut out = Vec::new();
        for part in [&b"<p>page "[..], b"fragment", b" end</p>"] {
            let sent = e.push(part);
            assert!(!sent.is_empty(), "flushed");
            out.extend_from_slice(&sent);
        }
        out.extend_from_slice(&e.finish());
        assert_eq!(
            &decode(Coding::Gzip, &out, 100).unwrap()[..],
            b"<p>page fragment end</p>"
        );
    }

    #[test]
    fn brotli_and_zstd_encode_and_decode_back() {
        let text = b"<p>lacquer stores br or zstd when asked to</p>\n".repeat(400);
        for enc in [
            Encoder::Br(5),
            Encoder::Br(0),
            Encoder::Br(11),
            Encoder::Zstd,
        ] {
            let coded = enc.encode(&text).unwrap();
            assert!(coded.len() < text.len() / 4, "{enc:?}: {}", coded.len());
            let back = decode(enc.coding(), &coded, 1 << 20).unwrap();
            assert_eq!(&back[..], &text[..], "{enc:?}");
            let empty = enc.encode(b"").unwrap();
            assert!(
                decode(enc.coding(), &empty, 10).unwrap().is_empty(),
                "{enc:?}"
            );
        }
        // Incompressible bytes round-trip too.
        let mut x = 0x9e37_79b9_u32;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for enc in [Encoder::Gzip(1), Encoder::Br(1), Encoder::Zstd] {
            let coded = enc.encode(&noise).unwrap();
            assert_eq!(
                &decode(enc.coding(), &coded, 1 << 20).unwrap()[..],
                &noise[..]
            );
        }
        assert_eq!(Encoder::Br(4).header_value(), "br");
        assert_eq!(Encoder::Zstd.header_value(), "zstd");
    }

    #[test]
    fn brotli_windows_hold_the_body_within_bounds() {
        assert_eq!(brotli_lgwin(0), 18);
        assert_eq!(brotli_lgwin(16 << 10), 18);
        assert_eq!(brotli_lgwin((256 << 10) + 1), 19);
        assert_eq!(brotli_lgwin(1 << 20), 20);
        assert_eq!(brotli_lgwin((1 << 20) + 1), 21);
        assert_eq!(brotli_lgwin(1 << 30), 22);
    }
}
