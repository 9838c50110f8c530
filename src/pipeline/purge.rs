//! purge: PURGE requests from application code — a URL's variants, or every
//! object carrying given surrogate keys; hard (removed) or soft (marked
//! stale). Only clients in the purge ACL may purge.

use http::{Response, StatusCode};

use super::deliver::synth;
use super::{Proxy, RequestCtx};
use crate::body::RespBody;
use crate::cache::store::PurgeMode;
use crate::cache::tags::parse_keys;
use crate::invalidate::ban_expr::BanExpr;

impl Proxy {
    /// Handles a PURGE.
    pub(super) fn purge(&self, ctx: &RequestCtx) -> Response<RespBody> {
        let inv = &self.config.invalidation;
        let ip = ctx.client.ip();
        if !inv.purge_acl.allows(ip) {
            tracing::info!(client = %ip, url = %ctx.url, "purge refused by the ACL");
            return synth(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("PURGE is not allowed for {ip}"),
            );
        }
        let mode = match ctx.headers.get(inv.soft_purge_header.as_str()) {
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"soft") => PurgeMode::Soft,
            _ => PurgeMode::Hard,
        };
        let verb = match mode {
            PurgeMode::Hard => "purged",
            PurgeMode::Soft => "soft-purged",
        };
        let key_header = self
            .keys
            .headers
            .iter()
            .find(|h| ctx.headers.contains_key(*h));
        if let Some(header) = key_header {
            let mut tags: Vec<&str> = Vec::new();
            for v in ctx.headers.get_all(header) {
                let Ok(v) = v.to_str() else {
                    return synth(StatusCode::BAD_REQUEST, "surrogate keys must be ASCII");
                };
                tags.extend(parse_keys(v));
            }
            tags.sort_unstable();
            tags.dedup();
            if tags.is_empty() {
                return synth(StatusCode::BAD_REQUEST, &format!("empty {header} header"));
            }
            if tags.len() > inv.max_keys_per_purge {
                return synth(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{} keys in one purge; at most {} (invalidation.max_keys_per_purge)",
                        tags.len(),
                        inv.max_keys_per_purge
                    ),
                );
            }
            let count: usize = tags.iter().map(|t| self.store.purge_tag(t, mode)).sum();
            tracing::info!(client = %ip, keys = tags.len(), count, ?mode, "purge by surrogate key");
            return purged(count, verb, &format!("{} key(s)", tags.len()));
        }
        let key = self.policy.hash(ctx);
        let count = self.store.purge(&key, mode, |_| true);
        tracing::info!(client = %ip, url = %ctx.url, host = %ctx.host, count, ?mode, "purge");
        purged(count, verb, &ctx.url)
    }
}

fn purged(count: usize, verb: &str, what: &str) -> Response<RespBody> {
    if count == 0 {
        synth(StatusCode::NOT_FOUND, &format!("nothing stored for {what}"))
    } else {
        let noun = if count == 1 { "object" } else { "objects" };
        synth(StatusCode::OK, &format!("{verb} {count} {noun} for {what}"))
    }
}

impl Proxy {
    /// Handles a BAN: the expression in `X-Ban` applies to every object
    /// stored before it.
    pub(super) fn ban(&self, ctx: &RequestCtx) -> Response<RespBody> {
        let ip = ctx.client.ip();
        if !self.config.invalidation.purge_acl.allows(ip) {
            tracing::info!(client = %ip, "ban refused by the ACL");
            return synth(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("BAN is not allowed for {ip}"),
            );
        }
        let Some(text) = ctx.headers.get("x-ban") else {
            return synth(
                StatusCode::BAD_REQUEST,
                "BAN needs the expression in an X-Ban header",
            );
        };
        let Ok(text) = text.to_str() else {
            return synth(
                StatusCode::BAD_REQUEST,
                "X-Ban: the expression must be ASCII",
            );
        };
        match BanExpr::parse(text) {
            Ok(expr) => {
                let ban = self.bans.add(expr);
                tracing::info!(client = %ip, id = ban.id, ban = %ban.expr, "ban added");
                synth(
                    StatusCode::OK,
                    &format!("ban {} added: {}", ban.id, ban.expr),
                )
            }
            Err(e) => synth(StatusCode::BAD_REQUEST, &format!("X-Ban: {e}")),
        }
    }
}
