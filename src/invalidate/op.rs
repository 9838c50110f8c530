//! An invalidation as one value: what a PURGE, a key purge or a BAN asks
//! for, whether it came from a client, the admin API or a peer. Its text
//! form travels between cluster nodes.

use crate::cache::store::PurgeMode;

/// One invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Every variant stored for `host` + `url`.
    Url {
        /// Hard or soft.
        mode: PurgeMode,
        /// Host the objects were fetched for.
        host: String,
        /// Path and query.
        url: String,
    },
    /// Every object carrying any of `keys`.
    Keys {
        /// Hard or soft.
        mode: PurgeMode,
        /// Surrogate keys.
        keys: Vec<String>,
    },
    /// A ban expression (checked by the receiver).
    Ban(String),
}

fn mode_str(m: PurgeMode) -> &'static str {
    match m {
        PurgeMode::Hard => "hard",
        PurgeMode::Soft => "soft",
    }
}

fn parse_mode(s: &str) -> Result<PurgeMode, String> {
    match s {
        "hard" => Ok(PurgeMode::Hard),
        "soft" => Ok(PurgeMode::Soft),
        other => Err(format!("unknown purge mode {other:?} (hard or soft)")),
    }
}

impl Invalidation {
    /// The one-line text form: `url MODE HOST URL`, `keys MODE K1 K2 …`, or
    /// `ban EXPR`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Url { mode, host, url } => {
                // An empty host (HTTP/1.0 without Host) travels as "-".
                let host = if host.is_empty() { "-" } else { host };
                format!("url {} {host} {url}", mode_str(*mode))
            }
            Invalidation::Keys { mode, keys } => {
                format!("keys {} {}", mode_str(*mode), keys.join(" "))
            }
            Invalidation::Ban(expr) => format!("ban {expr}"),
        }
    }

    /// Parses the text form.
    pub fn decode(line: &str) -> Result<Invalidation, String> {
        let line = line.trim();
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "url" => {
                let mut parts = rest.split_ascii_whitespace();
                let (Some(mode), Some(host), Some(url), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err("expected: url MODE HOST URL".into());
                };
                let host = if host == "-" { "" } else { host };
                Ok(Invalidation::Url {
                    mode: parse_mode(mode)?,
                    host: host.to_string(),
                    url: url.to_string(),
                })
            }
            "keys" => {
                let mut parts = rest.split_ascii_whitespace();
                let mode = parse_mode(parts.next().unwrap_or(""))?;
                let keys: Vec<String> = parts.map(str::to_string).collect();
                if keys.is_empty() {
                    return Err("expected: keys MODE KEY…".into());
                }
                Ok(Invalidation::Keys { mode, keys })
            }
            "ban" if !rest.trim().is_empty() => Ok(Invalidation::Ban(rest.trim().to_string())),
            _ => Err(format!("unknown invalidation {line:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for inv in [
            Invalidation::Url {
                mode: PurgeMode::Soft,
                host: "shop.example".into(),
                url: "/a?b=c".into(),
            },
            Invalidation::Url {
                mode: PurgeMode::Hard,
                host: String::new(),
                url: "/".into(),
            },
            Invalidation::Keys {
                mode: PurgeMode::Hard,
                keys: vec!["k1".into(), "k2".into()],
            },
            Invalidation::Ban(r#"req.url ~ "^/a" && obj.status == 200"#.into()),
        ] {
            assert_eq!(Invalidation::decode(&inv.encode()), Ok(inv));
        }
        assert!(Invalidation::decode("url hard onlyhost").is_err());
        assert!(Invalidation::decode("keys soft").is_err());
        assert!(Invalidation::decode("url medium h /").is_err());
        assert!(Invalidation::decode("drop table").is_err());
        assert!(Invalidation::decode("ban   ").is_err());
    }
}
