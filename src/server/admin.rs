//! The admin listener: a small HTTP API for operators, the `lacquer ban` /
//! `lacquer purge` commands, and peers forwarding invalidations. With
//! `admin.secret` set, every request but a peer's (signed) `/cluster/apply`
//! needs `Authorization: Bearer <admin.secret>`, else gets 401.
//!
//! | request | does |
//! |---|---|
//! | `POST /ban` (body: expression) | adds a ban |
//! | `GET /bans` | lists bans: id, age in seconds, expression |
//! | `POST /purge` (body: URL; `X-Purge: soft`) | purges a URL's variants |
//! | `POST /purge/keys` (body: keys; `X-Purge: soft`) | purges by surrogate key |
//! | `GET /counts` | objects, bytes, bans |
//! | `GET /metrics` | Prometheus metrics |
//! | `POST /reload` | re-reads the settings file and the policy it names, and swaps both in (400 with the error, old ones kept; restart-only keys listed as "needs restart") |
//! | `GET /backends` | name, address, healthy/sick, recent probes, the last error in full (clients only see a fixed reason) |
//! | `POST /cluster/apply` | a peer's invalidation (id, timestamp and HMAC headers; see [`crate::cluster`]) |

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;

use crate::body::RespBody;
use crate::cache::tags::parse_keys;
use crate::cluster::APPLY_PATH;
use crate::invalidate::op::Invalidation;
use crate::pipeline::{answer, synth, InvalidationSource, Proxy};
use crate::server::descriptors::AcceptBackoff;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 << 10;

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    let mut backoff = AcceptBackoff::new("admin", &listener);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => {
                backoff.accepted();
                c
            }
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(handle(&proxy, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(client = %peer, error = %e, "admin connection ended");
            }
        });
    }
}

async fn handle(proxy: &Proxy, req: Request<Incoming>) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    // Peers sign their requests with cluster.secret instead.
    if parts.uri.path() != APPLY_PATH && !authorized(&proxy.config().admin.secret, &parts.headers) {
        crate::log_limited!(
            5,
            warn,
            path = parts.uri.path(),
            "admin request without the admin.secret refused"
        );
        let mut resp = synth(
            StatusCode::UNAUTHORIZED,
            "admin.secret is set: send Authorization: Bearer <admin.secret> \
             (lacquer commands: LACQUER_ADMIN_SECRET or -c FILE)",
        );
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"lacquer admin\""),
        );
        return resp;
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return synth(
                StatusCode::PAYLOAD_TOO_LARGE,
                "admin request bodies are limited to 64 KiB",
            )
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return synth(StatusCode::BAD_REQUEST, "the body must be UTF-8 text");
    };
    let text = text.trim();
    let mode = proxy.purge_mode(&parts.headers);
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/ban") => {
            let inv = Invalidation::Ban(text.to_string());
            answer(&inv, proxy.invalidate(&inv, InvalidationSource::Admin))
        }
        (&Method::GET, "/bans") => {
            let now = SystemTime::now();
            let mut out = String::new();
            for ban in proxy.bans().list() {
                let age = now
                    .duration_since(ban.created)
                    .unwrap_or_default()
                    .as_secs();
                out.push_str(&format!("{}\t{}s\t{}\n", ban.id, age, ban.expr));
            }
            text_response(out)
        }
        (&Method::POST, "/purge") => {
            let Some((host, url)) = split_url(text, &parts.headers) else {
                return synth(
                    StatusCode::BAD_REQUEST,
                    "body: an absolute URL (http://host/path) or a path with a Host header",
                );
            };
            let inv = Invalidation::Url { mode, host, url };
            answer(&inv, proxy.invalidate(&inv, InvalidationSource::Admin))
        }
        (&Method::POST, "/purge/keys") => {
            let keys: Vec<String> = parse_keys(text).map(str::to_string).collect();
            let inv = Invalidation::Keys { mode, keys };
            answer(&inv, proxy.invalidate(&inv, InvalidationSource::Admin))
        }
        (&Method::GET, "/counts") => text_response(format!(
            "keys {}\nbytes {}\nbans {}\n",
            proxy.store().entry_count(),
            proxy.store().stored_bytes(),
            proxy.bans().len(),
        )),
        (&Method::GET, "/metrics") => text_response(proxy.render_metrics()),
        (&Method::POST, "/reload") => match proxy.reload_policy() {
            Ok(msg) => synth(StatusCode::OK, msg),
            Err(e) => synth(
                StatusCode::BAD_REQUEST,
                &format!("not reloaded (settings and policy unchanged):\n{e}"),
            ),
        },
        (&Method::GET, "/backends") => {
            let mut out = String::new();
            for b in proxy.director().backends() {
                let state = if b.is_healthy() { "healthy" } else { "sick" };
                let last_error = b.last_error().map_or(String::new(), |(at, e)| {
                    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
                    format!("last error {}s ago: {e}", ago.as_secs())
                });
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    b.name(),
                    b.address(),
                    state,
                    b.probe_history(),
                    last_error
                ));
            }
            text_response(out)
        }
        (&Method::POST, APPLY_PATH) => apply_from_peer(proxy, &parts.headers, &body, text),
        _ => synth(StatusCode::NOT_FOUND, "unknown admin request"),
    }
}

fn apply_from_peer(
    proxy: &Proxy,
    headers: &http::HeaderMap,
    body: &[u8],
    text: &str,
) -> Response<RespBody> {
    let Some(cluster) = proxy.cluster() else {
        return synth(StatusCode::FORBIDDEN, "this node has no cluster secret");
    };
    let id = match cluster.verify(headers, body) {
        Ok(id) => id,
        Err(e) => {
            crate::log_limited!(5, warn, error = %e, "forwarded invalidation refused");
            return synth(e.status(), &e.to_string());
        }
    };
    let inv = match Invalidation::decode(text) {
        Ok(inv) => inv,
        Err(e) => return synth(StatusCode::BAD_REQUEST, &e),
    };
    if !cluster.first_time(id) {
        return synth(StatusCode::OK, &format!("{id} already applied"));
    }
    answer(&inv, proxy.invalidate(&inv, InvalidationSource::Peer))
}

/// Whether a request may use the admin API: always when `secret` is empty,
/// else when it carries `Authorization: Bearer <secret>` (compared in
/// constant time).
fn authorized(secret: &str, headers: &http::HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    if secret.is_empty() {
        return true;
    }
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let (scheme, token) = value.split_at(value.len().min(7));
    scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(token.ct_eq(secret.as_bytes()))
}

/// Host (in the form requests are keyed by) and path-and-query of a purge
/// target.
fn split_url(text: &str, headers: &http::HeaderMap) -> Option<(String, String)> {
    use crate::http::headers::{default_port, normalize_host};
    let uri: Uri = text.parse().ok()?;
    let url = uri.path_and_query()?.as_str().to_string();
    let host = match uri.authority() {
        Some(a) => normalize_host(a.as_str(), default_port(uri.scheme())).ok()?,
        None => normalize_host(
            headers.get(http::header::HOST)?.to_str().ok()?,
            default_port(None),
        )
        .ok()?,
    };
    Some((host, url))
}

fn text_response(text: String) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(Bytes::from(text)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
