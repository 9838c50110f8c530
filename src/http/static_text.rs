//! Header names and values a policy names, made `'static` once so that
//! putting them in a message costs no reference count.
//!
//! A `HeaderName` or `HeaderValue` made from text at run time holds shared
//! bytes: every clone and every drop is an atomic operation on one counter.
//! A policy's `set req.http.X-Device = "mobile";` clones its kept name and
//! value into every request, on every worker, so that counter's cache line
//! moves between the cores on each request: `perf` showed the clone and the
//! drop at ~3% of the server's cycles under `production.vcl` for a dozen
//! instructions each. A name or value made from `&'static str` clones and
//! drops without touching memory.
//!
//! The texts are kept for the process's life, each distinct text once
//! (reloading the same policy keeps nothing new), up to [`LIMIT`] bytes in
//! all; past it, names and values are made the shared way.

use http::{HeaderName, HeaderValue};
use std::collections::HashSet;
use std::sync::Mutex;

/// Bytes of text kept at most (policies name a few hundred bytes of header
/// names and literals; this allows thousands of distinct reloads).
pub const LIMIT: usize = 1 << 20;

struct Kept {
    texts: HashSet<&'static str>,
    bytes: usize,
}

static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

/// `text` kept for the process's life; `None` once [`LIMIT`] is reached.
fn keep(text: &str) -> Option<&'static str> {
    let mut guard = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let kept = guard.get_or_insert_with(|| Kept {
        texts: HashSet::new(),
        bytes: 0,
    });
    if let Some(found) = kept.texts.get(text) {
        return Some(found);
    }
    if kept.bytes + text.len() > LIMIT {
        return None;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    kept.bytes += leaked.len();
    kept.texts.insert(leaked);
    Some(leaked)
}

/// `name` as a header name (any case); `None` when it is not one.
pub fn header_name(name: &str) -> Option<HeaderName> {
    let parsed = HeaderName::from_bytes(name.as_bytes()).ok()?;
    // `from_static` takes the lower-case form only (and panics on others):
    // the parsed name's own text is that form.
    match keep(parsed.as_str()) {
        Some(text) => Some(HeaderName::from_static(text)),
        None => Some(parsed),
    }
}

/// `text` as a header value; `None` when a header may not hold it.
pub fn header_value(text: &str) -> Option<HeaderValue> {
    let parsed = HeaderValue::from_str(text).ok()?;
    // `from_static` takes visible ASCII and tabs only (and panics on
    // others); a value with other bytes (obs-text) stays shared.
    let visible = text
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    match keep(text).filter(|_| visible) {
        Some(text) => Some(HeaderValue::from_static(text)),
        None => Some(parsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_lower_cased_and_equal_to_parsed_ones() {
        let name = header_name("X-Device").expect("a header name");
        assert_eq!(name, HeaderName::from_static("x-device"));
        assert_eq!(name.as_str(), "x-device");
        // A standard name is the standard one.
        assert_eq!(
            header_name("Content-Type").expect("a name"),
            http::header::CONTENT_TYPE
        );
        assert!(header_name("").is_none());
        assert!(header_name("bad name").is_none());
        assert!(header_name("x-\u{e9}").is_none());
    }

    #[test]
    fn values_are_those_parsed() {
        assert_eq!(header_value("mobile").expect("a value"), "mobile");
        assert_eq!(header_value("a\tb").expect("a value"), "a\tb");
        assert_eq!(header_value("").expect("a value"), "");
        assert!(header_value("a\nb").is_none());
        assert!(header_value("a\u{7f}").is_none());
        // obs-text is a valid value, kept the shared way.
        let v = header_value("caf\u{e9}").expect("a value");
        assert_eq!(v.as_bytes(), "caf\u{e9}".as_bytes());
    }

    /// One test, as the budget is the process's: a text is kept once,
    /// and past the limit names and values are still made.
    #[test]
    fn texts_are_kept_once_up_to_the_limit() {
        let a = keep("kept-once-check").expect("room");
        let b = keep("kept-once-check").expect("room");
        assert!(std::ptr::eq(a, b));
        let mut i = 0;
        while keep(&format!("x-filler-{i:0>200}")).is_some() {
            i += 1;
        }
        assert!(i > 1000, "{i}");
        // Longer than a filler: no room is left for it.
        assert!(keep(&"y".repeat(300)).is_none());
        // What was kept before the limit is still found.
        assert!(std::ptr::eq(keep("kept-once-check").expect("kept"), a));
        let name = header_name("X-After-The-Limit").expect("a header name");
        assert_eq!(name.as_str(), "x-after-the-limit");
        assert_eq!(
            header_value("after the limit").expect("a value"),
            "after the limit"
        );
    }
}
