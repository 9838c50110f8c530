//! recv: turn a client's request into a [`Task`], refusing what cannot be
//! served.

use crate::h1::RequestBody;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, HOST, PRAGMA, UPGRADE};
use http::request::Parts;
use http::{HeaderMap, Method, Uri, Version};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::lifecycle::{Failure, FailureKind, Live, Task, UpgradeRequest};

use crate::http::headers::{
    default_port, forwarded_for, normalize_host, remove_hop_by_hop, HostError, X_FORWARDED_FOR,
};
use crate::http::req_fields::{name_bit, FieldsRead};

/// A refusal at recv: a 400 saying what was wrong with the client's own
/// request (static text, so nothing else can end up in it).
fn refuse(message: &'static str) -> Failure {
    Failure::new(FailureKind::BadRequest).telling(message)
}

/// The methods a 405 to CONNECT names: every standard one lacquer forwards.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE";

/// Which host a request is for: its absolute-form target's authority,
/// else its `Host`, else `server.default_host` (HTTP/1.0 only), each in
/// the form of [`normalize_host`].
fn request_host(
    uri: &Uri,
    version: Version,
    host_header: Option<&HeaderValue>,
    default_host: Option<&str>,
) -> Result<String, Failure> {
    let refused = |e: HostError| match e {
        HostError::Userinfo => refuse("userinfo (user:password@) in the request target"),
        HostError::Invalid => refuse("invalid authority in the request target"),
    };
    if let Some(a) = uri.authority() {
        // Absolute-form: the URI's authority wins (RFC 9112 §3.2.2).
        return normalize_host(a.as_str(), default_port(uri.scheme())).map_err(refused);
    }
    match (host_header, default_host) {
        (Some(h), _) => h
            .to_str()
            .ok()
            .and_then(|h| normalize_host(h, default_port(None)).ok())
            .ok_or_else(|| refuse("invalid Host header")),
        (None, _) if version != Version::HTTP_10 => {
            Err(refuse("HTTP/1.1 request without a Host header"))
        }
        (None, Some(d)) => {
            normalize_host(d, default_port(None)).map_err(|_| refuse("invalid server.default_host"))
        }
        (None, None) => Err(refuse(
            "HTTP/1.0 request without a Host header (and no server.default_host)",
        )),
    }
}

impl Task {
    /// Builds the context, refusing requests that are malformed for a proxy.
    pub fn from_parts(
        parts: Parts,
        body: RequestBody,
        client: SocketAddr,
        conn: Option<&crate::lifecycle::ConnInfo>,
        live: Arc<Live>,
    ) -> Result<Task, Failure> {
        let mut headers = parts.headers;
        let mut extensions = parts.extensions;
        if parts.method == Method::CONNECT {
            // No tunnels (there is no pipe): a backend's 200 would leave
            // the client without an answer.
            return Err(Failure::new(FailureKind::MethodNotAllowed)
                .telling("CONNECT is not supported")
                .allowing(ALLOWED_METHODS));
        }
        let default_host = live.config.server.default_host.as_deref();
        let mut hosts = headers.get_all(HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(refuse("more than one Host header"));
        }
        let host = request_host(&parts.uri, parts.version, host_header, default_host)?;
        // What the backend sees is what the object is keyed by; a Host
        // already in that form (the usual case) is left as it is, so the
        // hit path does not copy it.
        let already = host_header.is_some_and(|h| h.as_bytes() == host.as_bytes());
        if !already {
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
        // The server leaves the means to take the connection over in the
        // extensions of a request asking to upgrade (`h1`): only such a
        // request's fields are looked at for it.
        let upgrade = if extensions.get::<crate::h1::OnUpgrade>().is_some() {
            upgrade_protocol(&headers).and_then(|protocol| {
                let connection = extensions.remove::<crate::h1::OnUpgrade>()?;
                Some(UpgradeRequest {
                    protocol,
                    connection,
                })
            })
        } else {
            None
        };
        remove_hop_by_hop(&mut headers);
        let always_miss = live.config.cache.honor_client_no_cache && client_no_cache(&headers);
        let keep_original = live.hooks.rollback;
        let mut task = Task {
            method: parts.method,
            version: parts.version,
            host,
            url,
            headers: headers.into(),
            client,
            body: Some(body),
            always_miss,
            esi: None,
            live,
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: false,
            piped: false,
            upgrade,
            conn: None,
            services: None,
            xid: crate::lifecycle::next_xid(),
            client_identity: None,
            hit_for_miss_until: None,
            vcl_log: Vec::new(),
            original: None,
            cached_body: None,
            backend_hint: None,
            vmods: None,
            lookup_key: None,
        };
        // Under a loaded VCL before the policy sees the request, as Varnish
        // does: `vcl_recv` reads the chain with the client in it, the
        // backend gets it as the policy left it, and what else looks at
        // the request's fields sees it too (a `Vary: X-Forwarded-For`
        // variant, a ban on `req.http.X-Forwarded-For` from the admin API
        // or `std.ban`), even when the policy's text never names it. Set
        // as a change beside the request's map (`ReqFields`), not in it: a
        // hit never builds the map anew, and an insert into it (the name
        // hashed, the map grown) was ~630 instructions of a policy's hit.
        // lacquer's own policy reads none of that: added to backend
        // requests only (`pipeline::bereq`), so hits do not pay for it.
        if task.live.hooks.varnish {
            let cache = conn.map(|c| &c.client_text);
            let chain = forwarded_for(task.headers.get_all(&X_FORWARDED_FOR), client.ip(), cache);
            if let Some(chain) = chain {
                let bit = name_bit(&X_FORWARDED_FOR);
                task.headers.insert_known(X_FORWARDED_FOR, chain, bit);
            }
        }
        if keep_original {
            task.keep_original();
        }
        Ok(task)
    }
}

/// The protocol a request asks to switch to: its `Upgrade` value when its
/// `Connection` names `upgrade` (RFC 9110 §7.8).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
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
