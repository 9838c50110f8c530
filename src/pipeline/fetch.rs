//! fetch: misses (coalesced), revalidations, background refreshes and passes.

use bytes::Bytes;
use http::header::{
    HeaderValue, CONTENT_LENGTH, CONTENT_LOCATION, HOST, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LOCATION, RANGE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::SystemTime;

use super::backend_response::{apply_policy, decide, Decision};
use super::deliver::{self, synth, CacheOutcome};
use super::esi::{Keep, SURROGATE_CAPABILITY};
use super::{Proxy, RequestCtx};
use crate::body::{ClientBody, ReqBody, RespBody};
use crate::cache::freshness::merge_304;
use crate::cache::object::Provenance;
use crate::cache::{CacheKey, CachedObject, Found};
use crate::fetch::broadcast::Broadcast;
use crate::fetch::inflight::{FlightState, LeaderGuard, Role, SharedHead};
use crate::fetch::pool::{BackendBody, FetchError};
use crate::http::headers::{append_forwarded_for, append_via};

/// How often a follower starts over after its leader gave up.
const MAX_FOLLOW_ATTEMPTS: usize = 3;

impl Proxy {
    /// A miss (or a stale object needing revalidation): join the fetch in
    /// progress for this key or lead a new one.
    pub(super) async fn miss(
        self: &Arc<Self>,
        ctx: RequestCtx,
        key: CacheKey,
        stale: Option<Arc<CachedObject>>,
    ) -> Response<RespBody> {
        for _ in 0..MAX_FOLLOW_ATTEMPTS {
            let flight = match self.inflight.join_or_lead(&key) {
                Role::Leader(guard) => return self.fetch(ctx, key, stale, Some(guard)).await,
                Role::Follower(flight) => {
                    self.metrics.count_coalesced();
                    flight
                }
            };
            match flight.outcome().await {
                FlightState::Shared(head) if head.variant.matches(&ctx.headers) => {
                    if let Some(reader) = head.body.subscribe(head.size) {
                        return deliver::shared(&ctx, &head, reader, self.via());
                    }
                    break;
                }
                FlightState::Stored => {
                    if let Found::Object(obj) = self.store.lookup(&key, &ctx.headers) {
                        if obj.freshness.is_fresh(SystemTime::now()) {
                            return self.deliver_object(&ctx, &obj, CacheOutcome::Hit);
                        }
                    }
                    break;
                }
                FlightState::Failed(status, reason) => {
                    if let Some(obj) = stale.as_ref().filter(|o| self.usable_on_error(o)) {
                        return self.deliver_object(&ctx, obj, CacheOutcome::Stale);
                    }
                    return synth(status, &String::from_utf8_lossy(&reason));
                }
                FlightState::Abandoned | FlightState::Pending => continue,
                FlightState::Shared(_) | FlightState::NotShared => break,
            }
        }
        // The answer could not be shared with us: fetch on our own, in parallel.
        self.fetch(ctx, key, stale, None).await
    }

    /// Refreshes a stale object in grace with one background fetch.
    pub(super) fn refresh_in_background(
        self: &Arc<Self>,
        ctx: &RequestCtx,
        key: CacheKey,
        stale: Arc<CachedObject>,
    ) {
        if let Role::Leader(guard) = self.inflight.join_or_lead(&key) {
            let proxy = self.clone();
            let ctx = ctx.detached();
            tokio::spawn(async move {
                let _ = proxy.fetch(ctx, key, Some(stale), Some(guard)).await;
            });
        }
    }

    fn usable_on_error(&self, obj: &CachedObject) -> bool {
        obj.freshness.within_stale_if_error(SystemTime::now())
    }

    /// Fetches `key` for the cache: a GET, conditional when a stale object
    /// with validators is at hand. Stores what may be stored, and publishes
    /// the outcome to followers through `guard`.
    pub(super) async fn fetch(
        self: &Arc<Self>,
        mut ctx: RequestCtx,
        key: CacheKey,
        stale: Option<Arc<CachedObject>>,
        guard: Option<LeaderGuard>,
    ) -> Response<RespBody> {
        ctx.body = None;
        let Some(bereq) =
            self.backend_request(&ctx, Method::GET, stale.as_deref(), ReqBody::Empty, true)
        else {
            return synth(StatusCode::BAD_REQUEST, "invalid request target");
        };
        let request_time = SystemTime::now();
        // Bans added from here on apply to what this fetch stores.
        let ban_stamp = self.bans.newest();
        let resp = match self.send(&ctx, bereq).await {
            Ok(r) => {
                self.metrics.count_backend(r.status());
                r
            }
            Err(e) => {
                self.metrics.count_backend_error();
                tracing::warn!(url = %ctx.url, error = %e, "backend fetch failed");
                let status = e.status();
                let reason = Bytes::from(e.to_string());
                if let Some(g) = guard {
                    g.finish(Some(FlightState::Failed(status, reason)));
                }
                if let Some(obj) = stale.as_ref().filter(|o| self.usable_on_error(o)) {
                    return self.deliver_object(&ctx, obj, CacheOutcome::Stale);
                }
                return synth(status, &e.to_string());
            }
        };
        let response_time = SystemTime::now();
        let (parts, body) = resp.into_parts();
        let mut headers = parts.headers;
        crate::http::headers::remove_hop_by_hop(&mut headers);
        let status = parts.status;

        if status == StatusCode::NOT_MODIFIED {
            if let Some(old) = stale {
                return self.refresh(
                    ctx,
                    key,
                    &old,
                    headers,
                    (request_time, response_time, ban_stamp),
                    guard,
                );
            }
        }
        if status.is_server_error() {
            if let Some(obj) = stale.as_ref().filter(|o| self.usable_on_error(o)) {
                tracing::info!(url = %ctx.url, status = status.as_u16(), "backend error; delivering stale");
                if let Some(g) = guard {
                    g.finish(Some(FlightState::Failed(
                        status,
                        Bytes::from_static(b"backend error"),
                    )));
                }
                return self.deliver_object(&ctx, obj, CacheOutcome::Stale);
            }
        }
        let cache = &self.config.cache;
        let decision = decide(
            &ctx,
            status,
            &headers,
            request_time,
            response_time,
            &self.freshness,
        );
        let mut do_esi = self.esi_wanted(&ctx.url, &headers);
        let decision = apply_policy(
            &*self.policy(),
            &ctx,
            status,
            &mut headers,
            decision,
            &mut do_esi,
            request_time,
            response_time,
            &self.freshness,
        );
        if do_esi {
            let from = Provenance {
                url: ctx.url.as_str().into(),
                host: ctx.host.as_str().into(),
                ban_stamp,
            };
            let (keep, outcome) = match decision {
                Decision::Store(f, v) => (Keep::Store(key, f, v), CacheOutcome::Miss),
                Decision::DontStore(reason) => {
                    tracing::debug!(url = %ctx.url, reason = reason.as_str(), "ESI page not stored");
                    self.store.mark_hit_for_miss(key, cache.hit_for_miss.0);
                    let outcome = if guard.is_some() {
                        CacheOutcome::Miss
                    } else {
                        CacheOutcome::Pass
                    };
                    (Keep::Transient, outcome)
                }
            };
            return self
                .process_esi(ctx, status, headers, body, keep, from, guard, outcome)
                .await;
        }
        match decision {
            Decision::Store(freshness, variant) => {
                let size = content_length(&headers);
                if size.is_some_and(|n| n > cache.max_object_size.0) {
                    tracing::debug!(url = %ctx.url, "too large to store");
                    self.store.mark_hit_for_miss(key, cache.hit_for_miss.0);
                    if let Some(g) = guard {
                        g.finish(Some(FlightState::NotShared));
                    }
                    return deliver::pass_through(
                        &ctx,
                        status,
                        headers,
                        body,
                        CacheOutcome::Miss,
                        self.via(),
                        &self.keys,
                    );
                }
                let bc = Broadcast::new();
                let head = Arc::new(SharedHead {
                    status,
                    headers: deliver::delivered_headers(&headers, &self.keys),
                    freshness,
                    variant,
                    body: bc.clone(),
                    size,
                    from: Provenance {
                        url: ctx.url.as_str().into(),
                        host: ctx.host.as_str().into(),
                        ban_stamp,
                    },
                });
                let reader = bc.subscribe(size);
                if let Some(g) = &guard {
                    g.publish(FlightState::Shared(head.clone()));
                }
                let proxy = self.clone();
                let pump_head = head.clone();
                tokio::spawn(async move {
                    proxy.pump(key, pump_head, headers, body, guard).await;
                });
                match reader {
                    Some(reader) => deliver::shared(&ctx, &head, reader, self.via()),
                    None => synth(StatusCode::SERVICE_UNAVAILABLE, "fetch could not be shared"),
                }
            }
            Decision::DontStore(reason) => {
                tracing::debug!(url = %ctx.url, reason = reason.as_str(), "not stored");
                self.store.mark_hit_for_miss(key, cache.hit_for_miss.0);
                // Without a guard this request did not lead a coalesced miss
                // (hit-for-miss, or an answer it could not share): a pass.
                let outcome = match guard {
                    Some(g) => {
                        g.finish(Some(FlightState::NotShared));
                        CacheOutcome::Miss
                    }
                    None => CacheOutcome::Pass,
                };
                deliver::pass_through(&ctx, status, headers, body, outcome, self.via(), &self.keys)
            }
        }
    }

    /// A 304 answered our revalidation: merge its headers into a new object
    /// that keeps the old body.
    #[allow(clippy::too_many_arguments)]
    fn refresh(
        self: &Arc<Self>,
        ctx: RequestCtx,
        key: CacheKey,
        old: &CachedObject,
        headers: http::HeaderMap,
        (request_time, response_time, ban_stamp): (SystemTime, SystemTime, u64),
        guard: Option<LeaderGuard>,
    ) -> Response<RespBody> {
        let merged = merge_304(&old.headers, &headers);
        match decide(
            &ctx,
            old.status,
            &merged,
            request_time,
            response_time,
            &self.freshness,
        ) {
            Decision::Store(freshness, _) => {
                let obj = Arc::new(old.refreshed(merged, freshness, &self.keys, ban_stamp));
                self.store.insert(key, obj.clone());
                if let Some(g) = guard {
                    g.finish(Some(FlightState::Stored));
                }
                self.deliver_object(&ctx, &obj, CacheOutcome::Miss)
            }
            Decision::DontStore(reason) => {
                tracing::debug!(url = %ctx.url, reason = reason.as_str(), "revalidated object no longer storable");
                self.store.remove(&key);
                if let Some(g) = guard {
                    g.finish(Some(FlightState::NotShared));
                }
                let obj = CachedObject::new(
                    old.status,
                    merged,
                    old.body.clone(),
                    old.freshness.clone(),
                    old.variant.clone(),
                    &self.keys,
                    old.provenance(ban_stamp),
                );
                self.deliver_object(&ctx, &obj, CacheOutcome::Miss)
            }
        }
    }

    /// Reads a storable backend body into the shared broadcast, then stores
    /// the object (unless it grew past `max_object_size` or broke).
    async fn pump(
        self: Arc<Self>,
        key: CacheKey,
        head: Arc<SharedHead>,
        stored_headers: http::HeaderMap,
        mut body: BackendBody,
        mut guard: Option<LeaderGuard>,
    ) {
        let bc = &head.body;
        let max = self.config.cache.max_object_size.0;
        let mut storing = true;
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if storing && bc.total() + data.len() as u64 > max {
                        // Too large after all: stream it on, store nothing, and
                        // let new requests fetch on their own.
                        storing = false;
                        bc.stop_retaining();
                        self.store
                            .mark_hit_for_miss(key.clone(), self.config.cache.hit_for_miss.0);
                        if let Some(g) = guard.take() {
                            g.finish(None);
                        }
                    }
                    if !bc.push(data).await {
                        tracing::debug!(
                            key = key.as_str(),
                            "every reader left an unstored body; fetch stopped"
                        );
                        bc.finish(Err("abandoned".into()));
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(key = key.as_str(), error = %e, "backend body failed; nothing stored");
                    bc.finish(Err(e.to_string()));
                    if let Some(g) = guard.take() {
                        g.finish(None);
                    }
                    return;
                }
            }
        }
        if storing {
            if let Some(all) = bc.collect() {
                let obj = CachedObject::new(
                    head.status,
                    stored_headers,
                    all,
                    head.freshness.clone(),
                    head.variant.clone(),
                    &self.keys,
                    head.from.clone(),
                );
                // A ban that arrived while this was fetched applies to it.
                if !self.bans.is_banned(&obj, None) {
                    self.store.insert(key, Arc::new(obj));
                }
            }
        }
        bc.finish(Ok(()));
        if let Some(g) = guard {
            g.finish(Some(FlightState::Stored));
        }
    }

    /// A pass: the request goes to the backend as it is, body streamed, and
    /// nothing is stored. A successful unsafe method invalidates what is
    /// stored for its URL (RFC 9111 §4.4).
    pub(super) async fn pass(self: &Arc<Self>, mut ctx: RequestCtx) -> Response<RespBody> {
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = match ctx.body.take() {
            Some(b) if !http_body::Body::is_end_stream(&b) => ReqBody::Stream(ClientBody::new(
                b,
                self.config.server.body_timeout.0,
                stalled.clone(),
            )),
            _ => ReqBody::Empty,
        };
        let method = ctx.method.clone();
        let Some(bereq) = self.backend_request(&ctx, method.clone(), None, body, false) else {
            return synth(StatusCode::BAD_REQUEST, "invalid request target");
        };
        let resp = match self.send(&ctx, bereq).await {
            Ok(r) => {
                self.metrics.count_backend(r.status());
                r
            }
            Err(_) if stalled.load(std::sync::atomic::Ordering::Acquire) => {
                tracing::info!(url = %ctx.url, client = %ctx.client, "request body stalled: 408");
                return synth(
                    StatusCode::REQUEST_TIMEOUT,
                    &crate::body::BodyStalled.to_string(),
                );
            }
            Err(e) => {
                self.metrics.count_backend_error();
                tracing::warn!(url = %ctx.url, error = %e, "backend pass failed");
                return synth(e.status(), &e.to_string());
            }
        };
        let (parts, body) = resp.into_parts();
        let mut headers = parts.headers;
        crate::http::headers::remove_hop_by_hop(&mut headers);
        if !method.is_safe() && (parts.status.is_success() || parts.status.is_redirection()) {
            self.invalidate_after_unsafe(&ctx, &headers);
        }
        if method != Method::HEAD && self.esi_wanted(&ctx.url, &headers) {
            let from = Provenance {
                url: ctx.url.as_str().into(),
                host: ctx.host.as_str().into(),
                ban_stamp: 0,
            };
            return self
                .process_esi(
                    ctx,
                    parts.status,
                    headers,
                    body,
                    Keep::Transient,
                    from,
                    None,
                    CacheOutcome::Pass,
                )
                .await;
        }
        deliver::pass_through(
            &ctx,
            parts.status,
            headers,
            body,
            CacheOutcome::Pass,
            self.via(),
            &self.keys,
        )
    }

    /// Sends to the backend the director picks.
    async fn send(
        &self,
        ctx: &RequestCtx,
        bereq: Request<ReqBody>,
    ) -> Result<Response<BackendBody>, FetchError> {
        match self.director.pick(&ctx.url, &ctx.headers) {
            Some(backend) => backend.send(bereq).await,
            None => Err(FetchError::NoHealthyBackend),
        }
    }

    /// RFC 9111 §4.4: the target URI, and same-host `Location` /
    /// `Content-Location`, lose their stored responses.
    fn invalidate_after_unsafe(&self, ctx: &RequestCtx, headers: &http::HeaderMap) {
        let mut removed = self.store.remove(&self.policy().hash(ctx));
        for name in [LOCATION, CONTENT_LOCATION] {
            let Some(uri) = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let same_host = uri
                .authority()
                .is_none_or(|a| a.as_str().eq_ignore_ascii_case(&ctx.host));
            if let (true, Some(pq)) = (same_host, uri.path_and_query()) {
                removed += self
                    .store
                    .remove(&CacheKey::for_request(&ctx.host, pq.as_str()));
            }
        }
        tracing::debug!(url = %ctx.url, method = %ctx.method, removed, "invalidated after unsafe method");
    }

    /// The backend request for `ctx`. Fetches for the cache drop the
    /// client's conditionals and ranges (the whole body is stored) and add
    /// the stale object's validators instead.
    fn backend_request(
        &self,
        ctx: &RequestCtx,
        method: Method,
        stale: Option<&CachedObject>,
        body: ReqBody,
        for_cache: bool,
    ) -> Option<Request<ReqBody>> {
        let uri: Uri = ctx.url.parse().ok()?;
        let mut headers = ctx.headers.clone();
        if for_cache {
            for name in [
                IF_NONE_MATCH,
                IF_MODIFIED_SINCE,
                IF_MATCH,
                IF_UNMODIFIED_SINCE,
                IF_RANGE,
                RANGE,
            ] {
                headers.remove(name);
            }
        }
        if let Some(obj) = stale {
            if let Some(etag) = obj.etag() {
                headers.insert(IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = obj.last_modified() {
                headers.insert(IF_MODIFIED_SINCE, lm.clone());
            }
        }
        if !headers.contains_key(HOST) && !ctx.host.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&ctx.host) {
                headers.insert(HOST, v);
            }
        }
        headers.insert(
            "surrogate-capability",
            HeaderValue::from_static(SURROGATE_CAPABILITY),
        );
        append_forwarded_for(&mut headers, ctx.client.ip());
        append_via(&mut headers, ctx.version, self.via_name());
        if method == Method::GET || method == Method::HEAD {
            headers.remove(CONTENT_LENGTH);
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Some(req)
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}
