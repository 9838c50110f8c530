//! purge: invalidations — PURGE of a URL's variants, PURGE by surrogate
//! key, BAN, hard (removed) or soft (marked stale) — and the one entry every
//! way in ends in, [`Proxy::invalidate`]: PURGE and BAN requests (clients in
//! the purge ACL), the admin API, peers, and successful unsafe methods
//! (RFC 9111 §4.4). A URL's cache key is computed in one place,
//! [`key_for`], with the policy's `vcl_hash`.

use crate::http::req_fields::FieldsRead;
use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, Version};
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Live, Proxy, Served, Task};
use crate::body::RespBody;
use crate::cache::store::PurgeMode;
use crate::cache::tags::parse_keys;
use crate::cache::CacheKey;
use crate::http::headers::{default_port, normalize_host};
use crate::invalidate::ban_expr::BanParseError;
use crate::invalidate::bans::{Ban, BanLimitError, BanLimits};
use crate::invalidate::op::Invalidation;
use crate::lifecycle::{synth, Failure, FailureKind};
use crate::observe::metrics::InvalidationKind;
use crate::policy::ClientAction;

/// Where an invalidation comes from: decides which request a URL's key is
/// computed from, whether it goes to peers, and how it is counted.
#[derive(Debug, Clone, Copy)]
pub enum InvalidationSource<'a> {
    /// A PURGE or BAN request from a client in the purge ACL. A URL purge
    /// of the request's own host + URL is keyed by `vcl_hash` on that
    /// request (its headers count, as in Varnish).
    Request(&'a Task),
    /// The admin API (`lacquer purge`, `lacquer ban`).
    Admin,
    /// A peer node: applied here, not forwarded again.
    Peer,
    /// A successful POST, PUT, DELETE or PATCH (RFC 9111 §4.4): hard, on
    /// this node only, counted as `unsafe_method` when it removed
    /// something.
    UnsafeMethod(&'a Task),
    /// The policy, while running for this request (`ban()`, `std.ban()` in
    /// VCL): as a BAN request, without the purge ACL (the policy decides).
    Policy(&'a Task),
    /// The policy in a backend subroutine (no client request at hand).
    PolicyFetch,
}

impl InvalidationSource<'_> {
    /// The client request behind it, if any.
    fn request(&self) -> Option<&Task> {
        match self {
            InvalidationSource::Request(req)
            | InvalidationSource::UnsafeMethod(req)
            | InvalidationSource::Policy(req) => Some(req),
            InvalidationSource::Admin
            | InvalidationSource::Peer
            | InvalidationSource::PolicyFetch => None,
        }
    }

    /// Whether peers get it: not what came from a peer, and not §4.4 (a
    /// write invalidates where it was served, as RFC 9111 describes for one
    /// cache).
    fn forwarded(&self) -> bool {
        matches!(
            self,
            InvalidationSource::Request(_)
                | InvalidationSource::Admin
                | InvalidationSource::Policy(_)
                | InvalidationSource::PolicyFetch
        )
    }
}

impl std::fmt::Display for InvalidationSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvalidationSource::Request(req) => write!(f, "client {}", req.client.ip()),
            InvalidationSource::Admin => f.write_str("admin"),
            InvalidationSource::Peer => f.write_str("peer"),
            InvalidationSource::UnsafeMethod(req) => {
                write!(f, "{} by {}", req.method, req.client.ip())
            }
            InvalidationSource::PolicyFetch => f.write_str("policy, backend fetch"),
            InvalidationSource::Policy(req) => {
                write!(
                    f,
                    "policy, {} {} from {}",
                    req.method,
                    req.url,
                    req.client.ip()
                )
            }
        }
    }
}

/// The request a URL is keyed by when no client request for it is at hand
/// (admin API, peers, §4.4 `Location` targets): a bare `GET` of `url` with
/// only `Host: host`, from the unspecified address. `vcl_recv` does not run
/// on it; a `vcl_hash` reading other headers sees them absent.
pub fn bare_get(live: Arc<Live>, host: &str, url: &str) -> Task {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(HOST, v);
    }
    Task::internal(
        live,
        host.to_string(),
        url.to_string(),
        headers,
        SocketAddr::from(([0, 0, 0, 0], 0)),
        Version::HTTP_11,
    )
}

/// The cache key of `host` + `url` under `live`'s policy (`vcl_hash`): the
/// one key function of every invalidation. Computed from `req` when it is a
/// request for that host + URL, else from [`bare_get`].
pub fn key_for(live: &Arc<Live>, host: &str, url: &str, req: Option<&Task>) -> CacheKey {
    match req {
        Some(req) if req.host == host && req.url == url => {
            // vcl_hash may change the request it runs on; this one is
            // already on its way, so it runs on a copy.
            let mut copy = req.detached();
            copy.method = req.method.clone();
            copy.restarts = req.restarts;
            live.policy.hash(&mut copy)
        }
        _ => live.policy.hash(&mut bare_get(live.clone(), host, url)),
    }
}

/// Why an invalidation was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidationError {
    /// The ban expression does not parse.
    #[error("ban expression: {0}")]
    Ban(#[from] BanParseError),
    /// The ban list has no room for the ban.
    #[error("{0}")]
    BanLimit(#[from] BanLimitError),
    /// A key purge named no key.
    #[error("no surrogate key given")]
    NoKeys,
    /// A key purge named too many keys.
    #[error("{0} keys in one purge; at most {1} (invalidation.max_keys_per_purge)")]
    TooManyKeys(usize, usize),
}

/// What an invalidation did.
#[derive(Debug)]
pub enum Applied {
    /// Objects purged (or soft-purged).
    Purged(usize),
    /// The ban added.
    Banned(Arc<Ban>),
}

impl Proxy {
    /// Applies an invalidation on this node, counts it
    /// (`lacquer_invalidations_total{kind}`), logs it, and forwards it to
    /// every peer unless it came from one (or from an unsafe method): the
    /// one entry of every invalidation.
    pub fn invalidate(
        &self,
        inv: &Invalidation,
        source: InvalidationSource<'_>,
    ) -> Result<Applied, InvalidationError> {
        let live = source
            .request()
            .map_or_else(|| self.live.load_full(), |req| req.live.clone());
        let (applied, kind) = match inv {
            Invalidation::Url { mode, host, url } => {
                let key = key_for(&live, host, url, source.request());
                let count = self.store.purge(&key, *mode, |_| true);
                let kind = match source {
                    InvalidationSource::UnsafeMethod(_) => InvalidationKind::UnsafeMethod,
                    _ => InvalidationKind::Purge,
                };
                (Applied::Purged(count), kind)
            }
            Invalidation::Keys { mode, keys } => {
                let max = live.config.invalidation.max_keys_per_purge;
                if keys.is_empty() {
                    return Err(InvalidationError::NoKeys);
                }
                if keys.len() > max {
                    return Err(InvalidationError::TooManyKeys(keys.len(), max));
                }
                // Each object once, whichever of its keys matched.
                let count = self.store.purge_tags(keys, *mode);
                (Applied::Purged(count), InvalidationKind::KeyPurge)
            }
            Invalidation::Ban(text) => {
                let inv = &live.config.invalidation;
                let limits = BanLimits {
                    max_bans: inv.max_bans,
                    max_bytes: inv.ban_memory.0,
                };
                let expr = self.bans.parse(text)?;
                match self.bans.add(expr, limits) {
                    Ok(ban) => (Applied::Banned(ban), InvalidationKind::Ban),
                    Err(e) => {
                        crate::log_limited!(10, warn, error = %e, bans = self.bans.len(), bytes = self.bans.bytes(), "ban refused");
                        return Err(e.into());
                    }
                }
            }
        };
        if let InvalidationSource::UnsafeMethod(_) = source {
            // Most writes find nothing stored: neither counted nor logged
            // above debug.
            tracing::debug!(%source, invalidation = %inv.encode(), result = ?applied, "invalidated after unsafe method");
            if matches!(applied, Applied::Purged(0)) {
                return Ok(applied);
            }
        } else {
            tracing::info!(%source, invalidation = %inv.encode(), result = ?applied, "invalidation applied");
        }
        self.metrics.count_invalidation(kind);
        if source.forwarded() {
            if let Some(cluster) = &self.cluster {
                cluster.forward(inv);
            }
        }
        Ok(applied)
    }

    /// RFC 9111 §4.4: the target URI, and same-host `Location` /
    /// `Content-Location` URLs, lose their stored responses (hard, this
    /// node only). Each URL that had something stored counts once.
    pub(super) fn invalidate_after_unsafe(&self, ctx: &Task, headers: &HeaderMap) {
        let mut urls = vec![ctx.url.clone()];
        for name in [LOCATION, CONTENT_LOCATION] {
            let Some(uri) = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let same_host = uri.authority().is_none_or(|a| {
                normalize_host(a.as_str(), default_port(uri.scheme())).is_ok_and(|h| h == ctx.host)
            });
            if let (true, Some(pq)) = (same_host, uri.path_and_query()) {
                if !urls.iter().any(|u| u == pq.as_str()) {
                    urls.push(pq.as_str().to_string());
                }
            }
        }
        for url in urls {
            let inv = Invalidation::Url {
                mode: PurgeMode::Hard,
                host: ctx.host.clone(),
                url,
            };
            // A URL purge cannot be refused.
            let _ = self.invalidate(&inv, InvalidationSource::UnsafeMethod(ctx));
        }
    }

    /// Handles a PURGE request; then `vcl_purge` may choose the answer.
    pub(super) fn purge(&self, ctx: &mut Task) -> Served {
        if let Some(refused) = self.refuse_outside_acl(ctx) {
            return refused;
        }
        let (status, message) = self.apply_purge(ctx);
        if !ctx.live.hooks.purge || !(status.is_success() || status == StatusCode::NOT_FOUND) {
            return Served::Synth(status, message);
        }
        let live = ctx.live.clone();
        match live.policy.purge(ctx) {
            ClientAction::Synth(status, reason) => Served::Synth(status, reason),
            ClientAction::Restart => Served::Restart,
            ClientAction::Fail => Served::failed(FailureKind::PolicyFailed, "vcl_purge"),
            _ => Served::Synth(status, message),
        }
    }

    /// Applies a PURGE: by surrogate key when the request names keys, else
    /// the URL's objects (under the policy's hash). The answer's status and
    /// message.
    fn apply_purge(&self, ctx: &Task) -> (StatusCode, String) {
        let mode = purge_mode(&ctx.live.config, &ctx.headers);
        let key_header = ctx
            .live
            .keys
            .headers
            .iter()
            .find(|h| ctx.headers.contains_key(*h));
        let inv = match key_header {
            Some(header) => {
                let mut keys: Vec<String> = Vec::new();
                for v in ctx.headers.get_all(header) {
                    let Ok(v) = v.to_str() else {
                        return (
                            StatusCode::BAD_REQUEST,
                            "surrogate keys must be ASCII".into(),
                        );
                    };
                    keys.extend(parse_keys(v).map(str::to_string));
                }
                keys.sort_unstable();
                keys.dedup();
                Invalidation::Keys { mode, keys }
            }
            None => Invalidation::Url {
                mode,
                host: ctx.host.clone(),
                url: ctx.url.clone(),
            },
        };
        answer_parts(
            &inv,
            self.invalidate(&inv, InvalidationSource::Request(ctx)),
        )
    }

    /// Handles a BAN request: the expression is in `X-Ban`.
    pub(super) fn ban(&self, ctx: &Task) -> Served {
        if let Some(refused) = self.refuse_outside_acl(ctx) {
            return refused;
        }
        let Some(text) = ctx.headers.get("x-ban") else {
            return Served::Failed(
                Failure::new(FailureKind::BadRequest)
                    .telling("BAN needs the expression in an X-Ban header"),
            );
        };
        let Ok(text) = text.to_str() else {
            return Served::Failed(
                Failure::new(FailureKind::BadRequest)
                    .telling("X-Ban: the expression must be ASCII"),
            );
        };
        let inv = Invalidation::Ban(text.to_string());
        let (status, message) = answer_parts(
            &inv,
            self.invalidate(&inv, InvalidationSource::Request(ctx)),
        );
        Served::Synth(status, message)
    }

    /// `soft` when the soft-purge header (of the settings in force) says so.
    pub fn purge_mode(&self, headers: &HeaderMap) -> PurgeMode {
        purge_mode(&self.live.load().config, headers)
    }

    fn refuse_outside_acl(&self, ctx: &Task) -> Option<Served> {
        let ip = ctx.client.ip();
        if ctx.live.config.invalidation.purge_acl.allows(ip) {
            return None;
        }
        // Logged (with the address and method) where failures are.
        Some(Served::Failed(
            Failure::new(FailureKind::MethodNotAllowed)
                .telling("not allowed from this address")
                .because(format!(
                    "{} from {ip}: outside invalidation.purge_acl",
                    ctx.method
                )),
        ))
    }
}

impl crate::lifecycle::PolicyServices for Proxy {
    fn ban(&self, req: Option<&Task>, expr: &str) -> Result<(), String> {
        let inv = Invalidation::Ban(expr.to_string());
        let source = match req {
            Some(req) => InvalidationSource::Policy(req),
            None => InvalidationSource::PolicyFetch,
        };
        match self.invalidate(&inv, source) {
            Ok(_) => Ok(()),
            Err(e) => {
                crate::log_limited!(10, warn, error = %e, %source, "ban from the policy refused");
                Err(e.to_string())
            }
        }
    }

    fn healthy(&self, name: &str) -> Option<bool> {
        self.live().health.healthy(name)
    }

    fn purge_keys(&self, req: Option<&Task>, keys: &str, soft: bool) -> Result<usize, String> {
        // As Varnish's xkey: separated by spaces or commas.
        let mut keys: Vec<String> = keys
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            // Varnish's xkey purges nothing and says 0.
            return Ok(0);
        }
        let mode = if soft {
            PurgeMode::Soft
        } else {
            PurgeMode::Hard
        };
        let source = match req {
            Some(req) => InvalidationSource::Policy(req),
            None => InvalidationSource::PolicyFetch,
        };
        match self.invalidate(&Invalidation::Keys { mode, keys }, source) {
            Ok(Applied::Purged(n)) => Ok(n),
            Ok(Applied::Banned(_)) => Ok(0),
            Err(e) => {
                crate::log_limited!(10, warn, error = %e, %source, "xkey purge from the policy refused");
                Err(e.to_string())
            }
        }
    }

    fn purge_key(&self, req: &Task, key: &CacheKey, soft: Option<vcl_lite::SoftPurge>) -> usize {
        let secs = |s: f64| std::time::Duration::try_from_secs_f64(s).unwrap_or_default();
        let count = match soft {
            None => self.store.purge(key, PurgeMode::Hard, |_| true),
            Some(s) => self
                .store
                .soften(key, secs(s.ttl), s.grace.map(secs), s.keep.map(secs)),
        };
        tracing::info!(source = %InvalidationSource::Policy(req), ?soft, count, "purge of the looked-up object (vmod purge)");
        if count > 0 {
            self.metrics.count_invalidation(InvalidationKind::Purge);
        }
        count
    }
}

/// `soft` when `config`'s soft-purge header says so.
fn purge_mode(config: &crate::config::Config, headers: &impl FieldsRead) -> PurgeMode {
    match headers.get(config.invalidation.soft_purge_header.as_str()) {
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"soft") => PurgeMode::Soft,
        _ => PurgeMode::Hard,
    }
}

/// The HTTP answer to an invalidation: 200 with what happened, 404 when a
/// purge found nothing, 400 for a bad request, 429 when the ban list is full
/// (count or memory; retrying later may succeed) and 413 for a ban that
/// alone needs more than the whole ban budget.
pub fn answer(
    inv: &Invalidation,
    result: Result<Applied, InvalidationError>,
) -> Response<RespBody> {
    let (status, message) = answer_parts(inv, result);
    synth(status, &message)
}

/// The status and message of [`answer`].
fn answer_parts(
    inv: &Invalidation,
    result: Result<Applied, InvalidationError>,
) -> (StatusCode, String) {
    match result {
        Err(e @ InvalidationError::BanLimit(BanLimitError::TooLarge { .. })) => {
            (StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Err(e @ InvalidationError::BanLimit(_)) => (StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Applied::Banned(ban)) => (
            StatusCode::OK,
            format!("ban {} added: {}", ban.id, ban.expr),
        ),
        Ok(Applied::Purged(count)) => {
            let (verb, what) = match inv {
                Invalidation::Url { mode, url, .. } => (verb(*mode), url.clone()),
                Invalidation::Keys { mode, keys } => {
                    (verb(*mode), format!("{} key(s)", keys.len()))
                }
                Invalidation::Ban(_) => ("banned", String::new()),
            };
            if count == 0 {
                (StatusCode::NOT_FOUND, format!("nothing stored for {what}"))
            } else {
                let noun = if count == 1 { "object" } else { "objects" };
                (StatusCode::OK, format!("{verb} {count} {noun} for {what}"))
            }
        }
    }
}
fn verb(mode: PurgeMode) -> &'static str {
    match mode {
        PurgeMode::Hard => "purged",
        PurgeMode::Soft => "soft-purged",
    }
}
