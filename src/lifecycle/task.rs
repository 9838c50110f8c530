//! The task of serving one client request (Varnish's `struct req`): the
//! request as the policy reads and changes it (`req.*`), and the state the
//! lifecycle keeps for it — the settings generation it runs under, its
//! restarts, its ESI include chain, whether it is a background refresh.
//! Built by `pipeline::recv`, carried through every step; each fetch it
//! starts has its own [`super::Fetch`].

use http::{HeaderMap, Method, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::Live;
use crate::esi::chain::IncludeChain;

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
    /// Request headers, hop-by-hop ones removed.
    pub headers: HeaderMap,
    /// Client address.
    pub client: SocketAddr,
    /// Request body, for passes.
    pub body: Option<Incoming>,
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
    /// The client asked to switch protocols (`Upgrade` with `Connection:
    /// upgrade`): what a pipe needs to take the connection over.
    pub upgrade: Option<UpgradeRequest>,
}

/// A client's request to switch protocols, kept from recv (where the
/// hop-by-hop `Upgrade` is removed from the headers) for a pipe.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// The `Upgrade` header's value (`websocket`, …).
    pub protocol: http::HeaderValue,
    /// The client connection, once lacquer has answered `101`.
    pub connection: hyper::upgrade::OnUpgrade,
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
            headers,
            client,
            body: None,
            always_miss: false,
            esi: None,
            live,
            restarts: 0,
            max_ttl: None,
            max_grace: None,
            background: false,
            upgrade: None,
        }
    }

    /// A body-less copy for a background fetch.
    pub fn detached(&self) -> Task {
        Task {
            esi: self.esi.clone(),
            background: true,
            ..Task::internal(
                self.live.clone(),
                self.host.clone(),
                self.url.clone(),
                self.headers.clone(),
                self.client,
                self.version,
            )
        }
    }
}
