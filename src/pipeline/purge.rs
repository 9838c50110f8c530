//! purge: invalidations from application code — PURGE of a URL's variants,
//! PURGE by surrogate key, BAN — hard (removed) or soft (marked stale).
//! Clients must be in the purge ACL; the admin API and peers reach
//! [`Proxy::invalidate`] directly.

use http::{HeaderMap, Response, StatusCode};
use std::sync::Arc;

use super::{Proxy, RequestCtx, Served};
use crate::body::RespBody;
use crate::cache::store::PurgeMode;
use crate::cache::tags::parse_keys;
use crate::cache::CacheKey;
use crate::invalidate::ban_expr::BanParseError;
use crate::invalidate::bans::{Ban, BanLimitError, BanLimits};
use crate::invalidate::op::Invalidation;
use crate::lifecycle::{synth, Failure, FailureKind};
use crate::observe::metrics::InvalidationKind;
use crate::policy::ClientAction;

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
    /// Applies an invalidation on this node and, unless it came from a peer,
    /// forwards it to every peer.
    pub fn invalidate(
        &self,
        inv: &Invalidation,
        from_peer: bool,
    ) -> Result<Applied, InvalidationError> {
        let (applied, kind) = match inv {
            Invalidation::Url { mode, host, url } => {
                let key = CacheKey::for_request(host, url);
                let count = self.store.purge(&key, *mode, |_| true);
                (Applied::Purged(count), InvalidationKind::Purge)
            }
            Invalidation::Keys { mode, keys } => {
                let max = self.live.load().config.invalidation.max_keys_per_purge;
                if keys.is_empty() {
                    return Err(InvalidationError::NoKeys);
                }
                if keys.len() > max {
                    return Err(InvalidationError::TooManyKeys(keys.len(), max));
                }
                let count = keys.iter().map(|k| self.store.purge_tag(k, *mode)).sum();
                (Applied::Purged(count), InvalidationKind::KeyPurge)
            }
            Invalidation::Ban(text) => {
                let inv = &self.live.load().config.invalidation;
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
        self.metrics.count_invalidation(kind);
        tracing::info!(invalidation = %inv.encode(), from_peer, result = ?applied, "invalidation applied");
        if !from_peer {
            if let Some(cluster) = &self.cluster {
                cluster.forward(inv);
            }
        }
        Ok(applied)
    }

    /// Handles a PURGE request; then `vcl_purge` may choose the answer.
    pub(super) fn purge(&self, ctx: &mut RequestCtx) -> Served {
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
    fn apply_purge(&self, ctx: &RequestCtx) -> (StatusCode, String) {
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
            None => {
                // The policy's hash decides the key locally; peers get host + URL.
                let key = ctx.live.policy.hash(ctx);
                let count = self.store.purge(&key, mode, |_| true);
                self.metrics.count_invalidation(InvalidationKind::Purge);
                let inv = Invalidation::Url {
                    mode,
                    host: ctx.host.clone(),
                    url: ctx.url.clone(),
                };
                if let Some(cluster) = &self.cluster {
                    cluster.forward(&inv);
                }
                tracing::info!(client = %ctx.client.ip(), invalidation = %inv.encode(), count, "purge");
                return answer_parts(&inv, Ok(Applied::Purged(count)));
            }
        };
        answer_parts(&inv, self.invalidate(&inv, false))
    }

    /// Handles a BAN request: the expression is in `X-Ban`.
    pub(super) fn ban(&self, ctx: &RequestCtx) -> Served {
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
        let (status, message) = answer_parts(&inv, self.invalidate(&inv, false));
        Served::Synth(status, message)
    }

    /// `soft` when the soft-purge header (of the settings in force) says so.
    pub fn purge_mode(&self, headers: &HeaderMap) -> PurgeMode {
        purge_mode(&self.live.load().config, headers)
    }

    fn refuse_outside_acl(&self, ctx: &RequestCtx) -> Option<Served> {
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

/// `soft` when `config`'s soft-purge header says so.
fn purge_mode(config: &crate::config::Config, headers: &HeaderMap) -> PurgeMode {
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
