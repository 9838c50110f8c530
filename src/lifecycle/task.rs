//! The task of serving one client request (Varnish's `struct req`): the
//! request as the policy reads and changes it (`req.*`), and the state the
//! lifecycle keeps for it — the settings generation it runs under, its
//! restarts, its ESI include chain, whether it is a background refresh.
//! Built by `pipeline::recv`, carried through every step; each fetch it
//! starts has its own [`super::Fetch`].

use crate::h1::RequestBody;
use http::{HeaderMap, Method, Version};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use std::time::Instant;

use super::Live;
use crate::esi::chain::IncludeChain;
use crate::http::req_fields::ReqFields;

/// One client request being served.
#[derive(Debug)]
pub struct Task {
    /// Request method.
    pub method: Method,
    /// Client protocol version.
    pub version: Version,
    /// Host the request is for (from the absolute URI or the Host header).
    pub host: String,
    /// Path and query, as received.
    pub url: String,
    /// Request headers, hop-by-hop ones removed, with the policy's changes
    /// (read through `FieldsRead`: see `http::req_fields`).
    pub headers: ReqFields,
    /// Client address.
    pub client: SocketAddr,
    /// Request body, for passes.
    pub body: Option<RequestBody>,
    /// The request body read whole before `vcl_recv` (`std.cache_req_body`):
    /// sent, again on restarts and retries, in place of `body`.
    pub cached_body: Option<bytes::Bytes>,
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
    /// Piped: its answer leaves without `vcl_deliver` (a pipe without a
    /// protocol switch is relayed as a pass).
    pub piped: bool,
    /// The client asked to switch protocols (`Upgrade` with `Connection:
    /// upgrade`): what a pipe needs to take the connection over.
    pub upgrade: Option<UpgradeRequest>,
    /// The connection it came in on (`server.ip`, `local.ip`,
    /// `remote.ip`); `None` for requests lacquer makes itself.
    pub conn: Option<Arc<ConnInfo>>,
    /// The proxy, for what the policy asks of it (`ban()` in VCL); `None`
    /// for requests lacquer makes itself.
    pub services: Option<Weak<dyn PolicyServices>>,
    /// Its transaction id (`req.xid`), unique in the process.
    pub xid: u64,
    /// `client.identity`, when the policy set it (else the client's
    /// address).
    pub client_identity: Option<String>,
    /// Its lookup found a hit-for-miss marker (`req.is_hitmiss`), live
    /// until then.
    pub hit_for_miss_until: Option<Instant>,
    /// What the policy wrote with `std.log` / `std.syslog`: the access log
    /// line shows it.
    pub vcl_log: Vec<String>,
    /// The request as received, kept only when the policy calls
    /// `std.rollback(req)`.
    pub original: Option<Box<Original>>,
    /// `req.backend_hint`, when the policy set it: the backend or director
    /// its fetches go to (else the director of the settings picks).
    pub backend_hint: Option<String>,
    /// What the policy's vmods keep for this request through its restarts
    /// (vmod cookie's jar, vmod var's variables); made when first used
    /// (boxed: most requests never need it, and the task stays small).
    pub vmods: Option<Box<vcl_lite::TaskState>>,
    /// The key it was looked up under, once `vcl_hash` ran: what
    /// `purge.hard()` / `purge.soft()` purge in `vcl_hit` and `vcl_miss`.
    pub lookup_key: Option<crate::cache::CacheKey>,
}

/// A request as it was received (what `std.rollback(req)` restores).
#[derive(Debug, Clone)]
pub struct Original {
    /// Method.
    pub method: Method,
    /// Protocol version.
    pub version: Version,
    /// Host.
    pub host: String,
    /// Path and query.
    pub url: String,
    /// Headers.
    pub headers: HeaderMap,
}

impl Task {
    /// The proxy's services while it runs; `None` for requests lacquer
    /// makes itself, or once the proxy is gone.
    pub fn live_services(&self) -> Option<Arc<dyn PolicyServices>> {
        self.services.as_ref().and_then(Weak::upgrade)
    }

    /// Keeps the request as it is now for `std.rollback(req)`.
    pub fn keep_original(&mut self) {
        self.original = Some(Box::new(Original {
            method: self.method.clone(),
            version: self.version,
            host: self.host.clone(),
            url: self.url.clone(),
            headers: self.headers.to_map(),
        }));
    }

    /// `std.rollback(req)`: the request as kept by [`Task::keep_original`].
    /// `false` when nothing was kept.
    pub fn roll_back(&mut self) -> bool {
        let Some(o) = self.original.as_deref() else {
            return false;
        };
        self.method = o.method.clone();
        self.version = o.version;
        self.host = o.host.clone();
        self.url = o.url.clone();
        self.headers = o.headers.clone().into();
        true
    }
}

/// The addresses of a client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The address the connection was accepted on.
    pub local: SocketAddr,
    /// The connection's peer: the client, or the load balancer when the
    /// PROXY protocol is on.
    pub remote: SocketAddr,
    /// What the PROXY v2 header's TLVs said (vmod proxy); `None` without
    /// one.
    pub tlvs: Option<Arc<super::ProxyTlvs>>,
    /// The client's address as a header value, made by the connection's
    /// first request that appends it to `X-Forwarded-For` and cloned by
    /// the others (the client of a connection does not change).
    pub client_text: crate::http::headers::ClientText,
}

/// What a running policy may ask of the proxy.
pub trait PolicyServices: Send + Sync {
    /// Adds a ban as the BAN method does (same parser, same limits,
    /// forwarded to peers): `ban()` and `std.ban()` in VCL. `Err` tells
    /// why it was refused.
    /// `req`: the client request it runs for (`None` in backend
    /// subroutines).
    fn ban(&self, req: Option<&Task>, expr: &str) -> Result<(), String>;

    /// Whether the backend `name` is healthy, as its probe sees it
    /// (`std.healthy` in backend subroutines); `None`: no such backend.
    fn healthy(&self, name: &str) -> Option<bool>;

    /// `xkey.purge` / `xkey.softpurge`: purges (`soft`: marks stale) the
    /// objects carrying any of the surrogate keys in `keys` (separated by
    /// spaces or commas), as a PURGE by key does (same limits, forwarded to
    /// peers). How many; `Err` tells why it was refused.
    fn purge_keys(&self, req: Option<&Task>, keys: &str, soft: bool) -> Result<usize, String>;

    /// `purge.hard()` (`soft`: `None`) / `purge.soft(…)`: purges every
    /// variant stored under `key` (the request's lookup), on this node.
    /// How many.
    fn purge_key(
        &self,
        req: &Task,
        key: &crate::cache::CacheKey,
        soft: Option<vcl_lite::SoftPurge>,
    ) -> usize;
}

/// A new transaction id (`req.xid`, `bereq.xid`).
pub fn next_xid() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl std::fmt::Debug for dyn PolicyServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyServices")
    }
}

/// A client's request to switch protocols, kept from recv (where the
/// hop-by-hop `Upgrade` is removed from the headers) for a pipe.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// The `Upgrade` header's value (`websocket`, …).
    pub protocol: http::HeaderValue,
    /// The client connection, once lacquer has answered `101`.
    pub connection: crate::h1::OnUpgrade,
}

impl Task {
    /// A body-less GET that lacquer makes itself (a background refresh, an
    /// ESI fragment, a purge's key): no restarts, no client `no-cache`, no
    /// ESI chain, not a background refresh, until the caller says so.
    pub fn internal(
        live: Arc<Live>,
        host: String,
        url: String,
        headers: HeaderMap,
        client: SocketAddr,
        version: Version,
    ) -> Task {
        Task {
            method: Method::GET,
            version,
            host,
            url,
            headers: headers.into(),
            client,
            body: None,
            always_miss: false,
            esi: None,
            live,
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: false,
            piped: false,
            upgrade: None,
            conn: None,
            services: None,
            xid: next_xid(),
            client_identity: None,
            hit_for_miss_until: None,
            vcl_log: Vec::new(),
            original: None,
            cached_body: None,
            backend_hint: None,
            vmods: None,
            lookup_key: None,
        }
    }

    /// A body-less copy for a background fetch.
    pub fn detached(&self) -> Task {
        Task {
            esi: self.esi.clone(),
            background: true,
            piped: false,
            conn: self.conn.clone(),
            services: self.services.clone(),
            client_identity: self.client_identity.clone(),
            backend_hint: self.backend_hint.clone(),
            // `vcl_hash` may read the cookie jar or variables.
            vmods: self.vmods.clone(),
            ..Task::internal(
                self.live.clone(),
                self.host.clone(),
                self.url.clone(),
                self.headers.to_map(),
                self.client,
                self.version,
            )
        }
    }
}
