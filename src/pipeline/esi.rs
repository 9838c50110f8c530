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
//! Large decodes and parses run on the blocking pool: each worker is one
//! single-threaded runtime, and CPU spent there stalls all its connections.
//!
//! **Assembly**, at each delivery, in two steps:
//!
//! 1. *Plan* (synchronous): walk the template; literal bytes and variables
//!    are ready at once, `esi:choose` picks its branch, and every include is
//!    looked up in the cache. A fresh (or in-grace) fragment is inserted
//!    directly — an ESI fragment is planned in place, one level deeper; a
//!    gzip'd one is inserted decoded, decoded once for all hits and kept
//!    with the stored object (charged to the cache). Any
//!    other include is started at once as a task through the whole request
//!    lifecycle (recv, hash, lookup, coalesced fetch, its own ESI), at most
//!    `esi.concurrency` per page at a time.
//! 2. *Render*: when everything was ready the body is a list of buffers
//!    with an exact `Content-Length`. Otherwise a task sends the parts down a
//!    channel in document order: bytes before the first pending include
//!    leave at once, each fragment as soon as it and everything before it
//!    are ready (chunked; close-delimited for HTTP/1.0 clients). Fetched
//!    bytes not yet taken by the client are charged to the page's
//!    `esi.max_buffered` budget; includes wait for it, except the one the
//!    client is waiting for (its turn), so a slow client costs a bounded
//!    amount of memory and nothing deadlocks.
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
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::deliver::CacheOutcome;
use super::lookup::{lookup, Lookup};
use super::{Live, Proxy, RequestCtx, Served};
use crate::body::{BoxError, Charge, Piece, RespBody};
use crate::cache::freshness::Freshness;
use crate::cache::object::Provenance;
use crate::cache::vary::Variant;
use crate::cache::{CacheKey, CachedObject};
use crate::config::EsiOnError;
use crate::esi::chain::IncludeChain;
use crate::esi::parse::{parse, Include, Limits, Segment, Template};
use crate::esi::src_url::{resolve, Target};
use crate::esi::vars::{render, render_url, RequestView, VarPart};
use crate::fetch::inflight::{FlightState, LeaderGuard};
use crate::http::conditional::CONDITIONAL_AND_RANGE;
use crate::http::gzip::{decoded_bound, gunzip_off_worker, is_gzip};
use crate::policy::RecvAction;

/// Sent to every backend: this cache processes ESI 1.0.
pub const SURROGATE_CAPABILITY: &str = "lacquer=\"ESI/1.0\"";

/// Pieces buffered between the assembling task and the client connection
/// (fetched bytes among them are charged to the page's budget).
const CHANNEL_DEPTH: usize = 16;

/// Pages up to this size are parsed on the worker; larger ones on the
/// blocking pool, like large gzip decodes (a worker's runtime serves all
/// of its connections on one thread).
const PARSE_INLINE_MAX: usize = 256 << 10;

/// A fragment's body, in the pieces it arrived in.
type Chunks = Vec<Piece>;
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

/// What an assembled page may hold ahead of its client: `esi.max_buffered`
/// bytes of fetched fragments that the client has not taken yet (one
/// permit per byte). Bytes inserted from the cache are the cache's and are
/// not charged. Why: a client that does not read would otherwise make the
/// page fetch and hold every include at once (128 includes of 1 MiB: 130
/// MiB resident per such client).
struct Budget {
    permits: Arc<Semaphore>,
    total: usize,
    /// `lacquer_esi_buffered_bytes`.
    gauge: Arc<AtomicU64>,
}

impl Budget {
    fn new(bytes: u64, gauge: Arc<AtomicU64>) -> Arc<Budget> {
        let total = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Budget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            gauge,
        })
    }

    /// Charges `n` bytes held for the include of `turn`, waiting while the
    /// page holds too much. Once it is the include's turn (the client waits
    /// for it) nothing is charged and nothing waits: the include before it
    /// have been sent, so waiting could only deadlock.
    async fn charge(&self, turn: &Turn, n: usize) -> Option<Charge> {
        if n == 0 || turn.is_now() {
            return None;
        }
        let want = u32::try_from(n).ok().filter(|_| n <= self.total);
        let Some(want) = want else {
            // More than the whole budget: only on its turn.
            turn.wait().await;
            return None;
        };
        tokio::select! {
            biased;
            () = turn.wait() => None,
            permit = self.permits.clone().acquire_many_owned(want) => {
                permit.ok().map(|p| Charge::new(p, self.gauge.clone()))
            }
        }
    }
}

/// Set when the render reaches an include: the client is waiting for it,
/// so it no longer waits for the page's budget or a concurrency slot.
#[derive(Default)]
struct Turn {
    now: AtomicBool,
    notify: Notify,
}

impl Turn {
    fn start(&self) {
        self.now.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_now(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_now() {
                return;
            }
            notified.await;
        }
    }
}

/// How a body is read: charged to a page's budget for an include, or not.
type Charging<'a> = Option<(&'a Budget, &'a Turn)>;

/// Reads a body into pieces, refusing more than `limit` bytes; each piece
/// is charged as `charging` says before the next is read.
async fn collect<B>(mut body: B, limit: u64, charging: Charging<'_>) -> Result<Chunks, PrepareError>
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
                let charge = match charging {
                    Some((budget, turn)) => budget.charge(turn, data.len()).await,
                    None => None,
                };
                chunks.push(Piece {
                    bytes: data,
                    charge,
                });
            }
        }
    }
    Ok(chunks)
}

/// One contiguous buffer from pieces (no copy for a single piece).
fn concat(chunks: &[Piece]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.bytes.clone(),
        _ => {
            let mut b = BytesMut::with_capacity(chunks.iter().map(|c| c.bytes.len()).sum());
            for c in chunks {
                b.extend_from_slice(&c.bytes);
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
    /// What the page may hold ahead of its client (shared with the ESI
    /// fragments expanded in place).
    budget: Arc<Budget>,
    /// The settings and policy of the page's request.
    live: Arc<Live>,
}

impl Page {
    fn of(ctx: &RequestCtx, budget: Arc<Budget>) -> Page {
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
            budget,
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
    /// An include being fetched (or decoded).
    Fragment {
        task: JoinHandle<FragmentResult>,
        continue_on_error: bool,
        /// Started when the render reaches it.
        turn: Arc<Turn>,
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

/// What the cache holds for an include.
enum Cached {
    /// Its body was inserted (or its template planned in place).
    Inserted,
    /// Nothing usable: fetch it.
    Miss,
    /// A gzip'd fragment not decoded yet: decode it (once for all hits).
    Decode(CacheKey, Arc<CachedObject>),
    /// A gzip'd fragment that does not decode within
    /// `esi.max_fragment_size`: the include fails.
    Failed,
}

/// How an include's `src` is first tried.
enum First {
    /// Through the request lifecycle.
    Fetch,
    /// By decoding the stored gzip'd fragment.
    Decode(CacheKey, Arc<CachedObject>),
    /// Not at all: it failed already (refused, or does not decode).
    Failed,
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
        let raw = match self.read_page(body, &mut headers, limit).await {
            Ok(raw) => raw,
            Err(e) => {
                crate::log_limited!(10, warn, url = %ctx.url, error = %e, "ESI page not processed");
                if let Some(g) = guard {
                    g.finish(None);
                }
                // The detail (backend error text, limits) is for the log.
                return Served::synth(StatusCode::BAD_GATEWAY, "backend fetch failed");
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
    /// `Content-Encoding` when it was gzip'd.
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
        let raw = concat(&collect(body, limit, None).await?);
        if !is_gzip(headers) {
            return Ok(raw);
        }
        headers.remove(CONTENT_ENCODING);
        let _decoding = self.metrics.decoding();
        Ok(gunzip_off_worker(raw, limit).await?)
    }

    /// Parses a page body (a large one off the worker), logging and
    /// counting what was malformed.
    async fn parse_page(&self, ctx: &RequestCtx, raw: &Bytes) -> Template {
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
    pub(super) fn assemble(self: &Arc<Self>, ctx: &RequestCtx, template: &Template) -> RespBody {
        let budget = Budget::new(
            ctx.live.config.esi.max_buffered.0,
            self.metrics.esi_buffered(),
        );
        let page = Arc::new(Page::of(ctx, budget.clone()));
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
            // Includes still waiting for the budget (the client left, or
            // delivery was aborted) go on unbounded, as nobody will read
            // them: they end instead of waiting forever.
            budget.permits.close();
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
        let first = match self.target(page, &inc.src) {
            Ok(target) => {
                if page.chain.contains(&target.host, &target.url) {
                    self.refuse_loop(page, &target);
                    return;
                }
                match self.plan_cached(page, &target, out) {
                    Cached::Inserted => return,
                    Cached::Miss => First::Fetch,
                    Cached::Decode(key, obj) => First::Decode(key, obj),
                    Cached::Failed => First::Failed,
                }
            }
            Err(()) => First::Failed,
        };
        if matches!(first, First::Failed) && inc.alt.is_none() {
            out.push(Part::Failed {
                continue_on_error: inc.continue_on_error,
            });
            return;
        }
        let proxy = self.clone();
        let turn = Arc::new(Turn::default());
        let (page, inc2, turn2) = (page.clone(), inc.clone(), turn.clone());
        out.push(Part::Fragment {
            task: tokio::spawn(async move { proxy.fetch_fragment(page, inc2, first, turn2).await }),
            continue_on_error: inc.continue_on_error,
            turn,
        });
    }

    /// Inserts a fragment found fresh (or in grace) in the cache, or says
    /// what else to do.
    fn plan_cached(
        self: &Arc<Self>,
        page: &Arc<Page>,
        target: &Target,
        out: &mut Vec<Part>,
    ) -> Cached {
        let mut fctx = page.fragment_request(target);
        let live = page.live.clone();
        if live.policy.recv(&mut fctx) != RecvAction::Hash {
            return Cached::Miss;
        }
        let key = live.policy.hash(&fctx);
        let (Lookup::Hit(obj) | Lookup::Grace(obj)) = lookup(&self.store, &self.bans, &key, &fctx)
        else {
            return Cached::Miss;
        };
        if obj.status.as_u16() >= 400 {
            return Cached::Miss;
        }
        if !obj.freshness.is_fresh(std::time::SystemTime::now()) {
            self.refresh_in_background(&fctx, key.clone(), obj.clone());
        }
        obj.record_hit();
        if let Some(t) = &obj.esi {
            let child = Arc::new(Page::of(&fctx, page.budget.clone()));
            self.plan(&child, &t.segments, out);
            return Cached::Inserted;
        }
        if !is_gzip(&obj.deliver_headers) {
            push_ready(out, obj.body.clone());
            return Cached::Inserted;
        }
        // A backend that compressed a fragment unasked: it is decoded once,
        // kept with the stored object and charged to the cache (see
        // `decode_stored`), so hits insert the decoded bytes.
        let limit = live.config.esi.max_fragment_size.0;
        match obj.identity().get() {
            Some(Some(b)) if b.len() as u64 <= limit => {
                push_ready(out, b.clone());
                Cached::Inserted
            }
            Some(_) => {
                self.metrics.count_esi_errors(1);
                crate::log_limited!(10, info, page = %page.url, src = %target.url, "ESI include failed: gzip'd fragment larger than esi.max_fragment_size");
                Cached::Failed
            }
            None => Cached::Decode(key, obj),
        }
    }

    /// Decodes a stored gzip'd fragment once for all requests (they wait
    /// for the first), off the worker, stopping at `esi.max_fragment_size`;
    /// the decoded body stays with the object and is charged to the cache.
    /// A fragment that does not decode within the limit fails the include,
    /// and keeps failing without being decoded again while it is stored.
    async fn decode_stored(
        &self,
        page: &Page,
        key: &CacheKey,
        obj: &Arc<CachedObject>,
    ) -> FragmentResult {
        let limit = page.live.config.esi.max_fragment_size.0;
        let mut decoded_here = false;
        let identity = obj
            .identity()
            .get_or_init(|| async {
                decoded_here = true;
                let _decoding = self.metrics.decoding();
                match gunzip_off_worker(obj.body.clone(), limit).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        crate::log_limited!(10, warn, src = %obj.url, error = %e, "gzip'd ESI fragment not decoded");
                        None
                    }
                }
            })
            .await;
        if decoded_here && identity.is_some() {
            self.store.recharge(key, obj);
        }
        match identity {
            Some(b) if b.len() as u64 <= limit => Ok(vec![Piece::free(b.clone())]),
            _ => {
                self.metrics.count_esi_errors(1);
                crate::log_limited!(10, info, page = %page.url, src = %obj.url, "ESI include failed: gzip'd fragment larger than esi.max_fragment_size");
                Err(Vec::new())
            }
        }
    }

    /// False (logged) when includes of `page` would be deeper than
    /// `esi.max_depth`.
    fn include_allowed_here(&self, page: &Page) -> bool {
        let level = page.chain.level();
        let max = page.live.config.esi.max_depth;
        if level > max as usize {
            self.metrics.count_esi_errors(1);
            crate::log_limited!(10, warn, url = %page.url, level, max, "ESI include deeper than esi.max_depth: not fetched");
            return false;
        }
        true
    }

    fn refuse_loop(&self, page: &Page, target: &Target) {
        self.metrics.count_esi_errors(1);
        crate::log_limited!(10, warn, page = %page.url, src = %target.url, "ESI include loop: not fetched");
    }

    /// Where an include's `src` (or `alt`) points.
    fn target(&self, page: &Page, src: &[VarPart]) -> Result<Target, ()> {
        let src = render_url(src, page);
        resolve(
            &src,
            &page.host,
            &page.url,
            &page.live.config.esi.allowed_hosts,
        )
        .map_err(|e| {
            self.metrics.count_esi_errors(1);
            crate::log_limited!(10, warn, page = %page.url, error = %e, "ESI include refused");
        })
    }

    /// Gets an include (`first` says how), then its `alt` if it failed. It
    /// waits for one of the page's `esi.concurrency` slots, unless the
    /// client is waiting for it already (its `turn`).
    async fn fetch_fragment(
        self: Arc<Self>,
        page: Arc<Page>,
        inc: Include,
        first: First,
        turn: Arc<Turn>,
    ) -> FragmentResult {
        let _permit = tokio::select! {
            biased;
            () = turn.wait() => None,
            permit = page.permits.clone().acquire_owned() => match permit {
                Ok(p) => Some(p),
                Err(_) => return Err(Vec::new()),
            },
        };
        let first = match first {
            First::Fetch => self.fetch_src(&page, &inc.src, &turn).await,
            First::Decode(key, obj) => self.decode_stored(&page, &key, &obj).await,
            First::Failed => Err(Vec::new()),
        };
        match (first, &inc.alt) {
            (Err(_), Some(alt)) => self.fetch_src(&page, alt, &turn).await,
            (result, _) => result,
        }
    }

    async fn fetch_src(
        self: &Arc<Self>,
        page: &Page,
        src: &[VarPart],
        turn: &Turn,
    ) -> FragmentResult {
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
        let charging = Some((&*page.budget, turn));
        let mut body = collect(resp.into_body(), limit, charging).await;
        if gzipped {
            if let Ok(chunks) = body {
                // Stored by now (the usual miss): decoded once for every
                // include of it, and kept, as for a hit.
                if !failed {
                    if let Some((key, obj)) = self.stored_as(page, &target, &chunks) {
                        return self.decode_stored(page, &key, &obj).await;
                    }
                }
                body = self.decode_fetched(page, turn, chunks, limit).await;
            }
        }
        match body {
            Ok(chunks) if !failed => Ok(chunks),
            Ok(chunks) => {
                self.metrics.count_esi_errors(1);
                crate::log_limited!(10, info, page = %page.url, src = %target.url, "ESI include failed");
                Err(chunks)
            }
            Err(e) => {
                self.metrics.count_esi_errors(1);
                crate::log_limited!(10, warn, page = %page.url, src = %target.url, error = %e, "ESI include failed");
                Err(Vec::new())
            }
        }
    }

    /// The stored gzip'd fragment that a fetched body (`chunks`, as
    /// received) is, if the fetch stored it already.
    fn stored_as(
        &self,
        page: &Page,
        target: &Target,
        chunks: &[Piece],
    ) -> Option<(CacheKey, Arc<CachedObject>)> {
        let mut fctx = page.fragment_request(target);
        if page.live.policy.recv(&mut fctx) != RecvAction::Hash {
            return None;
        }
        let key = page.live.policy.hash(&fctx);
        let (Lookup::Hit(obj) | Lookup::Grace(obj)) = lookup(&self.store, &self.bans, &key, &fctx)
        else {
            return None;
        };
        let same = obj.esi.is_none()
            && is_gzip(&obj.deliver_headers)
            && obj.body.len() == chunks.iter().map(|c| c.bytes.len()).sum::<usize>()
            && chunks
                .iter()
                .scan(0, |at, c| {
                    let start = *at;
                    *at += c.bytes.len();
                    Some(obj.body.get(start..*at) == Some(&c.bytes[..]))
                })
                .all(|equal| equal);
        same.then_some((key, obj))
    }

    /// Decodes a gzip'd fragment as fetched, off the worker, stopping at
    /// `limit`. The most it can decode to is reserved from the page's budget
    /// first, so waiting decodes hold no memory; the excess is given back.
    async fn decode_fetched(
        &self,
        page: &Page,
        turn: &Turn,
        chunks: Chunks,
        limit: u64,
    ) -> Result<Chunks, PrepareError> {
        let compressed = concat(&chunks);
        let bound = usize::try_from(decoded_bound(compressed.len(), limit)).unwrap_or(usize::MAX);
        let mut charge = page.budget.charge(turn, bound).await;
        let decoded = {
            let _decoding = self.metrics.decoding();
            gunzip_off_worker(compressed, limit).await?
        };
        drop(chunks);
        if let Some(c) = &mut charge {
            c.shrink_to(decoded.len());
        }
        Ok(vec![Piece {
            bytes: decoded,
            charge,
        }])
    }

    /// Sends parts in order as they become ready.
    async fn render(
        self: &Arc<Self>,
        parts: Vec<Part>,
        on_error: EsiOnError,
        tx: &mpsc::Sender<Result<Piece, BoxError>>,
    ) -> Result<(), Stopped> {
        for part in parts {
            match part {
                Part::Ready(b) => send(tx, Piece::free(b)).await?,
                Part::Failed { continue_on_error } => {
                    self.include_failed(tx, on_error, continue_on_error, Vec::new())
                        .await?
                }
                Part::Fragment {
                    task,
                    continue_on_error,
                    turn,
                } => match its_turn(task, &turn).await {
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
        tx: &mpsc::Sender<Result<Piece, BoxError>>,
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
                Part::Ready(b) => out.push(Piece::free(b)),
                Part::Failed { continue_on_error } if continue_on_error => {}
                Part::Failed { .. } => return None,
                Part::Fragment {
                    task,
                    continue_on_error,
                    turn,
                } => match its_turn(task, &turn).await {
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

/// The result of an include the render has reached: from now on it waits
/// for nothing but its own fetch.
async fn its_turn(task: JoinHandle<FragmentResult>, turn: &Turn) -> FragmentResult {
    turn.start();
    task.await.unwrap_or(Err(Vec::new()))
}

async fn send(tx: &mpsc::Sender<Result<Piece, BoxError>>, p: Piece) -> Result<(), Stopped> {
    if p.bytes.is_empty() {
        return Ok(());
    }
    tx.send(Ok(p)).await.map_err(|_| Stopped)
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
