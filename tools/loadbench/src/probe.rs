//! A minimal HTTP/1.1 client for readiness checks and warm-up.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::origin::{esi_fragment, ESI_FRAGMENTS};

pub(crate) struct SimpleResponse {
    pub(crate) status: u16,
    /// The head's fields, names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    /// The body, de-chunked if it came with `Transfer-Encoding: chunked`.
    pub(crate) body: Vec<u8>,
}

impl SimpleResponse {
    /// The first value of field `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` over a fresh connection with `Connection: close`.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> io::Result<SimpleResponse> {
    http_get_with(addr, path, "")
}

/// [`http_get`] with `extra` header lines (each ending in CRLF).
pub(crate) fn http_get_with(
    addr: SocketAddr,
    path: &str,
    extra: &str,
) -> io::Result<SimpleResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: lacquer-bench\r\n{extra}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let bad = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of response head"))?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let raw = &buf[head_end + 4..];
    let body = if chunked {
        dechunk(raw).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        raw.to_vec()
    };
    Ok(SimpleResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a complete `Transfer-Encoding: chunked` body (trailers ignored).
pub(crate) fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&data[..line_end]).ok()?;
        // "SIZE[;extensions]"
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        let chunk = data.get(..size)?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..)?;
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks that the ESI page fetched through a proxy was assembled: every
/// fragment's bytes are in it and no `<esi:` markup is left. `Err` says what
/// is wrong.
pub(crate) fn check_esi_page(body: &[u8]) -> Result<(), String> {
    let raw_tags = contains(body, b"<esi:");
    let missing: Vec<String> = (1..=ESI_FRAGMENTS)
        .filter(|&n| !contains(body, &esi_fragment(n)))
        .map(|n| format!("/frag/{n}"))
        .collect();
    match (raw_tags, missing.is_empty()) {
        (false, true) => Ok(()),
        (true, _) if missing.len() == ESI_FRAGMENTS => Err(format!(
            "ESI NOT PROCESSED: page delivered raw ({} bytes, `<esi:` tags left, no fragment)",
            body.len()
        )),
        _ => Err(format!(
            "ESI INCOMPLETE: {} bytes, `<esi:` tags left: {}, fragments missing: {}",
            body.len(),
            if raw_tags { "yes" } else { "no" },
            if missing.is_empty() {
                "none".to_owned()
            } else {
                missing.join(" ")
            }
        )),
    }
}
