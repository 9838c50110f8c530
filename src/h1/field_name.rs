//! Field names read off the wire, resolved to [`HeaderName`]s: the common
//! ones from a table without building them, the rest by `http`.
//!
//! `HeaderName::from_bytes` lowercases every name through a table into a
//! scratch buffer, then matches it against all standard names, and copies
//! a name it does not know into a new allocation: ~125 instructions a
//! field under callgrind, paid for each field of every request and every
//! backend response. The names almost every message carries are looked
//! up here by length and compared eight bytes at a time.

use http::header::{self, HeaderName, InvalidHeaderName};

/// The name `bytes` spells, in any case; an error when it is not a valid
/// field name.
pub fn field_name(bytes: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    match known(bytes) {
        Some(name) => Ok(name.clone()),
        None => HeaderName::from_bytes(bytes),
    }
}

/// The common names, lowercase, by length. Not in `http`'s standard set
/// (`X-Forwarded-For`, `Surrogate-Control`, …): statics, so that a clone
/// shares the text instead of copying it.
static LEN_2: [HeaderName; 1] = [header::TE];
static LEN_3: [HeaderName; 2] = [header::AGE, header::DNT];
static LEN_4: [HeaderName; 4] = [header::HOST, header::DATE, header::ETAG, header::VARY];
static LEN_5: [HeaderName; 1] = [header::RANGE];
static LEN_6: [HeaderName; 5] = [
    header::ACCEPT,
    header::COOKIE,
    header::SERVER,
    header::ORIGIN,
    header::PRAGMA,
];
static LEN_7: [HeaderName; 4] = [
    header::EXPIRES,
    header::REFERER,
    header::UPGRADE,
    header::TRAILER,
];
static LEN_10: [HeaderName; 4] = [
    header::USER_AGENT,
    header::CONNECTION,
    header::SET_COOKIE,
    HeaderName::from_static("keep-alive"),
];
static LEN_12: [HeaderName; 1] = [header::CONTENT_TYPE];
static LEN_13: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::LAST_MODIFIED,
    header::IF_NONE_MATCH,
    header::ACCEPT_RANGES,
    header::AUTHORIZATION,
    header::CONTENT_RANGE,
    HeaderName::from_static("surrogate-key"),
];
static LEN_14: [HeaderName; 2] = [header::CONTENT_LENGTH, header::ACCEPT_CHARSET];
static LEN_15: [HeaderName; 4] = [
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    HeaderName::from_static("x-forwarded-for"),
    header::X_FRAME_OPTIONS,
];
static LEN_16: [HeaderName; 2] = [header::CONTENT_ENCODING, header::CONTENT_LANGUAGE];
static LEN_17: [HeaderName; 3] = [
    header::TRANSFER_ENCODING,
    header::IF_MODIFIED_SINCE,
    HeaderName::from_static("surrogate-control"),
];
static LEN_25: [HeaderName; 2] = [
    header::UPGRADE_INSECURE_REQUESTS,
    header::STRICT_TRANSPORT_SECURITY,
];

/// The table's entry for `bytes`, if any.
fn known(bytes: &[u8]) -> Option<&'static HeaderName> {
    let candidates: &'static [HeaderName] = match bytes.len() {
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
        .find(|name| folded_eq(bytes, name.as_str().as_bytes()))
}

/// Whether `bytes` is `lower` in some case, for `bytes` of `lower`'s
/// length and `lower` made of lowercase letters, digits and `-`.
///
/// Bit 5 is set in a byte of `bytes` only where `lower` has a letter
/// (letters have bit 6 set, digits and `-` do not): that lowercases a
/// letter, and a digit or `-` must match as it is.
fn folded_eq(bytes: &[u8], lower: &[u8]) -> bool {
    const LETTER: u64 = 0x4040_4040_4040_4040;
    let mut a = bytes.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in a.by_ref().zip(b.by_ref()) {
        let y = word(y);
        if word(x) | ((y & LETTER) >> 1) != y {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | ((y & 0x40) >> 1) == *y)
}

/// Eight bytes as one word.
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [&[HeaderName]; 14] = [
        &LEN_2, &LEN_3, &LEN_4, &LEN_5, &LEN_6, &LEN_7, &LEN_10, &LEN_12, &LEN_13, &LEN_14,
        &LEN_15, &LEN_16, &LEN_17, &LEN_25,
    ];

    #[test]
    fn every_table_name_is_found_in_any_case_and_sits_under_its_length() {
        for table in TABLES {
            for name in table {
                let text = name.as_str();
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
