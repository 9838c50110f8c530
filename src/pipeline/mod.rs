//! The request lifecycle: recv → hash → lookup → (hit | miss | pass) → fetch
//! → backend response → deliver. One file per step; this file drives them.
//! See `docs/LIFECYCLE.md`.

mod backend_response;
mod deliver;
mod esi;
mod fetch;
mod lookup;
mod purge;
mod recv;

pub use backend_response::Beresp;
pub use deliver::{synth, CacheOutcome};
pub use lookup::Lookup;
pub use purge::{answer, Applied, InvalidationError};
pub use recv::{Refused, RequestCtx};

use http::{HeaderValue, Request};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::body::RespBody;
use crate::cache::freshness::FreshnessPolicy;
use crate::cache::object::KeySpec;
use crate::cache::Store;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::fetch::director::Director;
use crate::fetch::inflight::Inflight;
use crate::invalidate::bans::BanList;
use crate::observe::metrics::{Gauges, Metrics};
use crate::policy::{Builtin, Policy, RecvAction};

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

/// Everything one request needs: settings, store, backend, policy.
pub struct Proxy {
    config: Arc<Config>,
    store: Store,
    director: Director,
    inflight: Arc<Inflight>,
    /// Swapped whole on reload; each request keeps the one it started with.
    policy: std::sync::RwLock<Arc<dyn Policy>>,
    freshness: FreshnessPolicy,
    via: HeaderValue,
    keys: KeySpec,
    bans: Arc<BanList>,
    cluster: Option<Arc<Cluster>>,
    draining: std::sync::atomic::AtomicBool,
    metrics: Metrics,
    /// `esi.paths`, compiled.
    esi_paths: regex::RegexSet,
}

impl Proxy {
    /// A proxy with the policy of the settings (`policy.file`), else the
    /// built-in one.
    pub fn new(config: Arc<Config>) -> Result<Arc<Proxy>, SetupError> {
        let policy: Arc<dyn Policy> = match &config.policy.file {
            Some(path) => Arc::new(crate::policy::vcl::VclPolicy::load(path)?),
            None => Arc::new(Builtin),
        };
        Proxy::with_policy(config, policy)
    }

    /// A proxy with the given policy.
    pub fn with_policy(
        config: Arc<Config>,
        policy: Arc<dyn Policy>,
    ) -> Result<Arc<Proxy>, SetupError> {
        if config.backend.is_empty() {
            return Err(SetupError::NoBackend);
        }
        let director = Director::new(&config);
        let store = Store::new(config.cache.storage.0, config.cache.max_variants);
        let via = HeaderValue::from_str(&format!("1.1 {}", config.server.via_name))
            .map_err(|_| SetupError::BadViaName)?;
        let keys = KeySpec {
            headers: config
                .invalidation
                .surrogate_key_headers
                .iter()
                .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            strip: config.invalidation.strip_surrogate_keys,
        };
        let bans = Arc::new(BanList::new());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(crate::invalidate::lurker::run(
                store.clone(),
                bans.clone(),
                config.invalidation.ban_lurker_sleep.0,
            ));
        }
        let cluster = Cluster::start(&config.cluster);
        let esi_paths = regex::RegexSet::new(&config.esi.paths)?;
        Ok(Arc::new(Proxy {
            esi_paths,
            via,
            keys,
            bans,
            cluster,
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics: Metrics::default(),
            freshness: config.cache.freshness_policy(),
            config,
            store,
            director,
            inflight: Inflight::new(),
            policy: std::sync::RwLock::new(policy),
        }))
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
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
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads the policy file named in the settings: compiled first, then
    /// swapped in; requests in flight finish under the old one. On error the
    /// old policy stays and the error (file:line:column …) is returned.
    pub fn reload_policy(&self) -> Result<&'static str, crate::policy::vcl::PolicyError> {
        let Some(path) = &self.config.policy.file else {
            return Ok("no policy file configured: the built-in policy stays");
        };
        let fresh = crate::policy::vcl::VclPolicy::load(path)?;
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        tracing::info!(file = %path.display(), "policy reloaded");
        Ok("policy reloaded")
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
            bans: self.bans.len() as u64,
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

    /// Runs one request through the lifecycle, and counts how it was served.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> http::Response<RespBody> {
        let resp = self.lifecycle(req, client).await;
        self.metrics.count_response(&resp);
        resp
    }

    async fn lifecycle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> http::Response<RespBody> {
        if req.uri().path() == self.config.server.health_path {
            return if self.draining.load(std::sync::atomic::Ordering::Acquire) {
                synth(http::StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else {
                synth(http::StatusCode::OK, "ok")
            };
        }
        let (parts, body) = req.into_parts();
        let ctx = match RequestCtx::from_parts(
            parts,
            body,
            client,
            self.config.cache.honor_client_no_cache,
        ) {
            Ok(ctx) => ctx,
            Err(refused) => {
                tracing::info!(client = %client, reason = refused.message, "request refused");
                return synth(refused.status, refused.message);
            }
        };
        self.process(ctx).await
    }

    /// recv → hash → lookup → hit, miss or pass: for client requests and
    /// ESI fragment requests alike.
    async fn process(self: &Arc<Self>, mut ctx: RequestCtx) -> http::Response<RespBody> {
        let policy = self.policy();
        match policy.recv(&mut ctx) {
            RecvAction::Hash => {}
            RecvAction::Pass => return self.pass(ctx).await,
            RecvAction::Purge => return self.purge(&ctx),
            RecvAction::Ban => return self.ban(&ctx),
            RecvAction::Synth(status, reason) => return synth(status, &reason),
        }
        let key = policy.hash(&ctx);
        match lookup::lookup(&self.store, &self.bans, &key, &ctx) {
            Lookup::Hit(obj) => self.deliver_object(&ctx, &obj, CacheOutcome::Hit),
            Lookup::Grace(obj) => {
                self.refresh_in_background(&ctx, key, obj.clone());
                self.deliver_object(&ctx, &obj, CacheOutcome::Stale)
            }
            Lookup::Stale(obj) => self.miss(ctx, key, Some(obj)).await,
            Lookup::Miss => self.miss(ctx, key, None).await,
            Lookup::HitForMiss => self.fetch(ctx, key, None, None).await,
        }
    }

    /// `Via` value added to responses.
    fn via(&self) -> &HeaderValue {
        &self.via
    }

    /// Name used in `Via` headers.
    fn via_name(&self) -> &str {
        &self.config.server.via_name
    }
}
