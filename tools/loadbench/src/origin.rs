//! The in-process origin every proxy sits in front of.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::scripts::ZIPF_KEYS;

/// Largest body the origin serves; `/bytes/N` above this answers 400.
pub(crate) const MAX_BODY: usize = 16 << 20;

/// Body size of `/obj/*` and of each ESI fragment.
pub(crate) const OBJ_SIZE: usize = 1024;
/// Size of the ESI page as the origin sends it, `<esi:include>` tags included.
pub(crate) const ESI_PAGE_SIZE: usize = 10 * 1024;
/// Fragments included by the ESI page: `/frag/1` ..= `/frag/ESI_FRAGMENTS`.
pub(crate) const ESI_FRAGMENTS: usize = 3;
pub(crate) const ESI_PAGE_PATH: &str = "/esi/page";
/// The same page under another URL (the query is ignored by the origin):
/// the bench's VCL has Varnish store this one gzip'd.
pub(crate) const ESI_GZIP_PAGE_PATH: &str = "/esi/page?gzip";

pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    pub(crate) requests: Arc<AtomicU64>,
}

impl Origin {
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Everything the origin serves, built once.
pub(crate) struct Bodies {
    /// `MAX_BODY` bytes of `x`: `/bytes/N`, `/pass/N` and `/obj/*` are slices of it.
    pub(crate) filler: Bytes,
    /// `/esi/page`.
    pub(crate) esi_page: Bytes,
    /// `/frag/1` ..= `/frag/ESI_FRAGMENTS`, in order.
    pub(crate) fragments: Vec<Bytes>,
    /// `MAX_BODY` bytes of English-like text: `/text/N` is a slice of it.
    pub(crate) text: Bytes,
}

/// Text that compresses about as well as HTML or JSON does (~4:1 with
/// gzip), unlike the filler's single repeated byte.
pub(crate) fn text_filler(len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "cache", "lacquer", "origin", "varnish", "request", "object", "the", "of", "fresh",
        "stale", "header", "compress", "body", "hit", "miss", "range",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x: u32 = 0x9e37_79b9;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
        if x.is_multiple_of(7) {
            out.extend_from_slice((x % 1000).to_string().as_bytes());
            out.push(b' ');
        }
    }
    out.truncate(len);
    out
}

impl Bodies {
    pub(crate) fn new() -> Self {
        Bodies {
            filler: Bytes::from(vec![b'x'; MAX_BODY]),
            esi_page: Bytes::from(esi_page()),
            fragments: (1..=ESI_FRAGMENTS)
                .map(|n| Bytes::from(esi_fragment(n)))
                .collect(),
            text: Bytes::from(text_filler(MAX_BODY)),
        }
    }
}

/// The `ESI_PAGE_SIZE`-byte HTML page: filler paragraphs with one
/// `<esi:include src="/frag/N"/>` between each two of them.
pub(crate) fn esi_page() -> Vec<u8> {
    let head = "<!DOCTYPE html>\n<html><head><title>lacquer ESI bench</title></head><body>\n";
    let tail = "</body></html>\n";
    let includes: Vec<String> = (1..=ESI_FRAGMENTS)
        .map(|n| format!("<esi:include src=\"/frag/{n}\"/>\n"))
        .collect();
    let fixed = head.len() + tail.len() + includes.iter().map(String::len).sum::<usize>();
    let filler = ESI_PAGE_SIZE - fixed;
    let gaps = ESI_FRAGMENTS + 1;
    let mut page = String::with_capacity(ESI_PAGE_SIZE);
    page.push_str(head);
    for gap in 0..gaps {
        // The last paragraph takes the remainder, so the page is exactly ESI_PAGE_SIZE.
        let len = if gap + 1 == gaps {
            filler - filler / gaps * (gaps - 1)
        } else {
            filler / gaps
        };
        // "<p>" + text + "</p>\n"
        page.push_str("<p>");
        page.push_str(&"lorem ipsum ".repeat(len / 12 + 1)[..len - 8]);
        page.push_str("</p>\n");
        if let Some(include) = includes.get(gap) {
            page.push_str(include);
        }
    }
    page.push_str(tail);
    assert_eq!(page.len(), ESI_PAGE_SIZE, "ESI page size");
    page.into_bytes()
}

/// Fragment `n`: `OBJ_SIZE` bytes of HTML, different for each `n`.
pub(crate) fn esi_fragment(n: usize) -> Vec<u8> {
    let open = format!("<div class=\"frag-{n}\">");
    let close = "</div>\n";
    let fill = char::from(b'a' + (n % 26) as u8);
    let mut frag = open.clone();
    frag.push_str(&fill.to_string().repeat(OBJ_SIZE - open.len() - close.len()));
    frag.push_str(close);
    assert_eq!(frag.len(), OBJ_SIZE, "ESI fragment size");
    frag.into_bytes()
}

/// Starts the origin on `listener` on a single-threaded runtime in a background thread.
pub(crate) fn start_origin(listener: TcpListener) -> Origin {
    listener
        .set_nonblocking(true)
        .expect("origin: set listener non-blocking");
    let addr = listener.local_addr().expect("origin: local address");
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let bodies = Arc::new(Bodies::new());
    thread::Builder::new()
        .name("origin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin: build tokio runtime");
            rt.block_on(serve_origin(listener, bodies, counter));
        })
        .expect("origin: spawn thread");
    Origin { addr, requests }
}

async fn serve_origin(listener: TcpListener, bodies: Arc<Bodies>, counter: Arc<AtomicU64>) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("origin: register listener with tokio");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE; back off instead of spinning.
                eprintln!("origin: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let bodies = Arc::clone(&bodies);
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::Relaxed);
                let resp = origin_response(&req, &bodies);
                async move { Ok::<_, Infallible>(resp) }
            });
            // Connection errors (client resets) are expected under load.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The origin's routes (the query string is ignored):
/// - `/bytes/N`: N bytes, cacheable for an hour, with an ETag.
/// - `/text/N`: N bytes of compressible `text/plain`, cacheable, with an ETag.
/// - `/pass/N`: N bytes, `no-store, private`.
/// - `/obj/KEY`: `OBJ_SIZE` bytes for any non-empty KEY, cacheable for an hour.
/// - `/esi/page`: the ESI page, cacheable, with `Surrogate-Control: content="ESI/1.0"`.
/// - `/frag/N` (N in 1..=3): an ESI fragment, cacheable.
/// - `/zipf/K` (K in 0..ZIPF_KEYS): `OBJ_SIZE` bytes, cacheable, one object per K.
///
/// Cacheable responses answer a matching `If-None-Match` with 304.
pub(crate) fn origin_response<B>(req: &Request<B>, bodies: &Bodies) -> Response<Full<Bytes>> {
    let simple = |status: StatusCode, msg: String| {
        let mut resp = Response::new(Full::new(Bytes::from(msg)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return simple(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
    }
    let path = req.uri().path();
    let sized = |n: &str| {
        n.parse::<usize>()
            .ok()
            .filter(|&n| n <= bodies.filler.len())
            .map(|n| bodies.filler.slice(..n))
    };
    let bad_len = || {
        let msg = format!("N must be an integer in 0..={}\n", bodies.filler.len());
        simple(StatusCode::BAD_REQUEST, msg)
    };
    let octets = HeaderValue::from_static("application/octet-stream");
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    let fragment = path
        .strip_prefix("/frag/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=ESI_FRAGMENTS).contains(n));
    // (body, content type, ETag for cacheable responses, ESI page?)
    let (body, content_type, etag, esi) = if let Some(n) = path.strip_prefix("/bytes/") {
        let Some(body) = sized(n) else {
            return bad_len();
        };
        let etag = format!("bytes-{}", body.len());
        (body, octets, Some(etag), false)
    } else if let Some(n) = path.strip_prefix("/text/") {
        let Some(n) = n.parse::<usize>().ok().filter(|&n| n <= bodies.text.len()) else {
            return bad_len();
        };
        let plain = HeaderValue::from_static("text/plain; charset=utf-8");
        (
            bodies.text.slice(..n),
            plain,
            Some(format!("text-{n}")),
            false,
        )
    } else if let Some(n) = path.strip_prefix("/pass/") {
        let Some(body) = sized(n) else {
            return bad_len();
        };
        (body, octets, None, false)
    } else if path
        .strip_prefix("/obj/")
        .is_some_and(|key| !key.is_empty())
    {
        let body = bodies.filler.slice(..OBJ_SIZE);
        (body, octets, Some(format!("obj-{OBJ_SIZE}")), false)
    } else if let Some(k) = path.strip_prefix("/zipf/") {
        if !k.parse::<u64>().is_ok_and(|k| k < ZIPF_KEYS) {
            let msg = format!("K must be an integer in 0..{ZIPF_KEYS}\n");
            return simple(StatusCode::BAD_REQUEST, msg);
        }
        let body = bodies.filler.slice(..OBJ_SIZE);
        (body, octets, Some(format!("zipf-{OBJ_SIZE}")), false)
    } else if path == ESI_PAGE_PATH {
        let body = bodies.esi_page.clone();
        (body, html, Some("esi-page".to_owned()), true)
    } else if let Some(n) = fragment {
        let body = bodies.fragments[n - 1].clone();
        (body, html, Some(format!("frag-{n}")), false)
    } else {
        let msg = "try /bytes/N, /text/N, /pass/N, /obj/KEY, /zipf/K, /esi/page or /frag/1..3\n";
        return simple(StatusCode::NOT_FOUND, msg.into());
    };

    let mut resp = Response::new(Full::new(body));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if esi {
        // The Edge Architecture handshake: lacquer processes ESI on it; the
        // bench's VCL turns it into `beresp.do_esi` for Varnish.
        headers.insert(
            HeaderName::from_static("surrogate-control"),
            HeaderValue::from_static("content=\"ESI/1.0\""),
        );
    }
    let Some(etag) = etag else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store, private"));
        return resp;
    };
    let etag = HeaderValue::from_str(&format!("\"{etag}\""))
        .expect("an ETag made of letters, digits and dashes is a valid header value");
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.as_bytes() == etag.as_bytes())
        });
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    headers.insert(ETAG, etag);
    if not_modified {
        resp.headers_mut().remove(CONTENT_TYPE);
        *resp.body_mut() = Full::new(Bytes::new());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    resp
}
