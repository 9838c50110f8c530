//! `lacquer::config::Config::from_toml` on arbitrary UTF-8; the unit
//! parsers (`parse_bytes`, `parse_duration`) on the same text.
#![no_main]

use lacquer::config::{parse_bytes, parse_duration, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text, "fuzz.toml") {
        Ok(c) => {
            let _ = c.cache.freshness_policy();
            let _ = c.primary_backend();
            assert!(c.validate("fuzz.toml").is_ok());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = parse_bytes(text);
    if let Ok(d) = parse_duration(text) {
        assert!(d.as_secs_f64() <= 1e10 + 1.0);
    }
});
