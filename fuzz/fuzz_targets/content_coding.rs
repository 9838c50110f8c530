//! Content codings on arbitrary bytes: `Accepted::of` and the request's
//! normalisation (`ReqFields::normalise_accept_encoding`) on the input as
//! an `Accept-Encoding` value, and the
//! gzip, br and zstd decoders (whole, and streamed in pieces) on it as a
//! body, under a 1 MiB limit; and the encoders (whole, and gzip streamed
//! in pieces) round-trip it through those decoders.
#![no_main]

use http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING};
use lacquer::http::coding::{decode, Accepted, Coding, Encoder, StreamDecoder, StreamGzip};
use lacquer::http::req_fields::ReqFields;
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, v);
        let accepted = Accepted::of(&h);
        let mut f = ReqFields::new(h);
        f.normalise_accept_encoding();
        // Normalising keeps what was accepted, and is idempotent.
        let again = Accepted::of(&f);
        for c in [Coding::Gzip, Coding::Br, Coding::Zstd] {
            assert_eq!(accepted.allows(c), again.allows(c), "{c:?}");
        }
        let once = f.to_map();
        f.normalise_accept_encoding();
        assert_eq!(once, f.to_map());
    }
    for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
        let whole = decode(coding, data, LIMIT);
        if let Ok(b) = &whole {
            assert!(b.len() as u64 <= LIMIT);
        }
        let mut d = StreamDecoder::new(coding, LIMIT);
        let mut out = 0u64;
        let mut failed = false;
        for piece in data.chunks(7) {
            match d.push(piece) {
                Ok(b) => out += b.len() as u64,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            if let Ok(b) = d.finish() {
                out += b.len() as u64;
                assert!(out <= LIMIT);
            }
        }
    }
    if data.len() as u64 > LIMIT {
        return;
    }
    // Cheap levels: the property is the round trip, not the ratio.
    for enc in [Encoder::Gzip(1), Encoder::Br(1), Encoder::Zstd] {
        let coded = enc.encode(data).expect("encoding to memory");
        let back = decode(enc.coding(), &coded, LIMIT).expect("own output decodes");
        assert_eq!(&back[..], data, "{enc:?}");
    }
    let mut stream = StreamGzip::new(1);
    let mut streamed = Vec::new();
    for piece in data.chunks(100) {
        streamed.extend_from_slice(&stream.push(piece));
    }
    streamed.extend_from_slice(&stream.finish());
    let back = decode(Coding::Gzip, &streamed, LIMIT).expect("streamed gzip decodes");
    assert_eq!(&back[..], data, "streamed gzip");
});
