//! Field-value syntax shared by the cache and the conditional-request code:
//! optional whitespace, comma-separated lists, HTTP-dates and
//! delta-seconds (RFC 9110 §5.6, RFC 9111 §1.2.2). Headers are untrusted:
//! nothing here panics on malformed bytes.

use std::time::{Duration, SystemTime};

use ::http::header::{HeaderMap, HeaderName};

/// The largest delta-seconds value this cache represents (RFC 9111 §1.2.2):
/// bigger values, and values that overflow, are taken as 2^31 seconds.
pub const MAX_DELTA_SECONDS: u64 = 2_147_483_648;

/// The first line of a date-valued header, if it is a valid HTTP-date.
pub(crate) fn first_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| parse_http_date(v.as_bytes()))
}

/// Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime), trimming OWS.
/// Strict on the format, lenient on what is redundant (see
/// [`parse_http_date_lenient`]).
pub(crate) fn parse_http_date(bytes: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(trim_ows(bytes)).ok()?;
    httpdate::parse_http_date(s)
        .ok()
        .or_else(|| parse_http_date_lenient(s))
}

/// The HTTP-date formats with names in any case (`THU`, `AUG`, `gMT`) and a
/// weekday that does not match the date: origins get both wrong, and
/// neither changes the instant (the weekday is redundant). Everything else
/// (field widths, separators, `GMT`) stays as strict as the formats.
fn parse_http_date_lenient(s: &str) -> Option<SystemTime> {
    const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    if !s.is_ascii() {
        return None;
    }
    let canonical = canonical_case(s);
    let weekday_len = canonical
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .count();
    let rest = canonical.get(weekday_len..)?;
    let names = if weekday_len == 3 { &SHORT } else { &LONG };
    names
        .iter()
        .find_map(|w| httpdate::parse_http_date(&format!("{w}{rest}")).ok())
}

/// Each run of letters title-cased (`Thu`, `Aug`), `GMT` in capitals.
fn canonical_case(s: &str) -> String {
    fn flush(word: &mut String, out: &mut String) {
        if word.eq_ignore_ascii_case("gmt") {
            out.push_str("GMT");
        } else {
            for (i, c) in word.chars().enumerate() {
                out.push(if i == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                });
            }
        }
        word.clear();
    }
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `delta-seconds = 1*DIGIT`, clamped to [`MAX_DELTA_SECONDS`].
pub(crate) fn parse_delta_seconds(bytes: &[u8]) -> Option<Duration> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut secs: u64 = 0;
    for b in bytes {
        secs = secs
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(MAX_DELTA_SECONDS);
    }
    Some(Duration::from_secs(secs))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strip leading and trailing spaces and tabs.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Split a comma-separated list at commas outside quoted strings (a
/// backslash inside a quoted string escapes the next byte). An iterator:
/// fields are split on every request (Accept-Encoding, Cache-Control,
/// Vary), and a `Vec` per field was an allocation each time.
pub(crate) fn split_list(s: &[u8]) -> ListMembers<'_> {
    ListMembers { rest: Some(s) }
}

/// The members of a comma-separated list ([`split_list`]), empty ones
/// included; at least one (the whole of an empty list).
pub(crate) struct ListMembers<'a> {
    /// What is left to split; `None` once the last member was given.
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for ListMembers<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        // Most lists hold no quoted string: straight to the next comma.
        match s.iter().position(|&b| b == b',' || b == b'"') {
            None => {
                self.rest = None;
                return Some(s);
            }
            Some(i) if s[i] == b',' => {
                self.rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
            Some(_) => {}
        }
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == b',' {
                self.rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        self.rest = None;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_at_commas_outside_quotes() {
        let split = |s: &str| -> Vec<String> {
            split_list(s.as_bytes())
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect()
        };
        assert_eq!(split("gzip, br"), ["gzip", " br"]);
        assert_eq!(split(""), [""]);
        assert_eq!(split("a,"), ["a", ""]);
        assert_eq!(split(",,"), ["", "", ""]);
        assert_eq!(split(r#"no-cache="a, b", x"#), [r#"no-cache="a, b""#, " x"]);
        assert_eq!(split(r#"x="a\", b", c"#), [r#"x="a\", b""#, " c"]);
        assert_eq!(split(r#"x="open, y"#), [r#"x="open, y"#]);
    }

    #[test]
    fn dates_with_wrong_case_or_weekday_are_read_other_errors_are_not() {
        let want = parse_http_date(b"Thu, 18 Aug 2050 02:01:18 GMT").unwrap();
        for ok in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
            "Mon, 18 Aug 2050 02:01:18 GMT",
            "Thursday, 18-Aug-50 02:01:18 GMT",
            "Mon Aug 18 02:01:18 2050",
        ] {
            assert_eq!(parse_http_date(ok.as_bytes()), Some(want), "{ok}");
        }
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
            "Thu, 31 Feb 2050 02:01:18 GMT",
            "0",
        ] {
            assert_eq!(parse_http_date(bad.as_bytes()), None, "{bad}");
        }
    }
}
