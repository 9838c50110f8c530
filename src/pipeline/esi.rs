//! ESI: processing a fetched page into a stored template, and assembling a
//! template into the response body at delivery.
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
//!
//! **Assembly**, at each delivery, in two steps:
//!
//! 1. *Plan* (synchronous): walk the template; literal bytes and variables
//!    are ready at once, `esi:choose` picks its branch, and every include is
//!    looked up in the cache. A fresh (or in-grace) fragment is inserted
//!    directly — an ESI fragment is planned in place, one level deeper. Any
//!    other include is started at once as a task through the whole request
//!    lifecycle (recv, hash, lookup, coalesced fetch, its own ESI), at most
//!    `esi.concurrency` per page at a time.
//! 2. *Render*: when everything was ready the body is a list of buffers
//!    with an exact `Content-Length`. Otherwise a task sends the parts down a
//!    channel in document order: bytes before the first pending include
//!    leave at once, each fragment as soon as it and everything before it
//!    are ready (chunked; close-delimited for HTTP/1.0 clients).
//!
//! **Errors.** A failed include (status ≥ 400, refused, timeout, a cut or
//! oversized body, a refused `src`) tries `alt`; then `onerror="continue"`
//! drops it and inside `esi:attempt` the `esi:except` branch is delivered
//! instead. Otherwise `esi.on_error` decides: `include` (Varnish 7's
//! default) inserts the fragment's error body, `abort` (the ESI
//! specification) cuts the response. An include of a page already on the
//! include path (a loop), or deeper than `esi.max_depth`, is not fetched and
//! is logged; the page goes on without it.
//!
//! A fragment's response headers (Set-Cookie among them) never reach the
//! client: only its body is used.

use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST,
};
use http::{HeaderMap, Method, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::deliver::{self, CacheOutcome, ObjMeta};
use super::lookup::{lookup, Lookup};
use super::{Live, Proxy, RequestCtx, Served};
use crate::body::{BoxError, RespBody};
use crate::cache::freshness::Freshness;
use crate::cache::object::Provenance;
use crate::cache::vary::Variant;
use crate::cache::{CacheKey, CachedObject};
use crate::config::EsiOnError;
use crate::esi::chain::IncludeChain;
use crate::esi::parse::{parse, Include, Limits, Segment, Template};
use crate::esi::src_url::{resolve, Target};
use crate::esi::vars::{render, RequestView, VarPart};
use crate::fetch::inflight::{FlightState, LeaderGuard};
use crate::http::conditional::CONDITIONAL_AND_RANGE;
use crate::http::gzip::{gunzip, is_gzip};
use crate::policy::RecvAction;
use std::time::SystemTime;

/// Sent to every backend: this cache processes ESI 1.0.
pub const SURROGATE_CAPABILITY: &str = "lacquer=\"ESI/1.0\"";

/// Chunks buffered between the assembling task and the client connection.
const CHANNEL_DEPTH: usize = 16;

/// A fragment's body, in the chunks it arrived in.
type Chunks = Vec<Bytes>;
/// A fragment: its body, or on failure the error body to insert (maybe
/// empty).
type FragmentResult = Result<Chunks, Chunks>;

/// Whether `Surrogate-Control` asks this cache to process ESI 1.0: a
/// `content` directive listing `ESI/1.0`, untargeted or targeted at
/// `lacquer` (`content="ESI/1.0";lacquer`).
pub fn surrogate_control_asks_esi(headers: &HeaderMap) -> bool {
    headers
        .get_all("surrogate-control")
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
    Gzip(#[from] crate::http::gzip::GunzipError),
}

/// Reads a body into chunks, refusing more than `limit` bytes.
async fn collect<B>(mut body: B, limit: u64) -> Result<Chunks, PrepareError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut chunks = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| PrepareError::Body(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(PrepareError::TooLarge(limit));
            }
            if !data.is_empty() {
                chunks.push(data);
            }
        }
    }
    Ok(chunks)
}

/// One contiguous buffer from chunks (no copy for a single chunk).
fn concat(chunks: Chunks) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut b = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                b.extend_from_slice(&c);
            }
            b.freeze()
        }
    }
}

/// How a processed page is kept: stored under a key, or only delivered.
pub(super) enum Keep {
    /// Stored with this freshness, as this variant, under `key`.
    Store(CacheKey, Freshness, Variant),
    /// Delivered to this request only.
    Transient,
}

/// The request a page is assembled for, as its fragments need it.
struct Page {
    host: String,
    url: String,
    /// The client's headers for fragment requests: conditionals, ranges and
    /// `Accept-Encoding` removed (fragments are inserted as identity bytes).
    headers: HeaderMap,
    client: SocketAddr,
    version: Version,
    /// The pages above this one, and this one.
    chain: Arc<IncludeChain>,
    /// Includes of this page being fetched at once.
    permits: Arc<Semaphore>,
    /// The settings and policy of the page's request.
    live: Arc<Live>,
}

impl Page {
    fn of(ctx: &RequestCtx) -> Page {
        let mut headers = ctx.headers.clone();
        for name in CONDITIONAL_AND_RANGE {
            headers.remove(name);
        }
        for name in [ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE] {
            headers.remove(name);
        }
        Page {
            host: ctx.host.clone(),
            url: ctx.url.clone(),
            headers,
            client: ctx.client,
            version: ctx.version,
            chain: IncludeChain::child(ctx.esi.as_deref(), &ctx.host, &ctx.url),
            permits: Arc::new(Semaphore::new(ctx.live.config.esi.concurrency)),
            live: ctx.live.clone(),
        }
    }

    /// The request for one fragment of this page.
    fn fragment_request(&self, target: &Target) -> RequestCtx {
        let mut headers = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&target.host) {
            headers.insert(HOST, v);
        }
        RequestCtx {
            method: Method::GET,
            version: self.version,
            host: target.host.clone(),
            url: target.url.clone(),
            headers,
            client: self.client,
            body: None,
            always_miss: false,
            esi: Some(self.chain.clone()),
            live: self.live.clone(),
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: false,
        }
    }
}

impl RequestView for Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self) -> Option<&str> {
        self.url.split_once('?').map(|(_, q)| q)
    }
}

/// A piece of the page being assembled.
enum Part {
    /// Bytes to send.
    Ready(Bytes),
    /// An include being fetched.
    Fragment {
        task: JoinHandle<FragmentResult>,
        continue_on_error: bool,
    },
    /// An include that failed before any fetch (its `src` was refused and
    /// it has no `alt`): an empty error body.
    Failed { continue_on_error: bool },
    /// An `esi:try`: `attempt` unless one of its includes fails.
    Try {
        attempt: Vec<Part>,
        except: Vec<Segment>,
        page: Arc<Page>,
    },
}

fn push_ready(out: &mut Vec<Part>, b: Bytes) {
    if !b.is_empty() {
        out.push(Part::Ready(b));
    }
}

fn is_ready(parts: &[Part]) -> bool {
    parts.iter().all(|p| match p {
        Part::Ready(_) => true,
        Part::Fragment { .. } => false,
        Part::Failed { continue_on_error } => *continue_on_error,
        Part::Try { attempt, .. } => is_ready(attempt),
    })
}

/// The bytes of parts that are all ready (see [`is_ready`]).
fn flatten_ready(parts: Vec<Part>, out: &mut VecDeque<Bytes>) {
    for p in parts {
        match p {
            Part::Ready(b) => out.push_back(b),
            Part::Try { attempt, .. } => flatten_ready(attempt, out),
            Part::Fragment { .. } | Part::Failed { .. } => {}
        }
    }
}

/// The assembling task stopped: the client left, or delivery was aborted.
struct Stopped;

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
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn process_esi<B>(
        self: &Arc<Self>,
        ctx: &RequestCtx,
        status: StatusCode,
        mut headers: HeaderMap,
        body: B,
        keep: Keep,
        from: Provenance,
        guard: Option<LeaderGuard>,
        outcome: CacheOutcome,
    ) -> Served
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let limit = ctx.live.config.cache.max_object_size.0;
        let raw = match collect(body, limit).await.map(concat).and_then(|raw| {
            if is_gzip(&headers) {
                headers.remove(CONTENT_ENCODING);
                let _decoding = self.metrics.decoding();
                Ok(gunzip(&raw, limit)?)
            } else {
                Ok(raw)
            }
        }) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(url = %ctx.url, error = %e, "ESI page not processed");
                if let Some(g) = guard {
                    g.finish(None);
                }
                return Served::synth(StatusCode::BAD_GATEWAY, e.to_string());
            }
        };
        let (freshness, variant) = match &keep {
            Keep::Store(_, f, v) => (f.clone(), v.clone()),
            Keep::Transient => (
                Freshness::unstored(std::time::SystemTime::now()),
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
        let template = self.parse_page(ctx, &obj.body);
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

    /// Parses a page body, logging and counting what was malformed.
    fn parse_page(&self, ctx: &RequestCtx, raw: &Bytes) -> Template {
        let limits = Limits {
            max_includes: ctx.live.config.esi.max_includes,
            ..Limits::default()
        };
        let template = parse(raw, &limits);
        if !template.diagnostics.is_empty() {
            self.metrics
                .count_esi_errors(template.diagnostics.len() as u64);
            for d in template.diagnostics.iter().take(8) {
                tracing::warn!(url = %ctx.url, host = %ctx.host, "malformed ESI removed: {d}");
            }
        }
        template
    }

    /// A stored object as the response to `ctx`; an ESI page is assembled.
    /// `obj.*` for `vcl_deliver` is read only when the policy has it.
    pub(super) fn deliver_object(
        self: &Arc<Self>,
        ctx: &RequestCtx,
        obj: &CachedObject,
        outcome: CacheOutcome,
    ) -> Served {
        let resp = self.object_response(ctx, obj, outcome);
        let meta = if ctx.live.hooks.deliver {
            ObjMeta::of(&obj.freshness, obj.hits(), SystemTime::now())
        } else {
            ObjMeta::default()
        };
        Served::Response(resp, meta)
    }

    fn object_response(
        self: &Arc<Self>,
        ctx: &RequestCtx,
        obj: &CachedObject,
        outcome: CacheOutcome,
    ) -> Response<RespBody> {
        let mut resp = deliver::from_cache(ctx, obj, outcome, &ctx.live.via);
        let Some(template) = &obj.esi else {
            return resp;
        };
        if resp.status() == StatusCode::NOT_MODIFIED {
            return resp;
        }
        resp.headers_mut().remove(CONTENT_LENGTH);
        if ctx.method == Method::HEAD || ctx.background {
            *resp.body_mut() = RespBody::empty();
            return resp;
        }
        let body = self.assemble(ctx, template);
        if let RespBody::Parts(parts) = &body {
            let len: usize = parts.iter().map(Bytes::len).sum();
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        *resp.body_mut() = body;
        resp
    }

    /// The body of `template` delivered for `ctx`.
    fn assemble(self: &Arc<Self>, ctx: &RequestCtx, template: &Template) -> RespBody {
        let page = Arc::new(Page::of(ctx));
        let mut parts = Vec::new();
        self.plan(&page, &template.segments, &mut parts);
        if is_ready(&parts) {
            let mut out = VecDeque::with_capacity(parts.len());
            flatten_ready(parts, &mut out);
            return RespBody::Parts(out);
        }
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let proxy = self.clone();
        let on_error = ctx.live.config.esi.on_error;
        tokio::spawn(async move {
            let _ = proxy.render(parts, on_error, &tx).await;
        });
        RespBody::Assembled(rx)
    }

    /// Turns segments into parts: ready bytes, fragments started, chosen
    /// branches (see the module docs).
    fn plan(self: &Arc<Self>, page: &Arc<Page>, segments: &[Segment], out: &mut Vec<Part>) {
        for seg in segments {
            match seg {
                Segment::Literal(b) => push_ready(out, b.clone()),
                Segment::Vars(v) => push_ready(out, Bytes::from(render(v, &**page))),
                Segment::Choose { whens, otherwise } => {
                    let branch = whens
                        .iter()
                        .find(|(test, _)| test.eval(&**page))
                        .map_or(otherwise, |(_, body)| body);
                    self.plan(page, branch, out);
                }
                Segment::Try { attempt, except } => {
                    let mut a = Vec::new();
                    self.plan(page, attempt, &mut a);
                    out.push(Part::Try {
                        attempt: a,
                        except: except.clone(),
                        page: page.clone(),
                    });
                }
                Segment::Include(inc) => self.plan_include(page, inc, out),
            }
        }
    }

    /// One include: from the cache when it is there, else a task.
    fn plan_include(self: &Arc<Self>, page: &Arc<Page>, inc: &Include, out: &mut Vec<Part>) {
        self.metrics.count_esi_include();
        if !self.include_allowed_here(page) {
            return;
        }
        match self.target(page, &inc.src) {
            Ok(target) => {
                if page.chain.contains(&target.host, &target.url) {
                    self.refuse_loop(page, &target);
                    return;
                }
                if self.plan_cached(page, &target, out) {
                    return;
                }
            }
            Err(()) if inc.alt.is_none() => {
                out.push(Part::Failed {
                    continue_on_error: inc.continue_on_error,
                });
                return;
            }
            Err(()) => {}
        }
        let proxy = self.clone();
        let (page, inc2) = (page.clone(), inc.clone());
        out.push(Part::Fragment {
            task: tokio::spawn(async move { proxy.fetch_fragment(page, inc2).await }),
            continue_on_error: inc.continue_on_error,
        });
    }

    /// Inserts a fragment found fresh (or in grace) in the cache; false when
    /// it must be fetched.
    fn plan_cached(
        self: &Arc<Self>,
        page: &Arc<Page>,
        target: &Target,
        out: &mut Vec<Part>,
    ) -> bool {
        let mut fctx = page.fragment_request(target);
        let live = page.live.clone();
        if live.policy.recv(&mut fctx) != RecvAction::Hash {
            return false;
        }
        let key = live.policy.hash(&fctx);
        let (Lookup::Hit(obj) | Lookup::Grace(obj)) = lookup(&self.store, &self.bans, &key, &fctx)
        else {
            return false;
        };
        if obj.status.as_u16() >= 400 {
            return false;
        }
        // A backend that compressed a fragment unasked: decode it (once per
        // delivery; such fragments are rare).
        let body = if is_gzip(&obj.deliver_headers) {
            let _decoding = self.metrics.decoding();
            match gunzip(&obj.body, live.config.esi.max_fragment_size.0) {
                Ok(b) => b,
                Err(_) => return false,
            }
        } else {
            obj.body.clone()
        };
        if !obj.freshness.is_fresh(std::time::SystemTime::now()) {
            self.refresh_in_background(&fctx, key, obj.clone());
        }
        obj.record_hit();
        match &obj.esi {
            None => push_ready(out, body),
            Some(t) => {
                let child = Arc::new(Page::of(&fctx));
                self.plan(&child, &t.segments, out);
            }
        }
        true
    }

    /// False (logged) when includes of `page` would be deeper than
    /// `esi.max_depth`.
    fn include_allowed_here(&self, page: &Page) -> bool {
        let level = page.chain.level();
        let max = page.live.config.esi.max_depth;
        if level > max as usize {
            self.metrics.count_esi_errors(1);
            tracing::warn!(url = %page.url, level, max, "ESI include deeper than esi.max_depth: not fetched");
            return false;
        }
        true
    }

    fn refuse_loop(&self, page: &Page, target: &Target) {
        self.metrics.count_esi_errors(1);
        tracing::warn!(page = %page.url, src = %target.url, "ESI include loop: not fetched");
    }

    /// Where an include's `src` (or `alt`) points.
    fn target(&self, page: &Page, src: &[VarPart]) -> Result<Target, ()> {
        let src = render(src, page);
        resolve(
            &src,
            &page.host,
            &page.url,
            &page.live.config.esi.allowed_hosts,
        )
        .map_err(|e| {
            self.metrics.count_esi_errors(1);
            tracing::warn!(page = %page.url, error = %e, "ESI include refused");
        })
    }

    /// Fetches an include through the whole lifecycle, then its `alt` if it
    /// failed.
    async fn fetch_fragment(self: Arc<Self>, page: Arc<Page>, inc: Include) -> FragmentResult {
        let Ok(_permit) = page.permits.clone().acquire_owned().await else {
            return Err(Vec::new());
        };
        let first = self.fetch_src(&page, &inc.src).await;
        match (first, &inc.alt) {
            (Err(_), Some(alt)) => self.fetch_src(&page, alt).await,
            (result, _) => result,
        }
    }

    async fn fetch_src(self: &Arc<Self>, page: &Page, src: &[VarPart]) -> FragmentResult {
        let Ok(target) = self.target(page, src) else {
            return Err(Vec::new());
        };
        if page.chain.contains(&target.host, &target.url) {
            self.refuse_loop(page, &target);
            return Ok(Vec::new());
        }
        let resp = Box::pin(self.process(page.fragment_request(&target))).await;
        let failed = resp.status().as_u16() >= 400;
        let gzipped = is_gzip(resp.headers());
        let limit = page.live.config.esi.max_fragment_size.0;
        let body = collect(resp.into_body(), limit).await.and_then(|chunks| {
            if gzipped {
                let _decoding = self.metrics.decoding();
                Ok(vec![gunzip(&concat(chunks), limit)?])
            } else {
                Ok(chunks)
            }
        });
        match body {
            Ok(chunks) if !failed => Ok(chunks),
            Ok(chunks) => {
                self.metrics.count_esi_errors(1);
                tracing::info!(page = %page.url, src = %target.url, "ESI include failed");
                Err(chunks)
            }
            Err(e) => {
                self.metrics.count_esi_errors(1);
                tracing::warn!(page = %page.url, src = %target.url, error = %e, "ESI include failed");
                Err(Vec::new())
            }
        }
    }

    /// Sends parts in order as they become ready.
    async fn render(
        self: &Arc<Self>,
        parts: Vec<Part>,
        on_error: EsiOnError,
        tx: &mpsc::Sender<Result<Bytes, BoxError>>,
    ) -> Result<(), Stopped> {
        for part in parts {
            match part {
                Part::Ready(b) => send(tx, b).await?,
                Part::Failed { continue_on_error } => {
                    self.include_failed(tx, on_error, continue_on_error, Vec::new())
                        .await?
                }
                Part::Fragment {
                    task,
                    continue_on_error,
                } => match task.await.unwrap_or(Err(Vec::new())) {
                    Ok(chunks) => {
                        for c in chunks {
                            send(tx, c).await?;
                        }
                    }
                    Err(error_body) => {
                        self.include_failed(tx, on_error, continue_on_error, error_body)
                            .await?
                    }
                },
                Part::Try {
                    attempt,
                    except,
                    page,
                } => match Box::pin(self.settle(attempt)).await {
                    Some(chunks) => {
                        for c in chunks {
                            send(tx, c).await?;
                        }
                    }
                    None => {
                        let mut parts = Vec::new();
                        self.plan(&page, &except, &mut parts);
                        Box::pin(self.render(parts, on_error, tx)).await?;
                    }
                },
            }
        }
        Ok(())
    }

    /// An include outside `esi:try` failed: nothing with `onerror="continue"`,
    /// else what `esi.on_error` says.
    async fn include_failed(
        &self,
        tx: &mpsc::Sender<Result<Bytes, BoxError>>,
        on_error: EsiOnError,
        continue_on_error: bool,
        error_body: Chunks,
    ) -> Result<(), Stopped> {
        if continue_on_error {
            return Ok(());
        }
        match on_error {
            EsiOnError::Include => {
                for c in error_body {
                    send(tx, c).await?;
                }
                Ok(())
            }
            EsiOnError::Abort => {
                let _ = tx
                    .send(Err("ESI include failed: delivery aborted".into()))
                    .await;
                Err(Stopped)
            }
        }
    }

    /// Waits for every part of an `esi:attempt`; `None` when one of its
    /// includes failed (not `onerror="continue"`).
    async fn settle(self: &Arc<Self>, parts: Vec<Part>) -> Option<Chunks> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Ready(b) => out.push(b),
                Part::Failed { continue_on_error } if continue_on_error => {}
                Part::Failed { .. } => return None,
                Part::Fragment {
                    task,
                    continue_on_error,
                } => match task.await.unwrap_or(Err(Vec::new())) {
                    Ok(chunks) => out.extend(chunks),
                    Err(_) if continue_on_error => {}
                    Err(_) => return None,
                },
                Part::Try {
                    attempt,
                    except,
                    page,
                } => match Box::pin(self.settle(attempt)).await {
                    Some(chunks) => out.extend(chunks),
                    None => {
                        let mut parts = Vec::new();
                        self.plan(&page, &except, &mut parts);
                        out.extend(Box::pin(self.settle(parts)).await?);
                    }
                },
            }
        }
        Some(out)
    }
}

async fn send(tx: &mpsc::Sender<Result<Bytes, BoxError>>, b: Bytes) -> Result<(), Stopped> {
    if b.is_empty() {
        return Ok(());
    }
    tx.send(Ok(b)).await.map_err(|_| Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

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
