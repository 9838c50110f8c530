//! `lacquer::esi::parse::parse` on arbitrary bytes, with the default limits
//! and with tight ones; every include's `src`/`alt`, every `esi:vars` text
//! and every `esi:when` test is then rendered/evaluated against a dummy
//! request. Checks the documented bounds of the result as well.
#![no_main]

use bytes::Bytes;
use lacquer::esi::parse::{parse, Limits, Segment, Template};
use lacquer::esi::vars::{render, render_url, RequestView};
use libfuzzer_sys::fuzz_target;

struct Req;

impl RequestView for Req {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "cookie" => Some("id=42; theme=dark; empty=; a=b=c"),
            "host" => Some("www.example.com"),
            "referer" => Some("https://www.example.com/from?x=1"),
            "user-agent" => Some("Mozilla/5.0 (fuzz)"),
            "accept-language" => Some("da, en-GB;q=0.8, en;q=0.7, de;q=0, *;q=0.1"),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        Some("q=shoes&lang=en&flag&n=-12.5&n=7")
    }
}

/// Walks the tree (recursion is fine: the parser caps depth at 256),
/// rendering what delivery would render, and returns the try/choose depth.
fn walk(segs: &[Segment], body: &Bytes, req: &Req) -> usize {
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    let mut deepest = 0;
    for seg in segs {
        match seg {
            Segment::Literal(b) => {
                assert!(!b.is_empty(), "empty literal segment");
                let p = b.as_ptr() as usize;
                assert!(
                    range.contains(&p) && p + b.len() <= range.end,
                    "literal is not a slice of the body"
                );
            }
            Segment::Include(inc) => {
                assert!(!inc.src.is_empty(), "include with an empty src");
                let _ = render_url(&inc.src, req);
                if let Some(alt) = &inc.alt {
                    let _ = render_url(alt, req);
                }
            }
            Segment::Vars(parts) => {
                let _ = render(parts, req);
            }
            Segment::Try { attempt, except } => {
                let d = walk(attempt, body, req).max(walk(except, body, req));
                deepest = deepest.max(d + 1);
            }
            Segment::Choose { whens, otherwise } => {
                let mut d = walk(otherwise, body, req);
                for (test, segs) in whens {
                    let _ = test.eval(req);
                    d = d.max(walk(segs, body, req));
                }
                deepest = deepest.max(d + 1);
            }
        }
    }
    deepest
}

fn check(body: &Bytes, limits: &Limits) -> Template {
    let t = parse(body, limits);
    let depth = walk(&t.segments, body, &Req);
    assert!(
        depth <= limits.max_nesting.min(256),
        "tree depth {depth} exceeds max_nesting {}",
        limits.max_nesting
    );
    assert!(t.includes <= limits.max_includes, "too many includes");
    assert!(t.diagnostics.len() <= 257, "diagnostics not capped");
    for d in &t.diagnostics {
        assert!(d.offset <= body.len(), "diagnostic offset past the end");
        let _ = d.to_string();
    }
    if !body
        .windows(4)
        .any(|w| w == b"<esi" || w == b"</es" || w == b"<!--")
    {
        assert!(t.is_static(), "a page without ESI markup is not static");
    }
    t
}

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    check(&body, &Limits::default());
    check(
        &body,
        &Limits {
            max_nesting: 1,
            max_includes: 2,
        },
    );
    check(
        &body,
        &Limits {
            max_nesting: 0,
            max_includes: 0,
        },
    );
});
