//! Compiled ACLs: address/prefix entries, the most specific match wins.
//! Host names are resolved when the policy is compiled, as Varnish does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use crate::ast;
use crate::error::Error;

/// One network of an ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
    negated: bool,
    /// The entry as written (`"10.0.0.0"/8`), for `+log`.
    written: String,
}

/// An ACL, ready to match client addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledAcl {
    name: String,
    /// Sorted most specific first.
    nets: Vec<Net>,
    /// `+log`: each match is logged.
    log: bool,
}

/// The resolver an ACL is compiled with.
pub(crate) type Resolve<'r> = &'r Resolver;

/// A host-name resolver for ACL entries: the addresses of a name, or why
/// there are none.
pub type Resolver = dyn Fn(&str) -> Result<Vec<IpAddr>, String>;

thread_local! {
    /// The resolver [`with_resolver`] set on this thread, if any.
    static RESOLVER: std::cell::RefCell<Option<std::rc::Rc<Resolver>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `resolve` answering the host-name look-ups of the ACLs
/// compiled on this thread, instead of the system resolver: for tests and
/// fuzzing, which must not send DNS queries. Nests; the previous resolver
/// is back when `f` returns (or panics).
pub fn with_resolver<T>(
    resolve: impl Fn(&str) -> Result<Vec<IpAddr>, String> + 'static,
    f: impl FnOnce() -> T,
) -> T {
    struct Restore(Option<std::rc::Rc<Resolver>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            RESOLVER.with(|r| *r.borrow_mut() = previous);
        }
    }
    let previous = RESOLVER.with(|r| r.borrow_mut().replace(std::rc::Rc::new(resolve)));
    let _restore = Restore(previous);
    f()
}

/// The system resolver (`getaddrinfo`), as Varnish uses when it loads VCL.
pub(crate) fn system_resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    (name, 0u16)
        .to_socket_addrs()
        .map(|found| found.map(|a| a.ip()).collect())
        .map_err(|e| e.to_string())
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

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(masked_v4(a, prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(masked_v6(a, prefix))),
    }
}

fn contains(net: &Net, ip: IpAddr) -> bool {
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => masked_v4(a, net.prefix) == u32::from(n),
        (IpAddr::V6(n), IpAddr::V6(a)) => masked_v6(a, net.prefix) == u128::from(n),
        _ => false,
    }
}

/// Varnish's short network notation: `"10"`, `"10.1"`, `"10.1.2"` are
/// 10.0.0.0/8, 10.1.0.0/16, 10.1.2.0/24 (the prefix unless one is written).
fn net_notation(text: &str) -> Option<(IpAddr, u8)> {
    let mut octets = [0u8; 4];
    let mut count = 0;
    for part in text.split('.') {
        if count == 4 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[count] = part.parse().ok()?;
        count += 1;
    }
    let bits = u8::try_from(8 * count).ok()?;
    Some((IpAddr::V4(Ipv4Addr::from(octets)), bits))
}

/// Whether `name` is a host name (RFC 1123: dot-separated labels of
/// letters, digits and inner hyphens, 63 bytes each, 253 in all; `_` is
/// tolerated, as resolvers do).
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Names under `.invalid` never resolve (RFC 6761): answered here, not
/// asked of the resolver.
fn is_reserved_invalid(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "invalid" || name.ends_with(".invalid")
}

/// Text that is meant as an address, not a host name.
fn looks_numeric(text: &str) -> bool {
    text.contains(':') || text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl CompiledAcl {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `ip` matches: the most specific entry containing it decides
    /// (an entry written with `!` excludes). IPv4-mapped IPv6 addresses
    /// match IPv4 entries. With `+log`, logs which entry decided.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let found = self.nets.iter().find(|n| contains(n, ip));
        if self.log {
            match found {
                Some(n) if n.negated => {
                    tracing::info!(target: "vcl_acl", acl = %self.name, %ip, entry = %n.written, "NEG_MATCH")
                }
                Some(n) => {
                    tracing::info!(target: "vcl_acl", acl = %self.name, %ip, entry = %n.written, "MATCH")
                }
                None => tracing::info!(target: "vcl_acl", acl = %self.name, %ip, "NO MATCH"),
            }
        }
        found.is_some_and(|n| !n.negated)
    }

    /// Checks and compiles an ACL declaration, resolving host names with the
    /// system resolver (or the one [`with_resolver`] set).
    pub(crate) fn compile(acl: &ast::Acl, src: &str, file: &str) -> Result<CompiledAcl, Error> {
        match RESOLVER.with(|r| r.borrow().clone()) {
            Some(resolve) => Self::compile_with(acl, src, file, &*resolve),
            None => Self::compile_with(acl, src, file, &system_resolve),
        }
    }

    /// [`CompiledAcl::compile`] with the given resolver.
    pub(crate) fn compile_with(
        acl: &ast::Acl,
        src: &str,
        file: &str,
        resolve: Resolve<'_>,
    ) -> Result<CompiledAcl, Error> {
        let mut nets: Vec<Net> = Vec::new();
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
            let Some(addrs) = Self::addresses(entry, src, file, resolve)? else {
                continue;
            };
            let families = addrs.iter().filter(|(a, _)| a.is_ipv4()).count();
            if let Some((bits, span)) = entry.prefix {
                if families > 0 && families < addrs.len() {
                    return Err(Error::new(
                        src,
                        file,
                        span,
                        format!("bad CIDR {written}"),
                        format!(
                            "a prefix length is for one family, but \"{}\" is both IPv4 and IPv6 addresses",
                            entry.addr
                        ),
                    )
                    .note(format!(
                        "write one entry per address: \"{}\"/{bits}; …",
                        addrs[0].0
                    )));
                }
            }
            for (addr, default_prefix) in addrs {
                let max: i64 = if addr.is_ipv4() { 32 } else { 128 };
                let prefix = match entry.prefix {
                    None => i64::from(default_prefix),
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
                let network = masked(addr, prefix);
                if network != addr {
                    let is = if entry.addr == addr.to_string() {
                        String::new()
                    } else {
                        format!("\"{}\" is {addr}: ", entry.addr)
                    };
                    if acl.flags.pedantic {
                        return Err(bad(format!(
                            "{is}bits are set after the /{prefix} prefix: did you mean \"{network}\"/{prefix}?"
                        ))
                        .note(format!(
                            "`acl {} -pedantic {{ … }}` clears such bits instead, with a warning",
                            acl.name.name
                        )));
                    }
                    tracing::warn!(
                        acl = %acl.name.name,
                        entry = %written,
                        "{is}bits set after the /{prefix} prefix, changed to \"{network}\"/{prefix} (-pedantic)"
                    );
                }
                let net = Net {
                    addr: network,
                    prefix,
                    negated: entry.negated,
                    // As Varnish logs it: `"10.1.2.3"/8 fixed: 10.0.0.0/8`.
                    written: if network == addr {
                        written.clone()
                    } else {
                        format!("{written} fixed: {network}/{prefix}")
                    },
                };
                if let Some(same) = nets
                    .iter()
                    .find(|n| n.addr == net.addr && n.prefix == net.prefix)
                {
                    if same.negated == net.negated {
                        continue; // a repeat: harmless, as in Varnish
                    }
                    return Err(Error::new(
                        src,
                        file,
                        entry.addr_span,
                        "conflicting ACL entries",
                        format!(
                            "\"{network}\"/{prefix} is listed {} `!` earlier in `{}`",
                            if same.negated { "with" } else { "without" },
                            acl.name.name
                        ),
                    ));
                }
                nets.push(net);
            }
        }
        // Most specific first.
        nets.sort_by_key(|n| std::cmp::Reverse(n.prefix));
        Ok(CompiledAcl {
            name: acl.name.name.clone(),
            nets,
            log: acl.flags.log,
        })
    }

    /// The addresses an entry stands for, each with the prefix length it has
    /// when none is written; `None`: an optional name that does not resolve.
    fn addresses(
        entry: &ast::AclEntry,
        src: &str,
        file: &str,
        resolve: Resolve<'_>,
    ) -> Result<Option<Vec<(IpAddr, u8)>>, Error> {
        let text = entry.addr.as_str();
        if let Ok(a) = text.parse::<IpAddr>() {
            let a = a.to_canonical();
            return Ok(Some(vec![(a, if a.is_ipv4() { 32 } else { 128 })]));
        }
        if let Some(net) = net_notation(text) {
            return Ok(Some(vec![net]));
        }
        // Always the loopback addresses (RFC 6761), whatever /etc/hosts says.
        if text.eq_ignore_ascii_case("localhost") {
            return Ok(Some(vec![
                (IpAddr::V4(Ipv4Addr::LOCALHOST), 32),
                (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ]));
        }
        let error =
            |message: String, label: String| Error::new(src, file, entry.addr_span, message, label);
        if text.is_empty() || looks_numeric(text) {
            return Err(error(
                format!("bad CIDR \"{text}\""),
                "not an IP address".to_string(),
            ));
        }
        if !is_host_name(text) {
            return Err(error(
                format!("bad ACL entry \"{text}\""),
                "neither an IP address nor a host name".to_string(),
            ));
        }
        let looked_up = if is_reserved_invalid(text) {
            Err("the .invalid domain never resolves (RFC 6761)".to_string())
        } else {
            resolve(text)
        };
        let reason = match looked_up {
            Ok(found) if !found.is_empty() => {
                let mut addrs: Vec<(IpAddr, u8)> = Vec::new();
                for a in found {
                    let a = a.to_canonical();
                    if !addrs.iter().any(|(b, _)| *b == a) {
                        addrs.push((a, if a.is_ipv4() { 32 } else { 128 }));
                    }
                }
                return Ok(Some(addrs));
            }
            Ok(_) => "no address".to_string(),
            Err(reason) => reason,
        };
        if entry.optional {
            tracing::warn!(host = text, %reason, "ACL entry skipped: the name does not resolve");
            return Ok(None);
        }
        Err(error(format!("cannot resolve \"{text}\""), reason).note(format!(
            "written in parentheses, `( \"{text}\" );`, an entry whose name does not resolve is skipped, with a warning"
        )))
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
        let err = acl(r#"acl a { "10.0.0.1"/8; }"#).unwrap_err();
        assert!(err.label().contains("\"10.0.0.0\"/8"), "{err}");
        assert!(err.notes()[0].contains("-pedantic"), "{err}");
        assert!(acl(r#"acl a { "::1"/129; }"#).is_err());
        let err = acl(r#"acl a { "10.0.0.256"; }"#).unwrap_err();
        assert_eq!(err.label(), "not an IP address");
        assert!(acl(r#"acl a { ""; }"#).is_err());
        assert!(acl(r#"acl a { "1.2.3.4.5"; }"#).is_err());
        let err = acl(r#"acl a { "two words"; }"#).unwrap_err();
        assert_eq!(err.label(), "neither an IP address nor a host name");
        for bad in ["-a.example", "a-.example", "a..example", ".", "é.example"] {
            assert!(!is_host_name(bad), "{bad}");
        }
        for good in [
            "a.example",
            "a-b.example.",
            "x",
            "_srv.example",
            "localhost",
        ] {
            assert!(is_host_name(good), "{good}");
        }
    }

    /// A resolver that knows a few names.
    fn fake(name: &str) -> Result<Vec<IpAddr>, String> {
        match name {
            "backend.example" => Ok(vec![ip("192.0.2.10"), ip("192.0.2.11"), ip("192.0.2.10")]),
            "v6.example" => Ok(vec![ip("2001:db8::7")]),
            "dual.example" => Ok(vec![ip("192.0.2.20"), ip("2001:db8::20")]),
            "empty.example" => Ok(vec![]),
            _ => Err("Name or service not known".to_string()),
        }
    }

    fn acl_fake(src: &str) -> Result<CompiledAcl, Error> {
        let policy = parse(src, "t.vcl").unwrap();
        match &policy.items[0] {
            Item::Acl(a) => CompiledAcl::compile_with(a, src, "t.vcl", &fake),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_names_are_resolved_when_compiled() {
        let a = acl_fake(r#"acl a { "backend.example"; "v6.example"; }"#).unwrap();
        assert!(a.matches(ip("192.0.2.10")));
        assert!(a.matches(ip("192.0.2.11")));
        assert!(!a.matches(ip("192.0.2.12")));
        assert!(a.matches(ip("2001:db8::7")));
        assert!(!a.matches(ip("2001:db8::8")));
        // A name with a prefix length: each address's network.
        let a = acl_fake(r#"acl a -pedantic { "backend.example"/24; }"#).unwrap();
        assert!(a.matches(ip("192.0.2.200")));
        assert!(!a.matches(ip("192.0.3.1")));
        let a = acl_fake(r#"acl a { "v6.example"/64; }"#);
        assert!(a.is_err(), "host bits are set");
        let a = acl_fake(r#"acl a { "v6.example"/128; ! "dual.example"; }"#).unwrap();
        assert!(!a.matches(ip("192.0.2.20")));
        assert!(!a.matches(ip("2001:db8::20")));
    }

    #[test]
    fn host_name_errors() {
        let e = acl_fake(r#"acl a { "nowhere.example"; }"#).unwrap_err();
        assert_eq!(e.message(), "cannot resolve \"nowhere.example\"");
        assert!(e.label().starts_with("Name or service not known"), "{e}");
        assert!(e.notes()[0].contains("( \"nowhere.example\" );"), "{e}");
        let e = acl_fake(r#"acl a { "empty.example"; }"#).unwrap_err();
        assert!(e.label().starts_with("no address"), "{e}");
        let e = acl_fake(r#"acl a -pedantic { "dual.example"/24; }"#).unwrap_err();
        assert!(e.label().contains("both IPv4 and IPv6"), "{e}");
        assert_eq!(e.column(), 34, "the caret is under the prefix length");
        let e = acl_fake(r#"acl a { "backend.example"/24; }"#).unwrap_err();
        assert!(
            e.label()
                .starts_with("\"backend.example\" is 192.0.2.10: bits are set after the /24"),
            "{e}"
        );
    }

    #[test]
    fn optional_entries_are_skipped_when_they_do_not_resolve() {
        let a = acl_fake(
            r#"acl a { ( "nowhere.example" ); ( "backend.example" ); !( "v6.example" ); ( ! "10.0.0.1" ); "10.0.0.0"/8; }"#,
        )
        .unwrap();
        assert!(a.matches(ip("192.0.2.10")));
        assert!(!a.matches(ip("10.0.0.1")));
        assert!(a.matches(ip("10.0.0.2")));
        let a = acl_fake(r#"acl a { ! ( "v6.example"/128 ); "::"/0; }"#).unwrap();
        assert!(!a.matches(ip("2001:db8::7")));
        assert!(a.matches(ip("2001:db8::8")));
    }

    #[test]
    fn the_system_resolver_is_used_by_default() {
        // `.invalid` never resolves (RFC 6761): not even asked.
        let e = acl(r#"acl a { "no-such-host.invalid"; }"#).unwrap_err();
        assert_eq!(e.message(), "cannot resolve \"no-such-host.invalid\"");
        assert!(e.label().contains("RFC 6761"), "{e}");
        let a = acl(r#"acl a { ( "no-such-host.INVALID." ); "LocalHost"; }"#).unwrap();
        assert!(a.matches(ip("127.0.0.1")));
        // The system resolver answers "localhost" from the hosts file (no
        // DNS query: tests only ever talk to 127.0.0.1).
        let found = system_resolve("localhost").unwrap();
        assert!(found.iter().all(IpAddr::is_loopback), "{found:?}");
    }

    #[test]
    fn with_resolver_replaces_the_system_resolver_on_this_thread() {
        let src = r#"acl a { "backend.example"; }"#;
        let compile = || {
            let policy = parse(src, "t.vcl").unwrap();
            match &policy.items[0] {
                Item::Acl(a) => CompiledAcl::compile(a, src, "t.vcl"),
                other => panic!("{other:?}"),
            }
        };
        let a = with_resolver(fake, || {
            // Nested: the inner one wins, then the outer one is back.
            let inner = with_resolver(|_| Err("inner".to_string()), compile);
            assert_eq!(inner.unwrap_err().label(), "inner");
            compile()
        })
        .unwrap();
        assert!(a.matches(ip("192.0.2.11")));
        let e = with_resolver(|_| Ok(vec![]), compile).unwrap_err();
        assert_eq!(e.label(), "no address");
    }

    #[test]
    fn pedantic_flag() {
        let a = acl(r#"acl a -pedantic { "10.1.2.3"/8; "192.0.2.77"/25; }"#).unwrap();
        assert!(a.matches(ip("10.200.0.1")));
        assert!(a.matches(ip("192.0.2.1")));
        assert!(!a.matches(ip("192.0.2.200")));
        assert!(acl(r#"acl a +pedantic { "10.1.2.3"/8; }"#).is_err());
        assert!(acl(r#"acl a -pedantic +pedantic { "10.1.2.3"/8; }"#).is_err());
        let a = acl(r#"acl a +log +table +fold -log { "10.0.0.0"/8; }"#).unwrap();
        assert!(!a.log);
        let a = acl(r#"acl a +log { "10.0.0.0"/8; }"#).unwrap();
        assert!(a.log);
        assert!(a.matches(ip("10.0.0.1")));
        assert!(!a.matches(ip("11.0.0.1")));
    }

    #[test]
    fn short_network_notation() {
        let a = acl(r#"acl a { "10.1"; "192.168"/24; "172"; }"#).unwrap();
        assert!(a.matches(ip("10.1.200.3")));
        assert!(!a.matches(ip("10.2.0.1")));
        assert!(a.matches(ip("192.168.0.9")));
        assert!(!a.matches(ip("192.168.1.9")));
        assert!(a.matches(ip("172.31.0.1")));
    }

    #[test]
    fn repeats_and_conflicts() {
        let a = acl(r#"acl a { "10.0.0.0"/8; "10.0.0.0"/8; }"#).unwrap();
        assert_eq!(a.nets.len(), 1);
        let e = acl(r#"acl a { "10.0.0.0"/8; ! "10.0.0.0"/8; }"#).unwrap_err();
        assert_eq!(e.message(), "conflicting ACL entries");
        assert_eq!(
            e.label(),
            "\"10.0.0.0\"/8 is listed without `!` earlier in `a`"
        );
        // localhost's ::1 against an exclusion of ::1.
        let e = acl(r#"acl a { !"::1"; "localhost"; }"#).unwrap_err();
        assert!(e.label().contains("with `!`"), "{e}");
    }
}
