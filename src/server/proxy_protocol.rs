//! The PROXY protocol (v1 text and v2 binary, as HAProxy's `send-proxy` /
//! `send-proxy-v2` send it): the real client address of a connection that
//! comes through a load balancer, read before any HTTP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::lifecycle::ProxyTlvs;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included (the spec's limit).
const V1_MAX: u64 = 107;
/// Largest v2 address block accepted (addresses plus TLVs).
const V2_MAX: usize = 1024;

/// A header that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection ended or failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// Not a PROXY header, or a malformed one.
    #[error("invalid PROXY header: {0}")]
    Invalid(&'static str),
}

/// A PROXY header read.
#[derive(Debug, Default)]
pub struct ProxyHeader {
    /// The client address it carries; `None` for a `LOCAL` / `UNKNOWN`
    /// connection (a health check from the balancer itself).
    pub client: Option<SocketAddr>,
    /// The v2 TLVs lacquer understands (vmod proxy); `None` for v1 or
    /// without any.
    pub tlvs: Option<ProxyTlvs>,
}

/// Reads a PROXY header from the start of `io`. Returns the client address
/// it carries, or `None` for a `LOCAL` / `UNKNOWN` connection (a health
/// check from the balancer itself): use the socket's peer then.
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    Ok(read_header_tlvs(io).await?.client)
}

/// As [`read_header`], with the TLVs of a v2 header.
pub async fn read_header_tlvs<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut first = [0u8; 12];
    io.read_exact(&mut first[..6]).await?;
    if &first[..6] == b"PROXY " {
        let mut line = Vec::with_capacity(V1_MAX as usize);
        (&mut *io)
            .take(V1_MAX - 6)
            .read_until(b'\n', &mut line)
            .await?;
        return Ok(ProxyHeader {
            client: parse_v1(&line)?,
            tlvs: None,
        });
    }
    io.read_exact(&mut first[6..]).await?;
    if first != V2_SIGNATURE {
        return Err(ProxyHeaderError::Invalid("no PROXY signature"));
    }
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    let [ver_cmd, family, hi, lo] = head;
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Invalid("unsupported version"));
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > V2_MAX {
        return Err(ProxyHeaderError::Invalid("address block too long"));
    }
    let mut block = vec![0u8; len];
    io.read_exact(&mut block).await?;
    let client = match ver_cmd & 0x0f {
        0 => None, // LOCAL
        1 => parse_v2_addresses(family, &block)?,
        _ => return Err(ProxyHeaderError::Invalid("unknown command")),
    };
    // The TLVs follow the addresses (whose size the family gives).
    let addresses = match family >> 4 {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    let tlvs = block.get(addresses..).and_then(ProxyTlvs::parse);
    Ok(ProxyHeader { client, tlvs })
}

fn parse_v1(rest: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let line = rest.strip_suffix(b"\r\n").ok_or(ProxyHeaderError::Invalid(
        "v1 line not ended by CRLF within 107 bytes",
    ))?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::Invalid("v1 not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["UNKNOWN", ..] => Ok(None),
        [proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyHeaderError::Invalid("v1 source address"))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(ProxyHeaderError::Invalid("v1 address family mismatch"));
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| ProxyHeaderError::Invalid("v1 source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyHeaderError::Invalid("v1 fields")),
    }
}

fn parse_v2_addresses(family: u8, block: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let short = ProxyHeaderError::Invalid("v2 address block too short");
    match family >> 4 {
        0 => Ok(None), // AF_UNSPEC
        1 => {
            let b: &[u8; 12] = block
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let port = u16::from_be_bytes([b[8], b[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 => {
            let b: &[u8; 36] = block
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            let port = u16::from_be_bytes([b[32], b[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        _ => Ok(None), // AF_UNIX: no IP to report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut r = BufReader::new(bytes);
        let got = read_header(&mut r).await;
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest).await;
        (got, rest)
    }

    #[tokio::test]
    async fn v1_headers() {
        let (a, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(a.unwrap(), Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (a, _) = read(b"PROXY TCP6 2001:db8::1 ::1 4000 80\r\n").await;
        assert_eq!(a.unwrap(), Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(read(b"PROXY UNKNOWN\r\n").await.0.unwrap(), None);
        for bad in [
            &b"PROXY TCP4 nope 10.0.0.1 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n",
            b"PROXY TCP6 1.2.3.4 10.0.0.1 1 2\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"PROXY TCP4 1.2.3.4",
        ] {
            assert!(
                read(bad).await.0.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(read(long.as_bytes()).await.0.is_err());
    }

    #[tokio::test]
    async fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12]);
        h.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        h.extend_from_slice(b"GET");
        let (a, rest) = read(&h).await;
        assert_eq!(a.unwrap(), Some("198.51.100.9:8080".parse().unwrap()));
        assert_eq!(rest, b"GET");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0.unwrap(), None);
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(read(&short).await.0.is_err());
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(read(&huge).await.0.is_err());
    }

    #[tokio::test]
    async fn v2_tlvs_are_kept() {
        use crate::lifecycle::encode_tlvs;
        let tlvs = encode_tlvs(&[(0x01, b"h2".to_vec()), (0x02, b"www.example".to_vec())]);
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11]);
        h.extend_from_slice(&u16::try_from(12 + tlvs.len()).unwrap().to_be_bytes());
        h.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        h.extend_from_slice(&tlvs);
        h.extend_from_slice(b"GET");
        let mut r = BufReader::new(&h[..]);
        let got = read_header_tlvs(&mut r).await.unwrap();
        assert_eq!(got.client, Some("198.51.100.9:8080".parse().unwrap()));
        let tlvs = got.tlvs.unwrap();
        assert_eq!(tlvs.alpn.as_deref(), Some("h2"));
        assert_eq!(tlvs.authority.as_deref(), Some("www.example"));
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest).await;
        assert_eq!(rest, b"GET");
        // v1 has none.
        let mut r = BufReader::new(&b"PROXY TCP4 203.0.113.7 10.0.0.1 1 80\r\n"[..]);
        assert!(read_header_tlvs(&mut r).await.unwrap().tlvs.is_none());
    }
}
