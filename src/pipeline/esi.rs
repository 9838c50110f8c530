//! ESI in the lifecycle: whether a backend response is processed, the
//! processing of a page into a stored template, and the call into the
//! assembly engine ([`crate::esi::assemble`]) at delivery, with fragments
//! from [`super::fragments::Fragments`].
//!
//! **When.** A response is processed when its backend said so
//! (`Surrogate-Control: content="ESI/1.0"`, answering the
//! `Surrogate-Capability: lacquer="ESI/1.0"` every backend request
//! carries), when its URL matches `esi.paths` with a media type in
//! `esi.content_types`, or when the policy sets `beresp.do_esi`.
//!
//! **Store.** The whole body is read (up to `cache.max_object_size`),
//! gunzipped if the backend compressed it, and parsed once into a
//! [`Template`] kept with the object; delivery never scans the page again.
//! Large decodes and parses run on the blocking pool: each worker is one
//! single-threaded runtime, and CPU spent there stalls all its connections.
//!
//! **Assembly**, at each delivery: see [`crate::esi::assemble`].

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use http_body::Body;
use std::sync::Arc;

use super::fragments::Fragments;
use super::{Live, Proxy, Served, Task};
use crate::body::RespBody;
use crate::cache::freshness::Freshness;
use crate::cache::object::Provenance;
use crate::cache::vary::Variant;
use crate::cache::{CacheKey, CachedObject};
use crate::config::EsiOnError;
use crate::esi::assemble::{self, Assembled, OnError, PageRequest, ReadError, Settings};
use crate::esi::parse::{parse, Limits, Segment, Template};
use crate::fetch::inflight::{FlightState, LeaderGuard};
use crate::fetch::pool::BackendBody;
use crate::http::coding::{decode_off_worker, Coding};
use crate::lifecycle::{CacheOutcome, FailureKind};

/// Sent to every backend: this cache processes ESI 1.0.
pub const SURROGATE_CAPABILITY: &str = "lacquer=\"ESI/1.0\"";

/// Pages up to this size are parsed on the worker; larger ones on the
/// blocking pool, like large gzip decodes (a worker's runtime serves all
/// of its connections on one thread).
const PARSE_INLINE_MAX: usize = 256 << 10;

/// Whether `Surrogate-Control` asks this cache to process ESI 1.0: a
/// `content` directive listing `ESI/1.0`, untargeted or targeted at
/// `lacquer` (`content="ESI/1.0";lacquer`).
pub fn surrogate_control_asks_esi(headers: &HeaderMap) -> bool {
    headers
        .get_all(&crate::cache::directives::SURROGATE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| {
            let (directive, target) = match directive.split_once(';') {
                Some((d, t)) => (d, Some(t.trim())),
                None => (directive, None),
            };
            let Some((name, value)) = directive.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("content")
                && target.is_none_or(|t| t.eq_ignore_ascii_case("lacquer"))
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|c| c.eq_ignore_ascii_case("ESI/1.0"))
        })
}

/// Why a page could not be prepared for ESI.
#[derive(Debug, thiserror::Error)]
enum PrepareError {
    #[error("backend body failed: {0}")]
    Body(String),
    #[error("ESI page larger than cache.max_object_size ({0} bytes)")]
    TooLarge(u64),
    #[error(transparent)]
    Decode(#[from] crate::http::coding::DecodeError),
}

impl From<ReadError> for PrepareError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Body(e) => PrepareError::Body(e),
            ReadError::TooLarge(limit) => PrepareError::TooLarge(limit),
            ReadError::Decode(e) => PrepareError::Decode(e),
        }
    }
}

/// A backend response to process as ESI: read, parsed once, kept per
/// `keep`, and delivered assembled.
pub(super) struct EsiPage {
    /// The status to store and deliver.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as the backend sends it.
    pub body: BackendBody,
    /// Stored, or only delivered.
    pub keep: Keep,
    /// The request it was fetched for (what bans match).
    pub from: Provenance,
    /// The requests waiting on this fetch.
    pub guard: Option<LeaderGuard>,
    /// How this request is served.
    pub outcome: CacheOutcome,
}

/// How a processed page is kept: stored under a key, or only delivered.
pub(super) enum Keep {
    /// Stored with this freshness, as this variant, under `key`.
    Store(CacheKey, Freshness, Variant),
    /// Delivered to this request only.
    Transient,
}

impl Proxy {
    /// Whether the settings ask for ESI on this response (the handshake, or
    /// `esi.paths` with `esi.content_types`); the policy decides last.
    pub(super) fn esi_wanted(&self, live: &Live, url: &str, headers: &HeaderMap) -> bool {
        if surrogate_control_asks_esi(headers) {
            return true;
        }
        if live.esi_paths.is_empty() || !live.esi_paths.is_match(url) {
            return false;
        }
        let media = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim())
            .unwrap_or("");
        live.config
            .esi
            .content_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(media))
    }

    /// Reads an ESI page from the backend, parses it, stores it (per
    /// `keep`) and delivers it assembled.
    pub(super) async fn process_esi(self: &Arc<Self>, ctx: &Task, page: EsiPage) -> Served {
        let EsiPage {
            status,
            mut headers,
            body,
            keep,
            from,
            guard,
            outcome,
        } = page;
        let limit = ctx.live.config.cache.max_object_size.0;
        let raw = match self.read_page(body, &mut headers, limit).await {
            Ok(raw) => raw,
            Err(e) => {
                crate::log_limited!(10, warn, url = %ctx.url, error = %e, "ESI page not processed");
                if let Some(g) = guard {
                    g.finish(None);
                }
                return Served::failed(FailureKind::BadGateway, format!("ESI page: {e}"));
            }
        };
        let (freshness, variant) = match &keep {
            Keep::Store(_, f, v) => (f.clone(), v.clone()),
            Keep::Transient => (
                Freshness::unstored(ctx.live.clock.now()),
                Variant::default(),
            ),
        };
        let obj = CachedObject::new(
            status,
            headers,
            raw,
            freshness,
            variant,
            &ctx.live.keys,
            from,
        );
        // Parsed from the stored body, so the template's literals are
        // slices of it (not of the buffer the backend's bytes arrived in).
        let template = self.parse_page(ctx, &obj.body).await;
        let obj = Arc::new(obj.with_template(Arc::new(template)));
        if let Keep::Store(key, ..) = keep {
            // A ban that arrived while this was fetched applies to it.
            if !self.bans.is_banned(&obj, None) {
                self.store.insert(key, obj.clone());
            }
            if let Some(g) = guard {
                g.finish(Some(FlightState::Stored));
            }
        } else if let Some(g) = guard {
            g.finish(Some(FlightState::NotShared));
        }
        self.deliver_object(ctx, &obj, outcome)
    }

    /// Reads a page's body (at most `limit` bytes, decoded), removing
    /// `Content-Encoding` when it was coded (gzip, br, zstd: the origin
    /// may send what lacquer asked for, see `compression.store`).
    async fn read_page<B>(
        &self,
        body: B,
        headers: &mut HeaderMap,
        limit: u64,
    ) -> Result<Bytes, PrepareError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let raw = assemble::read_body(body, limit).await?;
        let coding = Coding::of(headers);
        if !coding.decodable() {
            return Ok(raw);
        }
        headers.remove(CONTENT_ENCODING);
        let _decoding = self.metrics.decoding();
        Ok(decode_off_worker(coding, raw, limit).await?)
    }

    /// Parses a page body (a large one off the worker), logging and
    /// counting what was malformed.
    async fn parse_page(&self, ctx: &Task, raw: &Bytes) -> Template {
        let limits = Limits {
            max_includes: ctx.live.config.esi.max_includes,
            ..Limits::default()
        };
        let template = if raw.len() <= PARSE_INLINE_MAX {
            parse(raw, &limits)
        } else {
            let owned = raw.clone();
            match tokio::task::spawn_blocking(move || parse(&owned, &limits)).await {
                Ok(t) => t,
                // The parser panicked (a bug) or the runtime is going away:
                // the page is delivered as it is.
                Err(e) => {
                    tracing::error!(url = %ctx.url, error = %e, "ESI parse failed");
                    Template {
                        segments: vec![Segment::Literal(raw.clone())],
                        includes: 0,
                        diagnostics: Vec::new(),
                    }
                }
            }
        };
        if !template.diagnostics.is_empty() {
            self.metrics
                .count_esi_errors(template.diagnostics.len() as u64);
            for d in template.diagnostics.iter().take(8) {
                crate::log_limited!(10, warn, url = %ctx.url, host = %ctx.host, "malformed ESI removed: {d}");
            }
        }
        template
    }

    /// The body of `template` delivered for `ctx`.
    pub(super) fn assemble(self: &Arc<Self>, ctx: &Task, template: &Template) -> RespBody {
        let esi = &ctx.live.config.esi;
        let settings = Settings {
            max_depth: esi.max_depth,
            concurrency: esi.concurrency,
            max_fragment_size: esi.max_fragment_size.0,
            max_buffered: esi.max_buffered.0,
            on_error: match esi.on_error {
                EsiOnError::Include => OnError::Include,
                EsiOnError::Abort => OnError::Abort,
            },
        };
        let page = PageRequest {
            host: &ctx.host,
            url: &ctx.url,
            headers: ctx.headers.to_map(),
            above: ctx.esi.as_deref(),
        };
        let fragments = Fragments::new(self.clone(), ctx);
        let gauge = self.metrics.esi_buffered();
        match assemble::assemble(fragments, settings, page, template, gauge) {
            Assembled::Ready(parts) => RespBody::Parts(parts),
            Assembled::Streaming(rx) => RespBody::Assembled(rx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            "surrogate-control",
            HeaderValue::from_str(v).expect("value"),
        );
        m
    }

    #[test]
    fn surrogate_control_handshake() {
        assert!(surrogate_control_asks_esi(&h("content=\"ESI/1.0\"")));
        assert!(surrogate_control_asks_esi(&h(
            "max-age=60, content=\"ESI/1.0 ESI-INLINE/1.0\""
        )));
        assert!(surrogate_control_asks_esi(&h(
            "content=\"ESI/1.0\";lacquer"
        )));
        assert!(!surrogate_control_asks_esi(&h("content=\"ESI/1.0\";other")));
        assert!(!surrogate_control_asks_esi(&h("max-age=60")));
        assert!(!surrogate_control_asks_esi(&h("content=\"ESI/2.0\"")));
        assert!(!surrogate_control_asks_esi(&HeaderMap::new()));
    }
}
