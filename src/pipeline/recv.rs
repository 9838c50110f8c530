//! recv: turn a hyper request into a [`RequestCtx`], refusing what cannot be
//! served.

use http::header::{HeaderValue, CACHE_CONTROL, HOST, PRAGMA};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Live;

use crate::esi::chain::IncludeChain;

use crate::http::headers::remove_hop_by_hop;

/// One client request as the lifecycle sees it.
#[derive(Debug)]
pub struct RequestCtx {
    /// Request method.
    pub method: Method,
    /// Client protocol version.
    pub version: Version,
    /// Host the request is for (from the absolute URI or the Host header).
    pub host: String,
    /// Path and query, as received.
    pub url: String,
    /// Request headers, hop-by-hop ones removed.
    pub headers: HeaderMap,
    /// Client address.
    pub client: SocketAddr,
    /// Request body, for passes.
    pub body: Option<Incoming>,
    /// Skip the cached object (client `no-cache` when honoured).
    pub always_miss: bool,
    /// For an ESI fragment request: the pages it is included from.
    pub esi: Option<Arc<IncludeChain>>,
    /// The settings and policy this request runs under (taken when it
    /// arrived; a reload does not change them).
    pub live: Arc<Live>,
    /// How many times the policy restarted it (`req.restarts`).
    pub restarts: u32,
    /// `req.ttl`: objects older than this are not fresh for this request.
    pub max_ttl: Option<Duration>,
    /// `req.grace`: the most grace this request accepts.
    pub max_grace: Option<Duration>,
    /// A background refresh: its response is dropped, so an ESI page it
    /// fetches is stored but not assembled (no fragment fetched for nobody).
    pub background: bool,
}

/// A request refused at recv.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// Status to answer with.
    pub status: StatusCode,
    /// Why.
    pub message: &'static str,
}

fn refuse(message: &'static str) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}

impl RequestCtx {
    /// Builds the context, refusing requests that are malformed for a proxy.
    pub fn from_parts(
        parts: Parts,
        body: Incoming,
        client: SocketAddr,
        live: Arc<Live>,
    ) -> Result<RequestCtx, Refused> {
        let mut headers = parts.headers;
        let mut hosts = headers.get_all(HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(refuse("more than one Host header"));
        }
        let host = match (parts.uri.authority(), host_header) {
            (Some(a), _) => a.as_str().to_string(),
            (None, Some(h)) => h
                .to_str()
                .ok()
                .filter(|h| valid_host(h))
                .ok_or_else(|| refuse("invalid Host header"))?
                .to_ascii_lowercase(),
            (None, None) if parts.version == Version::HTTP_10 => String::new(),
            (None, None) => return Err(refuse("HTTP/1.1 request without a Host header")),
        };
        if parts.uri.authority().is_some() {
            // Absolute-form: the URI's authority wins (RFC 9112 §3.2.2).
            if let Ok(v) = HeaderValue::from_str(&host) {
                headers.insert(HOST, v);
            }
        }
        let url = match parts.uri.path_and_query() {
            Some(pq) if parts.method != Method::OPTIONS || pq.as_str() != "*" => {
                pq.as_str().to_string()
            }
            Some(pq) => pq.as_str().to_string(),
            None => "/".to_string(),
        };
        remove_hop_by_hop(&mut headers);
        let always_miss = live.config.cache.honor_client_no_cache && client_no_cache(&headers);
        Ok(RequestCtx {
            method: parts.method,
            version: parts.version,
            host,
            url,
            headers,
            client,
            body: Some(body),
            always_miss,
            esi: None,
            live,
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: false,
        })
    }

    /// A body-less copy for a background fetch.
    pub fn detached(&self) -> RequestCtx {
        RequestCtx {
            method: Method::GET,
            version: self.version,
            host: self.host.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            client: self.client,
            body: None,
            always_miss: false,
            esi: self.esi.clone(),
            live: self.live.clone(),
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: true,
        }
    }
}

/// A Host value: `host[:port]` with no spaces or control bytes.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

fn client_no_cache(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case(token))
    };
    has(CACHE_CONTROL, "no-cache") || has(PRAGMA, "no-cache")
}
