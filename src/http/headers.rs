//! Header transforms at the proxy boundary: hop-by-hop removal (RFC 9110
//! §7.6.1), `Via`, `X-Forwarded-For`.

use http::header::{HeaderName, HeaderValue, CONNECTION, VIA};
use http::{HeaderMap, Version};
use std::net::IpAddr;

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// A message framed by `Transfer-Encoding` also loses its `Content-Length`:
/// the body was read by the transfer coding (RFC 9112 §6.3: it wins, and a
/// forwarding intermediary removes the length), and passing the stale length
/// on would let the next hop cut the body short or read into the next
/// message.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        headers.remove(http::header::CONTENT_LENGTH);
    }
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
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends this proxy to `Via` (RFC 9110 §7.6.3).
pub fn append_via(headers: &mut HeaderMap, version: Version, name: &str) {
    let proto = match version {
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{proto} {name}")) {
        headers.append(VIA, v);
    }
}

/// Appends the client address to `X-Forwarded-For`.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    const XFF: &str = "x-forwarded-for";
    let value = match headers.get(XFF).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(XFF, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().unwrap());
        append_forwarded_for(&mut h, "10.0.0.2".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2");
    }
}
