//! The embedded demo: a small origin serving the site in `fixtures/demo/`
//! (compiled into the binary, so it runs from anywhere), for `lacquer` with
//! no arguments and `lacquer origin` (the app in deploy/compose.yaml and
//! tests/it/haproxy.rs). Besides the site: `/time`, `/health` (for probes) and
//! `/echo/headers` (the X-Forwarded-For and Via it received), both
//! uncacheable; `--name` adds an `X-Origin-Name` header to every answer.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

struct Page {
    path: &'static str,
    body: &'static str,
    content_type: &'static str,
    cache_control: Option<&'static str>,
    etag: Option<&'static str>,
    /// Answer with `Surrogate-Control: content="ESI/1.0"`.
    esi: bool,
}

const LAST_MODIFIED_AT: &str = "Sun, 01 Nov 2026 12:00:00 GMT";

const PAGES: &[Page] = &[
    Page {
        path: "/",
        body: include_str!("../fixtures/demo/index.html"),
        content_type: "text/html; charset=utf-8",
        cache_control: Some("max-age=60"),
        etag: Some("\"index-v1\""),
        esi: false,
    },
    Page {
        path: "/shop",
        body: include_str!("../fixtures/demo/shop.html"),
        content_type: "text/html; charset=utf-8",
        cache_control: Some("max-age=60"),
        etag: Some("\"shop-v1\""),
        esi: true,
    },
    Page {
        path: "/fragments/footer",
        body: "<footer>lacquer demo footer (cached for an hour)</footer>\n",
        content_type: "text/html; charset=utf-8",
        cache_control: Some("max-age=3600"),
        etag: None,
        esi: false,
    },
    Page {
        path: "/news",
        body: include_str!("../fixtures/demo/news.html"),
        content_type: "text/html; charset=utf-8",
        cache_control: Some("max-age=5"),
        etag: Some("\"news-v1\""),
        esi: false,
    },
    Page {
        path: "/account",
        body: include_str!("../fixtures/demo/account.html"),
        content_type: "text/html; charset=utf-8",
        cache_control: Some("private, no-store"),
        etag: None,
        esi: false,
    },
    Page {
        path: "/style.css",
        body: include_str!("../fixtures/demo/style.css"),
        content_type: "text/css",
        cache_control: Some("max-age=3600"),
        etag: Some("\"style-v1\""),
        esi: false,
    },
];

/// Starts the demo origin on `addr` (port 0 for any); returns where it listens.
pub async fn start_origin(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    start_named_origin(addr, None).await
}

/// [`start_origin`], with every answer carrying `X-Origin-Name: name` when a
/// name is given (`lacquer origin --name app1`), so several origins behind
/// one director can be told apart.
pub async fn start_named_origin(
    addr: SocketAddr,
    name: Option<String>,
) -> std::io::Result<SocketAddr> {
    let name = match name {
        Some(n) => Some(HeaderValue::try_from(n).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the origin name must be a valid header value",
            )
        })?),
        None => None,
    };
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let hits = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let hits = hits.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let n = hits.fetch_add(1, Ordering::Relaxed) + 1;
                    let mut resp = echo_upgrade(&mut req).unwrap_or_else(|| answer(&req, n));
                    if let Some(name) = &name {
                        resp.headers_mut().insert("x-origin-name", name.clone());
                    }
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(bound)
}

/// `/echo` with `Upgrade: X`: switches to protocol X, then sends back every
/// byte it receives (the demo of a pipe: WebSockets and other upgrades are
/// tunnelled through lacquer). Not a WebSocket server: no framing.
fn echo_upgrade(req: &mut Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if req.uri().path() != "/echo" {
        return None;
    }
    let protocol = req.headers().get(http::header::UPGRADE)?.clone();
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 4096];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().insert(http::header::UPGRADE, protocol);
    resp.headers_mut().insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    Some(resp)
}

fn answer(req: &Request<Incoming>, hits: u64) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let mut resp = Response::new(Full::new(Bytes::new()));
    resp.headers_mut()
        .insert("x-origin-hits", HeaderValue::from(hits));
    if let Some(body) = utility(req, path) {
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        *resp.body_mut() = Full::new(Bytes::from(body));
        return resp;
    }
    if path == "/time" {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        *resp.body_mut() = Full::new(Bytes::from(format!("origin time: {now}\n")));
        return resp;
    }
    if let Some(body) = dynamic_fragment(req, hits) {
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        let cc = if path == "/fragments/price" {
            "max-age=5"
        } else {
            "private"
        };
        h.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
        *resp.body_mut() = Full::new(Bytes::from(body));
        return resp;
    }
    let Some(page) = PAGES.iter().find(|p| p.path == path) else {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        let h = resp.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        *resp.body_mut() = Full::new(Bytes::from_static(b"not found\n"));
        return resp;
    };
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    if page.esi {
        h.insert(
            "surrogate-control",
            HeaderValue::from_static("content=\"ESI/1.0\""),
        );
    }
    h.insert(LAST_MODIFIED, HeaderValue::from_static(LAST_MODIFIED_AT));
    if let Some(cc) = page.cache_control {
        h.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
    }
    if let Some(etag) = page.etag {
        h.insert(ETAG, HeaderValue::from_static(etag));
        let matches = req
            .headers()
            .get(IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        if matches {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
    }
    *resp.body_mut() = Full::new(Bytes::from_static(page.body.as_bytes()));
    resp
}

/// Request headers a proxy in front adds, echoed by `/echo/headers`.
const ECHOED: &[&str] = &["x-forwarded-for", "via"];

/// Uncacheable answers for health probes and tests: `/health` says `ok`;
/// `/echo/headers` answers the proxy headers it received (`X-Forwarded-For`,
/// `Via`), one `name: value` line each, so the client address a cache
/// forwarded can be seen.
fn utility(req: &Request<Incoming>, path: &str) -> Option<String> {
    match path {
        "/health" => Some("ok\n".into()),
        "/echo/headers" => Some(
            req.headers()
                .iter()
                .filter(|(k, _)| ECHOED.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect(),
        ),
        _ => None,
    }
}

/// The fragments of `/shop` that change per request: the price (with the
/// origin's time and hit count, cached 5 s) and the cart (from the `cart`
/// cookie, never stored).
fn dynamic_fragment(req: &Request<Incoming>, hits: u64) -> Option<String> {
    match req.uri().path() {
        "/fragments/price" => Some(format!(
            "<p>42.00 EUR, computed by the origin at {} (origin request #{hits})</p>\n",
            httpdate::fmt_http_date(std::time::SystemTime::now())
        )),
        "/fragments/cart" => {
            let items = req
                .headers()
                .get(http::header::COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|c| {
                    c.split(';')
                        .filter_map(|p| p.trim().split_once('='))
                        .find(|(k, _)| *k == "cart")
                        .map(|(_, v)| v.to_string())
                })
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty())
                .unwrap_or_else(|| "0".into());
            Some(format!("<p>{items} item(s) in your cart</p>\n"))
        }
        _ => None,
    }
}

/// The curl lines printed at demo start.
pub fn curl_lines(addr: SocketAddr) -> String {
    format!(
        "lacquer demo: cache on http://{addr}/ in front of the demo origin.\n\
         Defaults: cache.profile = \"rfc\" (RFC 9111: no grace, stale only where the origin\n\
         allows it with stale-while-revalidate / stale-if-error, or while it is unreachable;\n\
         objects kept 1 h past their lifetime for revalidation). cache.profile =\n\
         \"varnish\" gives Varnish's defaults (default_ttl 120 s, grace 10 s, keep 0). Try:\n\
         \n  # a cached page: the second answer says X-Cache: HIT, X-Origin-Hits stays put\n\
         \x20 curl -si http://{addr}/ | grep -iE '^(x-cache|age|x-origin-hits)'\n\
         \x20 curl -si http://{addr}/ | grep -iE '^(x-cache|age|x-origin-hits)'\n\
         \n  # a revalidated page: fresh 5 s, then an If-None-Match to the origin answered 304\n\
         \x20 curl -si http://{addr}/news | grep -iE '^(x-cache|age|etag)'; sleep 6; curl -si http://{addr}/news | grep -iE '^(x-cache|age|etag)'\n\
         \n  # a conditional request answered 304 from the cache\n\
         \x20 curl -si -H 'If-None-Match: \"index-v1\"' http://{addr}/ | head -1\n\
         \n  # an ESI page: a cached shell, a price cached 5 s, a cart built per cookie\n\
         \x20 curl -s -b cart=3 http://{addr}/shop | sed -n '/<h2>/,/<\\/body>/p'\n\
         \n  # an uncacheable page: every request reaches the origin\n\
         \x20 curl -si http://{addr}/account | grep -iE '^(x-cache|x-origin-hits)'\n"
    )
}
