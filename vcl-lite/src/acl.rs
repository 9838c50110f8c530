//! Compiled ACLs: address/prefix entries, the most specific match wins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ast;
use crate::error::Error;

/// One network of an ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
    negated: bool,
}

/// An ACL, ready to match client addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledAcl {
    name: String,
    /// Sorted most specific first.
    nets: Vec<Net>,
}

fn masked_v4(addr: Ipv4Addr, prefix: u8) -> u32 {
    let bits = u32::from(addr);
    if prefix == 0 {
        0
    } else {
        bits & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn masked_v6(addr: Ipv6Addr, prefix: u8) -> u128 {
    let bits = u128::from(addr);
    if prefix == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(prefix)))
    }
}

fn contains(net: &Net, ip: IpAddr) -> bool {
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => masked_v4(a, net.prefix) == u32::from(n),
        (IpAddr::V6(n), IpAddr::V6(a)) => masked_v6(a, net.prefix) == u128::from(n),
        _ => false,
    }
}

impl CompiledAcl {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `ip` matches: the most specific entry containing it decides
    /// (an entry written with `!` excludes). IPv4-mapped IPv6 addresses
    /// match IPv4 entries.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets
            .iter()
            .find(|n| contains(n, ip))
            .is_some_and(|n| !n.negated)
    }

    /// Checks and compiles an ACL declaration.
    pub(crate) fn compile(acl: &ast::Acl, src: &str, file: &str) -> Result<CompiledAcl, Error> {
        let mut nets = Vec::new();
        for entry in &acl.entries {
            let written = match entry.prefix {
                Some((bits, _)) => format!("\"{}\"/{bits}", entry.addr),
                None => format!("\"{}\"", entry.addr),
            };
            let bad = |label: String| {
                Error::new(
                    src,
                    file,
                    entry.addr_span,
                    format!("bad CIDR {written}"),
                    label,
                )
            };
            if let Some((addr, bits)) = entry.addr.split_once('/') {
                return Err(bad(format!(
                    "write the prefix length after the quotes: \"{addr}\"/{bits}"
                )));
            }
            let addrs: Vec<IpAddr> = if entry.addr.eq_ignore_ascii_case("localhost") {
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]
            } else {
                match entry.addr.parse::<IpAddr>() {
                    Ok(a) => vec![a.to_canonical()],
                    Err(_) => return Err(bad(
                        "not an IP address (host names other than `localhost` are not resolved)"
                            .to_string(),
                    )),
                }
            };
            for addr in addrs {
                let max: i64 = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = match entry.prefix {
                    None => max,
                    Some((bits, span)) => {
                        if !(0..=max).contains(&bits) {
                            let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                            return Err(Error::new(
                                src,
                                file,
                                span,
                                format!("bad CIDR {written}"),
                                format!("an {family} prefix length is between 0 and {max}"),
                            ));
                        }
                        bits
                    }
                };
                let prefix = u8::try_from(prefix).unwrap_or(0);
                let network = match addr {
                    IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(masked_v4(a, prefix))),
                    IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(masked_v6(a, prefix))),
                };
                if network != addr {
                    return Err(bad(format!(
                        "bits are set after the /{prefix} prefix: did you mean \"{network}\"/{prefix}?"
                    )));
                }
                nets.push(Net {
                    addr: network,
                    prefix,
                    negated: entry.negated,
                });
            }
        }
        // Most specific first; among equals, the first written wins.
        nets.sort_by_key(|n| std::cmp::Reverse(n.prefix));
        Ok(CompiledAcl {
            name: acl.name.name.clone(),
            nets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Item;
    use crate::parser::parse;

    fn acl(src: &str) -> Result<CompiledAcl, Error> {
        let policy = parse(src, "t.vcl").unwrap();
        match &policy.items[0] {
            Item::Acl(a) => CompiledAcl::compile(a, src, "t.vcl"),
            other => panic!("{other:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn most_specific_entry_wins() {
        let a =
            acl(r#"acl a { "10.0.0.0"/8; !"10.1.0.0"/16; "10.1.2.3"; "::1"; "2001:db8::"/32; }"#)
                .unwrap();
        assert!(a.matches(ip("10.9.9.9")));
        assert!(!a.matches(ip("10.1.9.9")));
        assert!(a.matches(ip("10.1.2.3")));
        assert!(!a.matches(ip("11.0.0.1")));
        assert!(a.matches(ip("::1")));
        assert!(a.matches(ip("2001:db8:1::5")));
        assert!(a.matches(ip("::ffff:10.2.3.4")));
    }

    #[test]
    fn localhost_and_zero_prefix() {
        let a = acl(r#"acl a { "localhost"; }"#).unwrap();
        assert!(a.matches(ip("127.0.0.1")));
        assert!(a.matches(ip("::1")));
        assert!(!a.matches(ip("127.0.0.2")));
        let all = acl(r#"acl a { "0.0.0.0"/0; }"#).unwrap();
        assert!(all.matches(ip("203.0.113.9")));
        assert!(!all.matches(ip("2001:db8::1")));
    }

    #[test]
    fn bad_entries() {
        assert!(acl(r#"acl a { "10.0.0.0"/33; }"#).is_err());
        assert!(acl(r#"acl a { "10.0.0.0/8"; }"#).is_err());
        assert!(acl(r#"acl a { "example.com"; }"#).is_err());
        let err = acl(r#"acl a { "10.0.0.1"/8; }"#).unwrap_err();
        assert!(err.label().contains("\"10.0.0.0\"/8"), "{err}");
        assert!(acl(r#"acl a { "::1"/129; }"#).is_err());
    }
}
