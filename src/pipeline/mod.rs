//! The request lifecycle: recv → hash → lookup → (hit | miss | pass) → fetch
//! → backend response → deliver. One file per step; this file drives them.
//! See `docs/LIFECYCLE.md`.

mod backend_response;
mod bereq;
mod deliver;
mod esi;
mod fetch;
mod fragments;
mod live;
mod lookup;
mod pipe;
mod purge;
mod recv;
mod reload;
mod synth;

pub use crate::lifecycle::{
    synth, Bereq, Beresp, CacheOutcome, Live, ObjMeta, SynthText, Synthetic, Task,
};
pub use lookup::Lookup;
pub use purge::{answer, bare_get, key_for, Applied, InvalidationError, InvalidationSource};
pub use reload::{ReloadError, Reloaded, SettingsSource};

use crate::h1::RequestBody;
use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::body::RespBody;
use crate::cache::Store;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::fetch::director::Director;
use crate::fetch::inflight::Inflight;
use crate::invalidate::bans::BanList;
use crate::lifecycle::{Clock, Failure, FailureKind};
use crate::observe::metrics::{Gauges, Metrics};
use crate::policy::{ClientAction, Policy, RecvAction};
use synth::failure_response;

/// How many times one request may restart (Varnish's `max_restarts`).
pub const MAX_RESTARTS: u32 = 4;

/// Why a proxy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No backend in the settings or on the command line.
    #[error("no backend: give -b HOST:PORT or a [[backend]] table in the settings")]
    NoBackend,
    /// The policy file does not load or compile.
    #[error(transparent)]
    Policy(#[from] crate::policy::vcl::PolicyError),
    /// `esi.paths` holds an invalid regular expression.
    #[error("esi.paths: {0}")]
    EsiPaths(#[from] regex::Error),
    /// `server.via_name` cannot go in a header.
    #[error("server.via_name: not a valid header value")]
    BadViaName,
}

/// What one pass through the lifecycle produced for the client, before
/// `vcl_deliver` / `vcl_synth`.
// Nearly every request carries the large variant: boxing it would cost an
// allocation per response.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Served {
    /// A response to deliver, with what `obj.*` reads in `vcl_deliver`.
    Response(Response<RespBody>, ObjMeta),
    /// A synthetic answer the policy asked for (status, reason).
    Synth(StatusCode, String),
    /// A failure: logged and counted by `Proxy::note_failure`, then
    /// answered like `Synth` with its status and public reason.
    Failed(Failure),
    /// Start over at `recv`.
    Restart,
}

impl Served {
    /// A failure of this kind, with its cause for the log.
    pub(crate) fn failed(kind: FailureKind, source: impl Into<Cow<'static, str>>) -> Served {
        Served::Failed(Failure::new(kind).because(source))
    }
}

/// Everything one request needs: settings, store, backend, policy.
pub struct Proxy {
    store: Store,
    director: Director,
    inflight: Arc<Inflight>,
    /// The settings and policy in force, swapped whole on reload; each
    /// request keeps the generation it started with. `ArcSwap` rather than
    /// a lock: reading it is the first thing every request does.
    live: ArcSwap<Live>,
    /// The settings at start-up (what restart-only keys stay at).
    started: Arc<Config>,
    /// Where reloads read the settings from (and the reload lock).
    settings_source: std::sync::Mutex<Option<SettingsSource>>,
    bans: Arc<BanList>,
    cluster: Option<Arc<Cluster>>,
    draining: std::sync::atomic::AtomicBool,
    metrics: Metrics,
}

impl Proxy {
    /// A proxy with the policy of the settings (`policy.file`), else the
    /// built-in one.
    pub fn new(config: Arc<Config>) -> Result<Arc<Proxy>, SetupError> {
        let policy = Live::load_policy(&config)?;
        Proxy::with_policy(config, policy)
    }

    /// A proxy with the given policy.
    pub fn with_policy(
        config: Arc<Config>,
        policy: Arc<dyn Policy>,
    ) -> Result<Arc<Proxy>, SetupError> {
        // A VCL's own backends replace the settings' (`-b`, `[[backend]]`),
        // the first being the default, as in Varnish.
        let declared = policy.backends();
        let config = if declared.is_empty() {
            config
        } else {
            let mut with_vcl = (*config).clone();
            with_vcl.backend = declared;
            with_vcl.director = crate::config::DirectorConfig {
                kind: crate::config::DirectorKind::First,
                hash_header: None,
            };
            Arc::new(with_vcl)
        };
        if config.backend.is_empty() {
            return Err(SetupError::NoBackend);
        }
        let director = Director::new(&config);
        let health = Arc::new(live::Health(director.backends().to_vec()));
        let live = Live::new(config.clone(), policy, Clock::default(), health)?;
        let store = Store::new(config.cache.storage.0, config.cache.max_variants);
        let bans = Arc::new(BanList::new());
        // Nothing is spawned here: the server starts `background()`.
        let cluster = Cluster::new(&config.cluster);
        Ok(Arc::new(Proxy {
            bans,
            cluster,
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics: Metrics::default(),
            started: config,
            settings_source: std::sync::Mutex::new(None),
            store,
            director,
            inflight: Inflight::new(),
            live: ArcSwap::from_pointee(live),
        }))
    }

    /// The background work of the proxy's parts, not started: the ban
    /// lurker, each backend's reaper and probe, each peer's sender (handed
    /// out once). The server runs it (`crate::server::services`); call it
    /// once per proxy: each call makes new lurker, probe and reaper work.
    pub fn background(&self) -> Vec<crate::background::Background> {
        let mut out = vec![crate::background::Background::new(
            "ban lurker",
            crate::invalidate::lurker::run(
                self.store.clone(),
                self.bans.clone(),
                self.started.invalidation.ban_lurker_sleep.0,
            ),
        )];
        out.extend(self.director.background());
        if let Some(cluster) = &self.cluster {
            out.extend(cluster.background());
        }
        out
    }

    /// The clock freshness is judged by (tests move it forward instead of
    /// sleeping).
    pub fn clock(&self) -> Clock {
        self.live.load().clock.clone()
    }

    /// Fetches for the cache in progress (each ends after its object is
    /// stored, or not).
    pub fn fetches_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The settings and policy in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The cache store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cluster, when peers or a secret are configured.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// The bans in force.
    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    /// From now on the health endpoint answers 503 (shutdown under way).
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<dyn Policy> {
        self.live.load().policy.clone()
    }

    /// The director and its backends.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus exposition of the counters and gauges.
    pub fn render_metrics(&self) -> String {
        let (evictions, expirations) = self.store.removals();
        let mut out = self.metrics.render(&Gauges {
            objects: self.store.entry_count(),
            bytes: self.store.stored_bytes(),
            surrogate_keys: self.store.surrogate_keys() as u64,
            ignored_surrogate_keys: self.store.ignored_surrogate_keys(),
            bans: self.bans.len() as u64,
            ban_bytes: self.bans.bytes(),
            evictions,
            expirations,
        });
        out.push_str("# HELP lacquer_backend_healthy 1 while the backend's probe says healthy.\n");
        out.push_str("# TYPE lacquer_backend_healthy gauge\n");
        for b in self.director.backends() {
            out.push_str(&format!(
                "lacquer_backend_healthy{{backend=\"{}\"}} {}\n",
                b.name(),
                u8::from(b.is_healthy())
            ));
        }
        out
    }

    /// Runs one request through the lifecycle, and counts how it was served
    /// (the outcome is returned too, for the access log: it is the value
    /// the lifecycle decided, whatever the policy did to `X-Cache`).
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        client: SocketAddr,
    ) -> (http::Response<RespBody>, CacheOutcome) {
        self.handle_on(req, client, None).await
    }

    /// [`Proxy::handle`] for a request that came in on `conn` (its
    /// addresses are `server.ip`, `local.ip` and `remote.ip` in VCL).
    pub async fn handle_on(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        client: SocketAddr,
        conn: Option<Arc<crate::lifecycle::ConnInfo>>,
    ) -> (http::Response<RespBody>, CacheOutcome) {
        // One future for the whole request, not one wrapping another: each
        // level would be moved into its caller's (a few KiB) per request.
        let live = self.live.load_full();
        if req.uri().path() == live.config.server.health_path {
            let resp = if self.draining.load(std::sync::atomic::Ordering::Acquire) {
                synth(http::StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else {
                synth(http::StatusCode::OK, "ok")
            };
            return self.counted(resp, CacheOutcome::Synth);
        }
        let (parts, body) = req.into_parts();
        let mut ctx = match Task::from_parts(parts, body, client, conn.as_deref(), live) {
            Ok(ctx) => ctx,
            // Refused before there is a request for the policy to see:
            // answered without vcl_synth.
            Err(refused) => {
                self.note_failure(&refused, client, None);
                return self.counted(failure_response(&refused), CacheOutcome::Synth);
            }
        };
        ctx.conn = conn;
        let services: std::sync::Weak<Proxy> = Arc::downgrade(self);
        ctx.services = Some(services);
        if ctx.live.hooks.cache_req_body {
            if let Err(refused) = cache_req_body(&mut ctx).await {
                self.note_failure(&refused, client, Some(&ctx.url));
                return self.counted(failure_response(&refused), CacheOutcome::Synth);
            }
        }
        let (resp, outcome) = self.process(&mut ctx).await;
        self.counted(resp, outcome)
    }

    /// A client request's answer, counted in the metrics.
    fn counted(
        &self,
        resp: http::Response<RespBody>,
        outcome: CacheOutcome,
    ) -> (http::Response<RespBody>, CacheOutcome) {
        self.metrics.count_served(outcome);
        (resp, outcome)
    }

    /// One request to its response and how it was served, for client
    /// requests and ESI fragment requests alike: the lifecycle, then
    /// `vcl_deliver` or `vcl_synth`, starting over on `restart` (at most
    /// [`MAX_RESTARTS`] times).
    async fn process(self: &Arc<Self>, ctx: &mut Task) -> (http::Response<RespBody>, CacheOutcome) {
        // The task by reference: moving its ~500 bytes into this future
        // would be one more copy per request.
        let mut served = self.serve(ctx).await;
        loop {
            served = match served {
                Served::Response(resp, meta) => match self.deliver_hook(ctx, resp, &meta) {
                    Ok(resp) => return (with_vcl_log(resp, ctx), meta.outcome),
                    Err(next) => next,
                },
                Served::Synth(status, reason) => match self.synthesize(ctx, status, reason) {
                    Some(resp) => return (with_vcl_log(resp, ctx), CacheOutcome::Synth),
                    None => Served::Restart,
                },
                Served::Failed(failure) => {
                    self.note_failure(&failure, ctx.client, Some(&ctx.url));
                    Served::Synth(failure.status, failure.reason.into_owned())
                }
                Served::Restart if ctx.restarts >= MAX_RESTARTS => Served::Failed(
                    Failure::new(FailureKind::TooManyRestarts)
                        .because(format!("{} restarts of {}", ctx.restarts, ctx.url)),
                ),
                Served::Restart => {
                    ctx.restarts += 1;
                    Box::pin(self.serve(ctx)).await
                }
            };
        }
    }

    /// `vcl_deliver` on a response (not for ESI fragments: only their body
    /// is used). `Err`: what to do instead of delivering it.
    #[allow(clippy::result_large_err)] // moved once, not worth an allocation
    fn deliver_hook(
        &self,
        ctx: &mut Task,
        mut resp: http::Response<RespBody>,
        meta: &ObjMeta,
    ) -> Result<http::Response<RespBody>, Served> {
        // A pipe has left the state machine (as in Varnish: no vcl_deliver).
        if !deliver::runs_vcl_deliver(ctx) || meta.outcome == CacheOutcome::Pipe {
            return Ok(resp);
        }
        let live = ctx.live.clone();
        // Not when vcl_deliver removes it first and the response was made
        // without such headers (`ObjMeta::removed_early`).
        let removed = meta.removed_early && live.policy.deliver_removes().contains(&X_VARNISH);
        if live.hooks.varnish && !removed {
            // What Varnish adds before vcl_deliver, and what policies test
            // for hits (`resp.http.X-Varnish ~ " "`): the request's number,
            // and the object's on a hit.
            let obj = matches!(meta.outcome, CacheOutcome::Hit | CacheOutcome::Stale);
            let value = x_varnish(ctx.xid, obj.then_some(meta.id));
            crate::lifecycle::resp_fields::set(&mut resp, &X_VARNISH, value);
        }
        match live.policy.deliver(ctx, &mut resp, meta) {
            ClientAction::Synth(status, reason) => Err(Served::Synth(status, reason)),
            ClientAction::Restart => Err(Served::Restart),
            ClientAction::Fail => Err(Served::failed(FailureKind::PolicyFailed, "vcl_deliver")),
            _ => Ok(resp),
        }
    }

    /// recv → hash → lookup → hit, miss or pass, once.
    ///
    /// The miss and pass steps are boxed: their futures are large (the
    /// backend exchange), and keeping them out of this one keeps the future
    /// hyper stores per request small (`size_of_val` of the request future,
    /// release build: 4632 bytes before, 1128 after), which is less to move
    /// on every request and shows in the pass and hit benchmarks.
    async fn serve(self: &Arc<Self>, ctx: &mut Task) -> Served {
        // What this pass's lookup finds, not an earlier one's (a restart
        // looks up another key): the expiry is taken as the marker's state
        // for the key being fetched (`Store::mark_hit_for_miss`).
        ctx.hit_for_miss_until = None;
        let live = ctx.live.clone();
        match live.policy.recv(ctx) {
            RecvAction::Hash => {
                // As Varnish does after vcl_recv, for lookups only.
                if live.config.compression.enabled {
                    ctx.headers.normalise_accept_encoding();
                }
            }
            RecvAction::Pass => return Box::pin(self.pass_step(ctx)).await,
            RecvAction::Purge => return self.purge(ctx),
            RecvAction::Ban => return self.ban(ctx),
            RecvAction::Synth(status, reason) => return Served::Synth(status, reason),
            RecvAction::Restart => return Served::Restart,
            RecvAction::Pipe => return Box::pin(self.pipe(ctx)).await,
        }
        let key = live.policy.hash(ctx);
        // For `purge.hard()` in vcl_hit / vcl_miss (an Arc clone).
        ctx.lookup_key = Some(key.clone());
        let found = lookup::lookup(&self.store, &self.bans, &key, ctx);
        let (obj, in_grace) = match found {
            Lookup::Hit(obj) => (obj, false),
            Lookup::Grace(obj) => (obj, true),
            Lookup::Stale(obj) => return Box::pin(self.miss_step(ctx, key, Some(obj), true)).await,
            Lookup::Miss => return Box::pin(self.miss_step(ctx, key, None, true)).await,
            Lookup::HitForMiss(until) => {
                ctx.hit_for_miss_until = Some(until);
                return Box::pin(self.miss_step(ctx, key, None, false)).await;
            }
        };
        if live.hooks.hit {
            match live.policy.hit(ctx, &obj) {
                ClientAction::Pass => return Box::pin(self.pass_step(ctx)).await,
                ClientAction::Miss => {
                    return Box::pin(self.miss_step(ctx, key, Some(obj), true)).await
                }
                other => {
                    if let Some(served) = client_detour(other, "vcl_hit") {
                        return served;
                    }
                }
            }
        }
        self.decode_for(ctx, &key, &obj).await;
        if in_grace {
            self.refresh_in_background(ctx, key, obj.clone());
            self.deliver_object(ctx, &obj, CacheOutcome::Stale)
        } else {
            self.deliver_object(ctx, &obj, CacheOutcome::Hit)
        }
    }

    /// `vcl_miss`, then the fetch: coalesced (`coalesce`) or on its own
    /// (hit-for-miss).
    async fn miss_step(
        self: &Arc<Self>,
        ctx: &mut Task,
        key: crate::cache::CacheKey,
        stale: Option<Arc<crate::cache::CachedObject>>,
        coalesce: bool,
    ) -> Served {
        if ctx.live.hooks.miss {
            let live = ctx.live.clone();
            match live.policy.miss(ctx) {
                ClientAction::Pass => return Box::pin(self.pass_step(ctx)).await,
                other => {
                    if let Some(served) = client_detour(other, "vcl_miss") {
                        return served;
                    }
                }
            }
        }
        if coalesce {
            self.miss(ctx, key, stale).await
        } else {
            self.fetch(ctx, key, None, None).await
        }
    }

    /// `vcl_pass`, then the pass.
    async fn pass_step(self: &Arc<Self>, ctx: &mut Task) -> Served {
        if ctx.live.hooks.pass {
            let live = ctx.live.clone();
            if let Some(served) = client_detour(live.policy.pass(ctx), "vcl_pass") {
                return served;
            }
        }
        self.pass(ctx).await
    }
}

/// The response with what the policy logged (`std.log`) for the access
/// log line.
fn with_vcl_log(mut resp: http::Response<RespBody>, ctx: &mut Task) -> http::Response<RespBody> {
    if !ctx.vcl_log.is_empty() {
        resp.extensions_mut()
            .insert(crate::observe::access_log::VclLog(std::mem::take(
                &mut ctx.vcl_log,
            )));
    }
    resp
}

/// Where a client-side hook sends the request instead of going on; `None`:
/// go on (`Builtin`, `Continue`; `Pass` is handled by the caller).
fn client_detour(action: ClientAction, hook: &'static str) -> Option<Served> {
    match action {
        ClientAction::Builtin
        | ClientAction::Continue
        | ClientAction::Pass
        | ClientAction::Miss => None,
        ClientAction::Synth(status, reason) => Some(Served::Synth(status, reason)),
        ClientAction::Restart => Some(Served::Restart),
        ClientAction::Fail => Some(Served::failed(FailureKind::PolicyFailed, hook)),
    }
}

/// `std.cache_req_body`: reads a request body of known length up to
/// `server.max_cached_req_body` into memory before `vcl_recv`, within
/// `server.body_timeout`, so the policy learns its size and restarts and
/// retries can send it again. A body that stalls or breaks is the client's
/// 408 / 400.
async fn cache_req_body(ctx: &mut Task) -> Result<(), Failure> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    let limit = ctx.live.config.server.max_cached_req_body.0;
    let Some(body) = ctx.body.take() else {
        return Ok(());
    };
    let fits = body.size_hint().exact().is_some_and(|len| len <= limit);
    if body.is_end_stream() || !fits {
        ctx.body = Some(body);
        return Ok(());
    }
    let timeout = ctx.live.config.server.body_timeout.0;
    match tokio::time::timeout(timeout, body.collect()).await {
        Ok(Ok(all)) => {
            ctx.cached_body = Some(all.to_bytes());
            Ok(())
        }
        Ok(Err(_)) => Err(Failure::new(FailureKind::BodyMalformed)),
        Err(_) => Err(Failure::new(FailureKind::BodyStalled)),
    }
}

/// `X-Varnish` as Varnish writes it: the request's number, and the
/// object's on a hit.
const X_VARNISH: http::HeaderName = http::HeaderName::from_static("x-varnish");

/// The `X-Varnish` value for request `xid` (and object `obj` on a hit),
/// written without the formatter (this runs on every delivery under VCL).
fn x_varnish(xid: u64, obj: Option<u64>) -> http::HeaderValue {
    use crate::http::small_numbers::numbers_value;
    match obj {
        Some(obj) => numbers_value("", &[xid, obj]),
        None => numbers_value("", &[xid]),
    }
}

#[cfg(test)]
mod tests {
    use super::x_varnish;

    #[test]
    fn x_varnish_holds_the_request_and_on_hits_the_object() {
        assert_eq!(x_varnish(12, None), "12");
        assert_eq!(x_varnish(12, Some(34)), "12 34");
        let most = x_varnish(u64::MAX, Some(u64::MAX));
        assert_eq!(most, format!("{} {}", u64::MAX, u64::MAX).as_str());
    }
}
