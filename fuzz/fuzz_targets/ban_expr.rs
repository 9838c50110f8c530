//! `lacquer::invalidate::ban_expr::BanExpr::parse` on arbitrary strings.
//! When it parses: the canonical form parses again to an equal expression
//! with the same canonical form (unless the canonical form is longer than
//! `MAX_LEN`), and `matches` runs against a few targets.
#![no_main]

use lacquer::invalidate::ban_expr::{BanExpr, BanTarget, MAX_LEN};
use libfuzzer_sys::fuzz_target;

struct Target {
    url: &'static str,
    status: u16,
    full: bool,
}

impl BanTarget for Target {
    fn url(&self) -> &str {
        self.url
    }
    fn req_header(&self, name: &str) -> Option<&str> {
        if !self.full {
            return None;
        }
        match name {
            "host" => Some("www.example.com"),
            "cookie" => Some("id=1"),
            _ => Some(""),
        }
    }
    fn status(&self) -> u16 {
        self.status
    }
    fn obj_header(&self, name: &str) -> Option<&str> {
        if !self.full {
            return None;
        }
        match name {
            "content-type" => Some("text/html; charset=utf-8"),
            "surrogate-key" => Some("a b c"),
            _ => Some("\u{e9}t\u{e9}"),
        }
    }
}

const TARGETS: [Target; 3] = [
    Target {
        url: "/products/42?color=red",
        status: 200,
        full: true,
    },
    Target {
        url: "",
        status: 0,
        full: false,
    },
    Target {
        url: "/\u{1F600}/x.png",
        status: 999,
        full: true,
    },
];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match BanExpr::parse(s) {
        Ok(e) => {
            for t in &TARGETS {
                let _ = e.matches(t);
            }
            let _ = e.lurker_friendly();
            let canonical = e.canonical();
            if canonical.len() <= MAX_LEN {
                let again = match BanExpr::parse(canonical) {
                    Ok(a) => a,
                    Err(err) => panic!("canonical {canonical:?} of {s:?} does not parse: {err}"),
                };
                assert_eq!(again, e, "canonical form of {s:?} re-parses differently");
                assert_eq!(again.canonical(), canonical);
                assert_eq!(again.lurker_friendly(), e.lurker_friendly());
                for t in &TARGETS {
                    assert_eq!(again.matches(t), e.matches(t), "{canonical:?}");
                }
            }
        }
        Err(err) => {
            assert!(
                err.column >= 1 && err.column <= s.chars().count() + 1,
                "column {} out of range for {s:?}",
                err.column
            );
            let _ = err.to_string();
        }
    }
});
