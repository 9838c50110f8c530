//! `lacquer::esi::vars::parse_expr` + `Expr::eval` on arbitrary strings,
//! against a request with every variable set and one with none; also
//! `parse_vars` + `render` on the same text, and each variable's `Display`
//! form parsing back to itself.
#![no_main]

use lacquer::esi::vars::{parse_expr, parse_vars, render, RequestView, VarPart};
use libfuzzer_sys::fuzz_target;

struct Full;

impl RequestView for Full {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "cookie" => Some("id=42; theme=dark; n=3.5; empty=; a=b=c"),
            "host" => Some("www.example.com"),
            "referer" => Some("-1"),
            "user-agent" => Some("Mozilla/5.0 (fuzz)"),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        Some("q=shoes&lang=en&flag&n=-12.5&big=99999999999999999999999")
    }
}

struct Empty;

impl RequestView for Empty {
    fn header(&self, _: &str) -> Option<&str> {
        None
    }
    fn query(&self) -> Option<&str> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_expr(s) {
        Ok(e) => {
            let _ = e.eval(&Full);
            let _ = e.eval(&Empty);
        }
        Err(msg) => assert!(!msg.is_empty()),
    }
    let parts = parse_vars(s);
    let _ = render(&parts, &Full);
    let _ = render(&parts, &Empty);
    for p in &parts {
        match p {
            VarPart::Var(v) => {
                let written = v.to_string();
                assert_eq!(
                    parse_vars(&written),
                    vec![VarPart::Var(v.clone())],
                    "{written:?} does not parse back"
                );
            }
            VarPart::Text(t) => assert!(!t.is_empty(), "empty text part"),
        }
    }
    // Adjacent text parts are merged.
    assert!(
        !parts
            .windows(2)
            .any(|w| matches!(w, [VarPart::Text(_), VarPart::Text(_)])),
        "adjacent text parts"
    );
});
