//! `lacquer::fetch::h1::read_response`: a backend's answer as lacquer's own
//! HTTP/1.1 client reads it (head, framing, chunked decoding), the input cut
//! into two reads at a point the first byte chooses, for a GET or a HEAD
//! (second byte). Checked besides no panic: the same result whatever the
//! cut; the body is never longer than the input; a body framed by length
//! that ended has exactly that length; a HEAD answer has no body.
#![no_main]

use lacquer::fetch::h1::{read_response, Limits, ReadResponse};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_head: 4096,
    max_headers: 20,
};

/// What a read came to, comparable across cuts.
fn outcome(r: &Result<Option<ReadResponse>, lacquer::fetch::h1::H1Error>) -> String {
    match r {
        Err(e) => format!("error {e}"),
        Ok(None) => "incomplete head".into(),
        Ok(Some(r)) => {
            let body: Vec<u8> = r.body.iter().flat_map(|b| b.iter().copied()).collect();
            format!("{} {:?} {} {:?}", r.head.response.status(), r.head.response.headers(), r.ended, body)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [cut, method, wire @ ..] = data else {
        return;
    };
    let method = if method & 1 == 0 { http::Method::GET } else { http::Method::HEAD };
    let cut = usize::from(*cut) * wire.len() / 255;
    let whole = read_response(&[wire], &method, LIMITS);
    let split = read_response(&[&wire[..cut], &wire[cut..]], &method, LIMITS);
    if let Ok(Some(r)) = &split {
        let len: usize = r.body.iter().map(|b| b.len()).sum();
        assert!(len <= wire.len());
        if method == http::Method::HEAD {
            assert_eq!(len, 0);
        }
        let declared = r.head.response.headers().get(http::header::CONTENT_LENGTH);
        let chunked = r.head.response.headers().contains_key(http::header::TRANSFER_ENCODING);
        if let (Some(n), false, true) = (declared, chunked, r.ended) {
            if method == http::Method::GET && !matches!(r.head.response.status().as_u16(), 100..=199 | 204 | 304) {
                assert_eq!(n.to_str().ok().and_then(|n| n.split(',').next()?.trim().parse::<usize>().ok()), Some(len));
            }
        }
    }
    // A head cut in two may be refused as too large only when whole it
    // would be too (the limit is on the buffered bytes); otherwise the
    // cut changes nothing.
    let (w, s) = (outcome(&whole), outcome(&split));
    if !w.contains("max_response_head") && !s.contains("max_response_head") {
        assert_eq!(w, s);
    }
});
