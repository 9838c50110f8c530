//! Where an assembled page's fragments come from: the cache, and the whole
//! request lifecycle (recv, hash, lookup, coalesced fetch, its own ESI) for
//! the rest. The ESI engine ([`crate::esi::assemble`]) asks through
//! [`FragmentSource`]; this is lacquer's implementation of it.

use bytes::Bytes;
use http::{Response, Version};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use super::lookup::{lookup, Lookup};
use super::{Live, Proxy, Task};
use crate::body::RespBody;
use crate::cache::{CacheKey, CachedObject};
use crate::esi::assemble::{Cached, Event, FragmentRequest, FragmentSource, Piece};
use crate::http::coding::decode_off_worker;
use crate::policy::RecvAction;

/// The fragments of one client request's page (and of the stored ESI
/// fragments planned in place in it): requests made as the client's.
pub(super) struct Fragments {
    proxy: Arc<Proxy>,
    client: SocketAddr,
    version: Version,
    /// The settings and policy of the page's request.
    live: Arc<Live>,
}

impl Fragments {
    /// The fragments of the page requested by `ctx`.
    pub(super) fn new(proxy: Arc<Proxy>, ctx: &Task) -> Fragments {
        Fragments {
            proxy,
            client: ctx.client,
            version: ctx.version,
            live: ctx.live.clone(),
        }
    }

    /// The lifecycle's request for a fragment.
    fn request(&self, req: FragmentRequest) -> Task {
        Task {
            esi: Some(req.chain),
            ..Task::internal(
                self.live.clone(),
                req.host,
                req.url,
                req.headers,
                self.client,
                self.version,
            )
        }
    }

    /// A fragment's request after `vcl_recv`, and its key; `None` when
    /// `vcl_recv` does not look it up.
    fn keyed(&self, req: FragmentRequest) -> Option<(Task, CacheKey)> {
        let mut fctx = self.request(req);
        if self.live.policy.recv(&mut fctx) != RecvAction::Hash {
            return None;
        }
        let key = self.live.policy.hash(&mut fctx);
        Some((fctx, key))
    }

    /// What the cache holds fresh (or in grace) under `key` for `fctx`.
    fn found(&self, fctx: &Task, key: &CacheKey) -> Option<Arc<CachedObject>> {
        match lookup(&self.proxy.store, &self.proxy.bans, key, fctx) {
            Lookup::Hit(obj) | Lookup::Grace(obj) => Some(obj),
            _ => None,
        }
    }

    /// What the cache holds fresh (or in grace) for a fragment, after
    /// `vcl_recv` (which may refuse the lookup, or change the request).
    fn lookup(&self, req: FragmentRequest) -> Option<(Task, CacheKey, Arc<CachedObject>)> {
        let (fctx, key) = self.keyed(req)?;
        let obj = self.found(&fctx, &key)?;
        Some((fctx, key, obj))
    }
}

impl FragmentSource for Fragments {
    type Body = RespBody;
    type Stored = (CacheKey, Arc<CachedObject>);

    fn cached(&self, req: FragmentRequest) -> Cached<Self::Stored> {
        let Some((fctx, key, obj)) = self.lookup(req) else {
            return Cached::Miss;
        };
        if obj.status.as_u16() >= 400 {
            return Cached::Miss;
        }
        if !obj.freshness.is_fresh(self.proxy.clock().now()) {
            self.proxy
                .refresh_in_background(&fctx, key.clone(), obj.clone());
        }
        obj.record_hit();
        if let Some(template) = &obj.esi {
            return Cached::Page {
                template: template.clone(),
                host: fctx.host,
                url: fctx.url,
                headers: fctx.headers.into_map(),
            };
        }
        if !obj.coding.decodable() {
            return Cached::Body(obj.body.clone());
        }
        // A fragment stored coded (by the backend, or by lacquer: see
        // `compression.store`): it is decoded once,
        // kept with the stored object and charged to the cache (see
        // `decode`), so hits insert the decoded bytes.
        match obj.identity().get() {
            Some(decoded) => Cached::Decoded(decoded.clone()),
            None => Cached::Coded((key, obj)),
        }
    }

    fn fetch(&self, req: FragmentRequest) -> impl Future<Output = Response<RespBody>> + Send {
        let proxy = self.proxy.clone();
        let fctx = self.request(req);
        async move {
            let mut fctx = fctx;
            Box::pin(proxy.process(&mut fctx)).await.0
        }
    }

    async fn stored(&self, req: FragmentRequest, body: &[Piece]) -> Option<Self::Stored> {
        let (fctx, key) = self.keyed(req)?;
        // The fetch that brought `body` may still be storing it; bounded,
        // in case the leader is stuck elsewhere.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.proxy.inflight.finished(&key),
        )
        .await;
        let obj = self.found(&fctx, &key)?;
        let same = obj.esi.is_none()
            && obj.coding.decodable()
            && obj.body.len() == body.iter().map(|c| c.bytes.len()).sum::<usize>()
            && body
                .iter()
                .scan(0, |at, c| {
                    let start = *at;
                    *at += c.bytes.len();
                    Some(obj.body.get(start..*at) == Some(&c.bytes[..]))
                })
                .all(|equal| equal);
        same.then_some((key, obj))
    }

    /// Decodes a stored coded fragment once for all requests (they wait
    /// for the first), off the worker; the decoded body stays with the
    /// object and is charged to the cache. One that does not decode within
    /// the limit keeps failing without being decoded again while it is
    /// stored.
    fn decode(
        &self,
        (key, obj): Self::Stored,
        limit: u64,
    ) -> impl Future<Output = Option<Bytes>> + Send {
        let proxy = self.proxy.clone();
        async move {
            let mut decoded_here = false;
            let identity = obj
                .identity()
                .get_or_init(|| async {
                    decoded_here = true;
                    let _decoding = proxy.metrics.decoding();
                    match decode_off_worker(obj.coding, obj.body.clone(), limit).await {
                        Ok(b) => Some(b),
                        Err(e) => {
                            crate::log_limited!(10, warn, src = %obj.url, error = %e, "coded ESI fragment not decoded");
                            None
                        }
                    }
                })
                .await
                .clone();
            if decoded_here && identity.is_some() {
                proxy.store.recharge(&key, &obj);
            }
            identity
        }
    }

    fn allowed_hosts(&self) -> &[String] {
        &self.live.config.esi.allowed_hosts
    }

    fn decoding(&self) -> impl Send + '_ {
        self.proxy.metrics.decoding()
    }

    fn event(&self, event: Event<'_>) {
        let metrics = &self.proxy.metrics;
        if !matches!(event, Event::Include) {
            metrics.count_esi_errors(1);
        }
        match event {
            Event::Include => metrics.count_esi_include(),
            Event::TooDeep { page, level, max } => {
                crate::log_limited!(10, warn, url = %page, level, max, "ESI include deeper than esi.max_depth: not fetched");
            }
            Event::Refused { page, error } => {
                crate::log_limited!(10, warn, page = %page, error = %error, "ESI include refused");
            }
            Event::Loop { page, src } => {
                crate::log_limited!(10, warn, page = %page, src = %src, "ESI include loop: not fetched");
            }
            Event::Status { page, src } => {
                crate::log_limited!(10, info, page = %page, src = %src, "ESI include failed");
            }
            Event::Body { page, src, error } => {
                crate::log_limited!(10, warn, page = %page, src = %src, error = %error, "ESI include failed");
            }
            Event::TooLarge { page, src } => {
                crate::log_limited!(10, info, page = %page, src = %src, "ESI include failed: gzip'd fragment larger than esi.max_fragment_size");
            }
        }
    }
}
