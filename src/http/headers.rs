//! Header transforms at the proxy boundary: hop-by-hop removal (RFC 9110
//! §7.6.1), `Via`, `X-Forwarded-For`, and the one normal form of a host.

use http::header::{Entry, HeaderName, HeaderValue, CONNECTION, VIA};
use http::{HeaderMap, Version};
use std::net::IpAddr;

/// Headers that describe one connection, never forwarded.
/// The hop-by-hop fields (RFC 9110 §7.6.1), parsed once.
static HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::PROXY_AUTHORIZATION,
];

/// What [`normalize_host`] notes of a byte: nothing for a lowercase host
/// name's or an IPv4 address's bytes.
const UPPER: u8 = 1;
const COLON: u8 = 2;
const BRACKET: u8 = 4;
const AT: u8 = 8;
const BAD: u8 = 16;

static HOST_BYTE: [u8; 256] = {
    let mut table = [BAD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => 0,
            b'A'..=b'Z' => UPPER,
            b':' => COLON,
            b'[' | b']' => BRACKET,
            b'@' => AT,
            _ => BAD,
        };
        b += 1;
    }
    table
};

/// Why a `Host` value or a request target's authority is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Empty, longer than 255 bytes, a bad port, or bytes no host name or
    /// address literal holds.
    #[error("invalid host")]
    Invalid,
    /// `user:password@` before the host (RFC 9110 §4.2.4: never sent).
    #[error("userinfo in the host")]
    Userinfo,
}

/// The default port of a request target's scheme: 443 for `https`, else 80
/// (origin-form requests, with only a `Host`, are plain HTTP to lacquer).
pub fn default_port(scheme: Option<&http::uri::Scheme>) -> u16 {
    if scheme == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    }
}

/// The one form in which lacquer keys, forwards and purges a host, whether
/// it came from `Host` or from an absolute-form target: ASCII lowercase,
/// the port as a plain number and dropped when it is `default_port` or
/// empty (RFC 9110 §4.2.3). An IPv6 literal keeps its brackets.
pub fn normalize_host(raw: &str, default_port: u16) -> Result<String, HostError> {
    // One pass over the bytes (this runs on every request): which kinds
    // are there, from a table (a branch per byte cost ~10 instructions).
    let seen = raw
        .bytes()
        .fold(0u8, |seen, b| seen | HOST_BYTE[usize::from(b)]);
    let (at, bad, upper) = (seen & AT != 0, seen & BAD != 0, seen & UPPER != 0);
    let brackets = seen & BRACKET != 0;
    let (mut colons, mut last_colon) = (0usize, 0usize);
    if seen & COLON != 0 {
        for (i, b) in raw.bytes().enumerate() {
            if b == b':' {
                colons += 1;
                last_colon = i;
            }
        }
    }
    if at {
        return Err(HostError::Userinfo);
    }
    if raw.is_empty() || raw.len() > 255 || bad {
        return Err(HostError::Invalid);
    }
    // The port follows the last ':' that is not inside an IPv6 literal.
    let (host, port) = if colons > 0 && !(brackets && raw[last_colon..].contains(']')) {
        (&raw[..last_colon], Some(&raw[last_colon + 1..]))
    } else {
        (raw, None)
    };
    if host.is_empty() {
        return Err(HostError::Invalid);
    }
    // A ':' or a bracket left in the host must be an IPv6 literal's.
    let colon_left = colons > usize::from(port.is_some());
    if brackets || colon_left {
        let bracketed = host.len() > 2
            && host.starts_with('[')
            && host.ends_with(']')
            && !host[1..host.len() - 1].contains(['[', ']']);
        if !bracketed {
            return Err(HostError::Invalid);
        }
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u16 = p.parse().map_err(|_| HostError::Invalid)?;
            (n != default_port).then_some(n)
        }
        Some(_) => return Err(HostError::Invalid),
    };
    let mut out = String::with_capacity(host.len() + 6);
    out.push_str(host);
    if upper {
        out.make_ascii_lowercase();
    }
    if let Some(n) = port {
        out.push(':');
        out.push_str(itoa::Buffer::new().format(n));
    }
    Ok(out)
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// A message framed by `Transfer-Encoding` also loses its `Content-Length`:
/// the body was read by the transfer coding (RFC 9112 §6.3: it wins, and a
/// forwarding intermediary removes the length), and passing the stale length
/// on would let the next hop cut the body short or read into the next
/// message.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one look at each name (cheap compares for
    // the standard ones) instead of a lookup per hop-by-hop name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes every field named in `names`. Most messages carry none of the
/// names this is used for (conditionals, surrogate keys, fields meant for
/// this cache): one look at each of the message's own names (cheap
/// compares for the standard ones) instead of a hashed lookup per name.
pub fn remove_named<'a>(
    headers: &mut HeaderMap,
    names: impl IntoIterator<Item = &'a HeaderName> + Clone,
) {
    if headers
        .keys()
        .any(|n| names.clone().into_iter().any(|m| m == n))
    {
        for name in names {
            headers.remove(name);
        }
    }
}

/// Whether `name` is one of [`HOP_BY_HOP`]: a match on the text (a switch
/// on its length, then one compare) rather than eight name compares.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
    )
}

/// Appends this proxy to `Via` (RFC 9110 §7.6.3).
///
/// The value (`1.1 lacquer`) is the same for nearly every backend request:
/// each worker keeps the last one it made, `'static` (see `static_text`),
/// so appending it copies a pointer and touches no shared counter.
pub fn append_via(headers: &mut HeaderMap, version: Version, name: &str) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(Version, String, HeaderValue)>> = const { RefCell::new(None) };
    }
    let value = LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((v, n, value)) = last.as_ref() {
            if *v == version && n == name {
                return Some(value.clone());
            }
        }
        let proto = match version {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            Version::HTTP_3 => "3",
            _ => "1.1",
        };
        let value = crate::http::static_text::header_value(&format!("{proto} {name}"))?;
        *last = Some((version, name.to_string(), value.clone()));
        Some(value)
    });
    if let Some(v) = value {
        headers.append(VIA, v);
    }
}

/// Appends the client address to `X-Forwarded-For`, collecting several
/// header lines into one first (as Varnish does before `vcl_recv`).
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    append_forwarded_for_cached(headers, client, None);
}

/// The name of the client chain a proxy appends to.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address as kept for its connection: one header value per
/// connection, written once.
pub type ClientText = std::sync::OnceLock<(IpAddr, Option<HeaderValue>)>;

/// [`append_forwarded_for`] with a place to keep the client's address as
/// a header value (one per connection: the address is written once, and
/// a request without `X-Forwarded-For` gets a clone of it).
pub fn append_forwarded_for_cached(
    headers: &mut HeaderMap,
    client: IpAddr,
    cache: Option<&ClientText>,
) {
    // One lookup of the name for both the reading and the writing.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(slot) => {
            if let Some(v) = forwarded_for(std::iter::empty(), client, cache) {
                slot.insert(v);
            }
        }
        Entry::Occupied(mut lines) => {
            if let Some(v) = forwarded_for(lines.iter(), client, cache) {
                lines.insert(v);
            }
        }
    }
}

/// The `X-Forwarded-For` value a request with the lines `prev` gets: the
/// lines joined into one with the client's address after them, or (the
/// common case, no proxy in front) the address alone, a clone of the
/// connection's `cache` when given.
pub fn forwarded_for<'a>(
    prev: impl Iterator<Item = &'a HeaderValue>,
    client: IpAddr,
    cache: Option<&ClientText>,
) -> Option<HeaderValue> {
    let mut value = Vec::new();
    for prev in prev.filter_map(|v| v.to_str().ok()) {
        let prev = prev.trim();
        if !prev.is_empty() {
            value.reserve(64);
            value.extend_from_slice(prev.as_bytes());
            value.extend_from_slice(b", ");
        }
    }
    if value.is_empty() {
        return match cache.map(|c| c.get_or_init(|| (client, ip_value(client)))) {
            Some((ip, v)) if *ip == client => v.clone(),
            _ => ip_value(client),
        };
    }
    value.extend_from_slice(IpText { buf: [0; 48] }.of(client));
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
}

/// `ip` as a header value, made with one exact allocation.
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    HeaderValue::from_bytes(IpText { buf: [0; 48] }.of(ip)).ok()
}

/// Room for an IP address as text (IPv6 at most 45 bytes), on the stack.
struct IpText {
    buf: [u8; 48],
}

impl IpText {
    /// `ip` as text (IPv4 without the formatting machinery: this runs on
    /// every request under a loaded VCL).
    fn of(&mut self, ip: IpAddr) -> &[u8] {
        let mut len = 0;
        match ip {
            IpAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf[len] = b'.';
                        len += 1;
                    }
                    let d = digits.format(octet).as_bytes();
                    self.buf[len..len + d.len()].copy_from_slice(d);
                    len += d.len();
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut out = &mut self.buf[..];
                if write!(out, "{v6}").is_ok() {
                    len = 48 - out.len();
                }
            }
        }
        &self.buf[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_fields_go_with_every_value_and_others_stay() {
        let names = [http::header::RANGE, HeaderName::from_static("x-key")];
        let mut h = HeaderMap::new();
        h.append("x-key", HeaderValue::from_static("a"));
        h.append("x-key", HeaderValue::from_static("b"));
        h.insert("range", HeaderValue::from_static("bytes=0-1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_named(&mut h, &names);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "1");
        // None of the names: nothing changes.
        remove_named(&mut h, &names);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn the_hop_by_hop_test_knows_the_list() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in [
            "host",
            "x-connection",
            "tea",
            "upgrade-insecure-requests",
            "content-length",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hosts_are_lowercased_without_the_default_port() {
        for (raw, port, want) in [
            ("T2.Test", 80, "t2.test"),
            ("t2.test:80", 80, "t2.test"),
            ("t2.test:", 80, "t2.test"),
            ("t2.test:0080", 80, "t2.test"),
            ("t2.test:443", 80, "t2.test:443"),
            ("T2.test:443", 443, "t2.test"),
            ("t2.test:8080", 80, "t2.test:8080"),
            ("[::1]:80", 80, "[::1]"),
            ("[::1]:81", 80, "[::1]:81"),
            ("[::1]", 80, "[::1]"),
            ("10.0.0.1:80", 80, "10.0.0.1"),
        ] {
            assert_eq!(normalize_host(raw, port).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad_hosts_and_userinfo_are_refused() {
        assert_eq!(normalize_host("u:p@t2.test", 80), Err(HostError::Userinfo));
        assert_eq!(normalize_host("@t2.test", 80), Err(HostError::Userinfo));
        let long = "a".repeat(256);
        for raw in [
            "", ":80", "a b", "a/b", "::1", "a:b:c", "[::1", "::1]", "[]", "a:99999", "a:8o",
            "a]:80", &long,
        ] {
            assert_eq!(normalize_host(raw, 80), Err(HostError::Invalid), "{raw:?}");
        }
    }

    /// The straightforward reading of the rules (several passes over the
    /// bytes), against which the one-pass `normalize_host` is checked.
    fn normalize_host_reference(raw: &str, default_port: u16) -> Result<String, HostError> {
        if raw.contains('@') {
            return Err(HostError::Userinfo);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b);
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(allowed) {
            return Err(HostError::Invalid);
        }
        let (host, port) = match raw.rfind(':') {
            Some(i) if !raw[i..].contains(']') => (&raw[..i], Some(&raw[i + 1..])),
            _ => (raw, None),
        };
        let bracketed = host.len() > 2
            && host.starts_with('[')
            && host.ends_with(']')
            && !host[1..host.len() - 1].contains(['[', ']']);
        if host.is_empty() || (host.contains([':', '[', ']']) && !bracketed) {
            return Err(HostError::Invalid);
        }
        let port = match port.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u16 = p.parse().map_err(|_| HostError::Invalid)?;
                (n != default_port).then_some(n)
            }
            Some(_) => return Err(HostError::Invalid),
        };
        let mut out = host.to_ascii_lowercase();
        if let Some(n) = port {
            out.push(':');
            out.push_str(&n.to_string());
        }
        Ok(out)
    }

    #[test]
    fn every_short_host_is_read_as_the_rules_say() {
        let alphabet = ["a", "B", "1", "8", ":", "[", "]", "@", ".", " ", "é"];
        let mut inputs = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::new();
            for s in &inputs {
                for c in alphabet {
                    let t = format!("{s}{c}");
                    assert_eq!(
                        normalize_host(&t, 88),
                        normalize_host_reference(&t, 88),
                        "{t:?}"
                    );
                    checked += 1;
                    longer.push(t);
                }
            }
            inputs = longer;
        }
        assert!(checked > 170_000);
    }

    #[test]
    fn forwarded_for_writes_v4_and_v6_addresses() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let mut h = HeaderMap::new();
            append_forwarded_for(&mut h, ip.parse().unwrap());
            assert_eq!(h["x-forwarded-for"], ip);
        }
    }

    #[test]
    fn forwarded_for_from_a_connections_cache_is_the_clients_own() {
        let cache = std::sync::OnceLock::new();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for ip in [a, a, b] {
            let mut h = HeaderMap::new();
            append_forwarded_for_cached(&mut h, ip, Some(&cache));
            assert_eq!(h["x-forwarded-for"], ip.to_string().as_str());
        }
        assert_eq!(
            cache.get().map(|(ip, v)| (*ip, v.clone())),
            Some((a, Some(HeaderValue::from_static("192.0.2.1"))))
        );
        // A chain already there is extended, not replaced by the cache.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.2"));
        append_forwarded_for_cached(&mut h, a, Some(&cache));
        assert_eq!(h["x-forwarded-for"], "198.51.100.2, 192.0.2.1");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut h, "10.0.0.2".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
        // Several lines (and empty ones) become one.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        h.append("x-forwarded-for", HeaderValue::from_static(" "));
        h.append("x-forwarded-for", HeaderValue::from_static("192.0.2.2 "));
        append_forwarded_for(&mut h, "10.0.0.3".parse().unwrap());
        let lines: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(lines, ["192.0.2.1, 192.0.2.2, 10.0.0.3"]);
    }
}
