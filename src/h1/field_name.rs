//! Field names read off the wire, resolved to [`HeaderName`]s: the common
//! ones from a table without building them, the rest by `http`.
//!
//! `HeaderName::from_bytes` lowercases every name through a table into a
//! scratch buffer, then matches it against all standard names, and copies
//! a name it does not know into a new allocation: ~150 instructions a
//! field under callgrind, paid for each field of every request and every
//! backend response. The names almost every message carries are looked
//! up here by length and compared eight bytes at a time (~70).

use http::header::{self, HeaderName, InvalidHeaderName};

/// The name `bytes` spells, in any case; an error when it is not a valid
/// field name.
pub fn field_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    match known(bytes) {
        Some(name) => Ok(name.clone()),
        None => HeaderName::from_bytes(bytes),
    }
}

/// A common name: its lowercase text (the same as `name.as_str()`, kept
/// beside it so that a comparison reads no table), and the name.
type Known = (&'static [u8], HeaderName);

/// The common names, by length. Those not in `http`'s standard set
/// (`X-Forwarded-For`, `Surrogate-Control`, …) are statics, so that a
/// clone shares the text instead of copying it.
static LEN_2: [Known; 1] = [(b"te", header::TE)];
static LEN_3: [Known; 2] = [(b"age", header::AGE), (b"dnt", header::DNT)];
static LEN_4: [Known; 4] = [
    (b"host", header::HOST),
    (b"date", header::DATE),
    (b"etag", header::ETAG),
    (b"vary", header::VARY),
];
static LEN_5: [Known; 1] = [(b"range", header::RANGE)];
static LEN_6: [Known; 5] = [
    (b"accept", header::ACCEPT),
    (b"cookie", header::COOKIE),
    (b"server", header::SERVER),
    (b"origin", header::ORIGIN),
    (b"pragma", header::PRAGMA),
];
static LEN_7: [Known; 4] = [
    (b"expires", header::EXPIRES),
    (b"referer", header::REFERER),
    (b"upgrade", header::UPGRADE),
    (b"trailer", header::TRAILER),
];
static LEN_10: [Known; 4] = [
    (b"user-agent", header::USER_AGENT),
    (b"connection", header::CONNECTION),
    (b"set-cookie", header::SET_COOKIE),
    (b"keep-alive", HeaderName::from_static("keep-alive")),
];
static LEN_12: [Known; 1] = [(b"content-type", header::CONTENT_TYPE)];
static LEN_13: [Known; 7] = [
    (b"cache-control", header::CACHE_CONTROL),
    (b"last-modified", header::LAST_MODIFIED),
    (b"if-none-match", header::IF_NONE_MATCH),
    (b"accept-ranges", header::ACCEPT_RANGES),
    (b"authorization", header::AUTHORIZATION),
    (b"content-range", header::CONTENT_RANGE),
    (b"surrogate-key", HeaderName::from_static("surrogate-key")),
];
static LEN_14: [Known; 2] = [
    (b"content-length", header::CONTENT_LENGTH),
    (b"accept-charset", header::ACCEPT_CHARSET),
];
static LEN_15: [Known; 4] = [
    (b"accept-encoding", header::ACCEPT_ENCODING),
    (b"accept-language", header::ACCEPT_LANGUAGE),
    (
        b"x-forwarded-for",
        HeaderName::from_static("x-forwarded-for"),
    ),
    (b"x-frame-options", header::X_FRAME_OPTIONS),
];
static LEN_16: [Known; 2] = [
    (b"content-encoding", header::CONTENT_ENCODING),
    (b"content-language", header::CONTENT_LANGUAGE),
];
static LEN_17: [Known; 3] = [
    (b"transfer-encoding", header::TRANSFER_ENCODING),
    (b"if-modified-since", header::IF_MODIFIED_SINCE),
    (
        b"surrogate-control",
        HeaderName::from_static("surrogate-control"),
    ),
];
static LEN_25: [Known; 2] = [
    (
        b"upgrade-insecure-requests",
        header::UPGRADE_INSECURE_REQUESTS,
    ),
    (
        b"strict-transport-security",
        header::STRICT_TRANSPORT_SECURITY,
    ),
];

/// The table's entry for `bytes`, if any.
fn known(bytes: &[u8]) -> Option<&'static HeaderName> {
    let candidates: &'static [Known] = match bytes.len() {
        2 => &LEN_2,
        3 => &LEN_3,
        4 => &LEN_4,
        5 => &LEN_5,
        6 => &LEN_6,
        7 => &LEN_7,
        10 => &LEN_10,
        12 => &LEN_12,
        13 => &LEN_13,
        14 => &LEN_14,
        15 => &LEN_15,
        16 => &LEN_16,
        17 => &LEN_17,
        25 => &LEN_25,
        _ => return None,
    };
    candidates
        .iter()
        .find(|(lower, _)| folded_eq(bytes, lower))
        .map(|(_, name)| name)
}

/// Whether `bytes` is `lower` in some case, for `bytes` of `lower`'s
/// length and `lower` made of lowercase letters, digits and `-`.
///
/// Bit 5 is set in a byte of `bytes` only where `lower` has a letter
/// (letters have bit 6 set, digits and `-` do not): that lowercases a
/// letter, and a digit or `-` must match as it is. Names of eight bytes
/// or more are compared a word at a time, the last word overlapping the
/// one before it.
fn folded_eq(bytes: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if bytes.len() != n {
        return false;
    }
    if n < 8 {
        return bytes
            .iter()
            .zip(lower)
            .all(|(x, y)| x | ((y & 0x40) >> 1) == *y);
    }
    let mut at = 0;
    while at + 8 < n {
        if !word_eq(bytes, lower, at) {
            return false;
        }
        at += 8;
    }
    word_eq(bytes, lower, n - 8)
}

/// [`folded_eq`] of the eight bytes at `at`.
fn word_eq(bytes: &[u8], lower: &[u8], at: usize) -> bool {
    const LETTER: u64 = 0x4040_4040_4040_4040;
    match (word_at(bytes, at), word_at(lower, at)) {
        (Some(x), Some(y)) => x | ((y & LETTER) >> 1) == y,
        _ => false,
    }
}

/// The eight bytes at `at` as one word.
fn word_at(s: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = s.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [&[Known]; 14] = [
        &LEN_2, &LEN_3, &LEN_4, &LEN_5, &LEN_6, &LEN_7, &LEN_10, &LEN_12, &LEN_13, &LEN_14,
        &LEN_15, &LEN_16, &LEN_17, &LEN_25,
    ];

    #[test]
    fn every_table_name_is_found_in_any_case_and_sits_under_its_length() {
        for table in TABLES {
            for (lower, name) in table {
                let text = name.as_str();
                assert_eq!(text.as_bytes(), *lower);
                assert!(text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                assert_eq!(known(text.as_bytes()), Some(name), "{text}");
                let upper = text.to_ascii_uppercase();
                assert_eq!(field_name(upper.as_bytes()).ok().as_ref(), Some(name));
                let title: String = text
                    .split('-')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join("-");
                assert_eq!(field_name(title.as_bytes()).ok().as_ref(), Some(name));
            }
        }
    }

    #[test]
    fn a_name_one_byte_off_anywhere_is_not_the_table_name() {
        for table in TABLES {
            for (lower, name) in table {
                for at in 0..lower.len() {
                    let mut off = lower.to_vec();
                    off[at] = if off[at] == b'x' { b'y' } else { b'x' };
                    assert_eq!(known(&off), None, "{name} changed at {at}");
                    // A control byte one bit from the table's byte.
                    off[at] = lower[at] & !0x20;
                    if !lower[at].is_ascii_alphabetic() {
                        assert_eq!(known(&off), None, "{name} control at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn other_names_are_made_by_http_and_bad_ones_refused() {
        let name = field_name(b"X-Custom-Thing").expect("valid");
        assert_eq!(name.as_str(), "x-custom-thing");
        // One letter off, same length as a table name.
        assert_eq!(
            field_name(b"Content-Typf").expect("valid").as_str(),
            "content-typf"
        );
        assert_eq!(field_name(b"hosts").expect("valid").as_str(), "hosts");
        // Control characters one bit from a table name's `-` are not names.
        assert!(field_name(b"host\x0d").is_err());
        assert!(field_name(b"content\x0dtype").is_err());
        assert!(field_name(b"").is_err());
        assert!(field_name(b"bad name").is_err());
        // `_` folds to DEL: no table name holds it.
        assert_eq!(
            field_name(b"content_type").expect("valid").as_str(),
            "content_type"
        );
    }
}
