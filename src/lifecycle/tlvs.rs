//! What a PROXY protocol v2 header's TLVs say about the client connection
//! (ALPN, SNI, TLS details), kept with the connection for vmod proxy.
//! Bounded: the header's whole address block is at most 1 KiB.

/// `PP2_TYPE_ALPN`
const ALPN: u8 = 0x01;
/// `PP2_TYPE_AUTHORITY`
const AUTHORITY: u8 = 0x02;
/// `PP2_TYPE_SSL`
const SSL: u8 = 0x20;
/// `PP2_SUBTYPE_SSL_VERSION`
const SSL_VERSION: u8 = 0x21;
/// `PP2_SUBTYPE_SSL_CN`
const SSL_CN: u8 = 0x22;
/// `PP2_SUBTYPE_SSL_CIPHER`
const SSL_CIPHER: u8 = 0x23;
/// `PP2_SUBTYPE_SSL_SIG_ALG`
const SSL_SIG_ALG: u8 = 0x24;
/// `PP2_SUBTYPE_SSL_KEY_ALG`
const SSL_KEY_ALG: u8 = 0x25;

/// `PP2_CLIENT_SSL`: the client connected over TLS.
pub const CLIENT_SSL: u8 = 0x01;
/// `PP2_CLIENT_CERT_CONN`: it presented a certificate on this connection.
pub const CLIENT_CERT_CONN: u8 = 0x02;
/// `PP2_CLIENT_CERT_SESS`: it presented one in this TLS session.
pub const CLIENT_CERT_SESS: u8 = 0x04;

/// The TLVs lacquer understands; the others are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTlvs {
    /// The protocol negotiated by ALPN (`h2`, `http/1.1`).
    pub alpn: Option<String>,
    /// The host name the client sent (SNI).
    pub authority: Option<String>,
    /// The TLS details, when the client connected over TLS.
    pub ssl: Option<SslTlv>,
}

/// `PP2_TYPE_SSL` and its sub-TLVs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslTlv {
    /// `PP2_CLIENT_*` bits.
    pub client: u8,
    /// The certificate verification result (0: verified).
    pub verify: u32,
    /// `TLSv1.3`, …
    pub version: Option<String>,
    /// The client certificate's common name.
    pub cn: Option<String>,
    /// The cipher.
    pub cipher: Option<String>,
    /// The certificate's signature algorithm.
    pub sig_alg: Option<String>,
    /// The certificate's key algorithm.
    pub key_alg: Option<String>,
}

/// One TLV after another: (type, value). Stops at the first one that
/// does not fit (a truncated TLV is dropped, with what follows it).
fn each(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&kind, rest) = bytes.split_first()?;
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let value = rest.get(2..2 + len)?;
        bytes = &rest[2 + len..];
        Some((kind, value))
    })
}

fn text(value: &[u8]) -> Option<String> {
    std::str::from_utf8(value).ok().map(str::to_string)
}

impl ProxyTlvs {
    /// Reads the TLVs that follow the addresses in a v2 header; `None`
    /// when there is none lacquer understands.
    pub fn parse(bytes: &[u8]) -> Option<ProxyTlvs> {
        let mut tlvs = ProxyTlvs::default();
        for (kind, value) in each(bytes) {
            match kind {
                ALPN => tlvs.alpn = text(value),
                AUTHORITY => tlvs.authority = text(value),
                SSL => tlvs.ssl = SslTlv::parse(value),
                _ => {}
            }
        }
        (tlvs != ProxyTlvs::default()).then_some(tlvs)
    }
}

impl SslTlv {
    fn parse(value: &[u8]) -> Option<SslTlv> {
        let (&client, rest) = value.split_first()?;
        let verify = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let mut ssl = SslTlv {
            client,
            verify,
            ..SslTlv::default()
        };
        for (kind, value) in each(&rest[4..]) {
            let slot = match kind {
                SSL_VERSION => &mut ssl.version,
                SSL_CN => &mut ssl.cn,
                SSL_CIPHER => &mut ssl.cipher,
                SSL_SIG_ALG => &mut ssl.sig_alg,
                SSL_KEY_ALG => &mut ssl.key_alg,
                _ => continue,
            };
            *slot = text(value);
        }
        Some(ssl)
    }
}

/// TLVs as a v2 header carries them (for tests).
pub fn encode(tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, value) in tlvs {
        out.push(*kind);
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&value[..usize::from(len)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_authority_and_ssl() {
        let ssl = [
            vec![CLIENT_SSL | CLIENT_CERT_CONN, 0, 0, 0, 0],
            encode(&[
                (SSL_VERSION, b"TLSv1.3".to_vec()),
                (SSL_CN, b"client.example".to_vec()),
                (SSL_CIPHER, b"TLS_AES_128_GCM_SHA256".to_vec()),
                (0x7f, b"?".to_vec()),
            ]),
        ]
        .concat();
        let bytes = encode(&[
            (0x04, vec![0; 3]), // NOOP
            (ALPN, b"h2".to_vec()),
            (AUTHORITY, b"www.example".to_vec()),
            (SSL, ssl),
        ]);
        let tlvs = ProxyTlvs::parse(&bytes).unwrap();
        assert_eq!(tlvs.alpn.as_deref(), Some("h2"));
        assert_eq!(tlvs.authority.as_deref(), Some("www.example"));
        let ssl = tlvs.ssl.unwrap();
        assert_eq!(ssl.client, CLIENT_SSL | CLIENT_CERT_CONN);
        assert_eq!(ssl.verify, 0);
        assert_eq!(ssl.version.as_deref(), Some("TLSv1.3"));
        assert_eq!(ssl.cn.as_deref(), Some("client.example"));
        assert_eq!(ssl.cipher.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(ssl.sig_alg, None);
    }

    #[test]
    fn truncated_or_unknown_tlvs() {
        assert_eq!(ProxyTlvs::parse(&[]), None);
        assert_eq!(ProxyTlvs::parse(&encode(&[(0x05, b"id".to_vec())])), None);
        // A TLV longer than what is left ends the list.
        let mut bytes = encode(&[(ALPN, b"h2".to_vec())]);
        bytes.extend_from_slice(&[AUTHORITY, 0, 50, b'x']);
        let tlvs = ProxyTlvs::parse(&bytes).unwrap();
        assert_eq!((tlvs.alpn.as_deref(), tlvs.authority), (Some("h2"), None));
        // An SSL TLV too short for its verify field is dropped.
        let tlvs = ProxyTlvs::parse(&encode(&[(SSL, vec![1, 0])]));
        assert_eq!(tlvs, None);
        assert_eq!(ProxyTlvs::parse(&[ALPN, 0]), None);
    }

    #[test]
    fn any_bytes_parse_without_panicking() {
        let ssl = [
            vec![CLIENT_SSL, 0, 0, 0, 1],
            encode(&[(SSL_CN, b"cn".to_vec())]),
        ]
        .concat();
        let full = encode(&[(ALPN, b"h2".to_vec()), (SSL, ssl)]);
        // Every prefix (truncations anywhere), and noise.
        for end in 0..=full.len() {
            let _ = ProxyTlvs::parse(&full[..end]);
        }
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            let _ = ProxyTlvs::parse(&bytes);
        }
        let parsed = ProxyTlvs::parse(&full).unwrap();
        assert_eq!(
            parsed.ssl.map(|s| (s.verify, s.cn)),
            Some((1, Some("cn".into())))
        );
    }
}
