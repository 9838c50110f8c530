//! Header values for small numbers without an allocation: `Age: 12` and
//! `X-Cache: HIT 3` are written on every hit, and a `HeaderValue` made
//! from a number allocates its text each time (~150 instructions with the
//! free). Below [`LIMIT`] the texts come from a table made once and kept
//! for the process's life; a value made from it is a pointer.

use http::HeaderValue;
use std::sync::OnceLock;

/// Numbers from 0 to `LIMIT - 1` have a ready text.
pub const LIMIT: u64 = 1000;

/// `prefix` followed by each number below [`LIMIT`].
pub struct SmallNumbers {
    prefix: &'static str,
    table: OnceLock<Vec<&'static str>>,
}

impl SmallNumbers {
    /// A table of `prefix` + n, made on first use.
    pub const fn new(prefix: &'static str) -> SmallNumbers {
        SmallNumbers {
            prefix,
            table: OnceLock::new(),
        }
    }

    /// `prefix` + `n` as a header value, when `n` is below [`LIMIT`].
    pub fn value(&'static self, n: u64) -> Option<HeaderValue> {
        if n >= LIMIT {
            return None;
        }
        let text = self.table.get_or_init(|| self.make()).get(n as usize)?;
        Some(HeaderValue::from_static(text))
    }

    fn make(&self) -> Vec<&'static str> {
        let mut all = String::new();
        let mut ends = Vec::with_capacity(LIMIT as usize);
        let mut digits = itoa::Buffer::new();
        for n in 0..LIMIT {
            all.push_str(self.prefix);
            all.push_str(digits.format(n));
            ends.push(all.len());
        }
        // Kept for the process's life (a few KiB per table, made once).
        let all: &'static str = Box::leak(all.into_boxed_str());
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let text = &all[start..end];
                start = end;
                text
            })
            .collect()
    }
}

/// `prefix` followed by `numbers` separated by spaces, as a header value
/// written without the formatter (`X-Cache: HIT 1234`, `X-Varnish: 12 34`:
/// made on every delivery that the table does not answer).
pub fn numbers_value(prefix: &'static str, numbers: &[u64]) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let mut text = bytes::BytesMut::with_capacity(prefix.len() + 21 * numbers.len());
    text.extend_from_slice(prefix.as_bytes());
    for (i, n) in numbers.iter().enumerate() {
        if i > 0 {
            text.extend_from_slice(b" ");
        }
        text.extend_from_slice(digits.format(*n).as_bytes());
    }
    // Digits and spaces after a fixed prefix: always a valid value.
    HeaderValue::from_maybe_shared(text.freeze()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_are_read_from_the_table_large_ones_are_not() {
        static HITS: SmallNumbers = SmallNumbers::new("HIT ");
        static PLAIN: SmallNumbers = SmallNumbers::new("");
        for n in [0, 1, 9, 10, 99, 100, 998, 999] {
            assert_eq!(HITS.value(n).expect("small"), format!("HIT {n}").as_str());
            assert_eq!(PLAIN.value(n).expect("small"), n.to_string().as_str());
        }
        assert!(HITS.value(LIMIT).is_none());
        assert_eq!(numbers_value("HIT ", &[LIMIT]), "HIT 1000");
        assert_eq!(numbers_value("", &[12, 34]), "12 34");
        assert!(PLAIN.value(u64::MAX).is_none());
    }
}
