//! fetch: misses (coalesced), revalidations, background refreshes and passes.

use crate::http::req_fields::FieldsRead;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

use super::backend_response::{apply_policy, decide, Decision, Fetched, Verdict};
use super::bereq::{Exchange, Next};
use super::deliver;
use super::esi::{EsiPage, Keep};
use super::lookup::{lookup, Lookup};
use super::{Live, Proxy, Served, Task};
use crate::cache::merge_304::{head_matches, merge_304};
use crate::cache::object::Provenance;
use crate::cache::{CacheKey, CachedObject, Found};
use crate::config::StoreCoding;
use crate::fetch::broadcast::Broadcast;
use crate::fetch::inflight::{FlightState, LeaderGuard, Role, SharedHead};
use crate::fetch::pool::BackendBody;
use crate::fetch::req_body::{ClientBody, FaultSlot, ReqBody};
use crate::http::coding::{self, Coding, Encoder};
use crate::lifecycle::{CacheOutcome, Clock, Failure, FailureKind, Fetch, ObjMeta};
use crate::policy::BackendAction;

/// How often a follower starts over after its leader gave up.
const MAX_FOLLOW_ATTEMPTS: usize = 3;

/// A backend response's parts, hop-by-hop headers removed.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: BackendBody,
    request_time: SystemTime,
    response_time: SystemTime,
}

impl Answer {
    fn of(resp: http::Response<BackendBody>, request_time: SystemTime, clock: &Clock) -> Answer {
        let response_time = clock.now();
        let (parts, body) = resp.into_parts();
        let mut headers = parts.headers;
        crate::http::headers::remove_hop_by_hop(&mut headers);
        Answer {
            status: parts.status,
            headers,
            body,
            request_time,
            response_time,
        }
    }
}

impl Proxy {
    /// A miss (or a stale object needing revalidation): join the fetch in
    /// progress for this key or lead a new one.
    pub(super) async fn miss(
        self: &Arc<Self>,
        ctx: &mut Task,
        key: CacheKey,
        stale: Option<Arc<CachedObject>>,
    ) -> Served {
        for _ in 0..MAX_FOLLOW_ATTEMPTS {
            let flight = match self.inflight.join_or_lead(&key) {
                Role::Leader(guard) => {
                    // The lookup that found nothing ran before this request
                    // joined the table: a fetch that ended in between has
                    // stored its object (it stores, then leaves the table),
                    // so look once more rather than fetch it again. Not
                    // when an object was in hand (`stale`: one to
                    // revalidate, or a hit the policy sent to the backend
                    // with `return (miss)`): that request means to fetch.
                    if stale.is_none() {
                        if let Lookup::Hit(obj) = lookup(&self.store, &self.bans, &key, ctx) {
                            guard.finish(Some(FlightState::Stored));
                            self.decode_for(ctx, &key, &obj).await;
                            return self.deliver_object(ctx, &obj, CacheOutcome::Hit);
                        }
                    }
                    return self.fetch(ctx, key, stale, Some(guard)).await;
                }
                Role::Follower(flight) => {
                    self.metrics.count_coalesced();
                    flight
                }
            };
            match flight.outcome().await {
                FlightState::Shared(head) if head.variant.matches(&ctx.headers) => {
                    if let Some(reader) = head.body.subscribe(head.size) {
                        let meta = ObjMeta::of(
                            &head.freshness,
                            0,
                            ctx.live.clock.now(),
                            CacheOutcome::Miss,
                        );
                        let resp = deliver::shared(ctx, &head, reader, &ctx.live.via);
                        return Served::Response(resp, meta);
                    }
                    break;
                }
                FlightState::Stored => {
                    if let Found::Object(obj) = self.store.lookup(&key, &ctx.headers) {
                        if obj.freshness.is_fresh(ctx.live.clock.now()) {
                            self.decode_for(ctx, &key, &obj).await;
                            return self.deliver_object(ctx, &obj, CacheOutcome::Hit);
                        }
                    }
                    break;
                }
                FlightState::Failed(status, reason) => {
                    if let Some(obj) = stale.as_ref().filter(|o| self.usable_on_error(o)) {
                        return self.deliver_object(ctx, obj, CacheOutcome::Stale);
                    }
                    return Served::Failed(Failure::shared(status, &reason));
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
        ctx: &Task,
        key: CacheKey,
        stale: Arc<CachedObject>,
    ) {
        if let Role::Leader(guard) = self.inflight.join_or_lead(&key) {
            let proxy = self.clone();
            let mut ctx = ctx.detached();
            tokio::spawn(async move {
                let _ = proxy.fetch(&mut ctx, key, Some(stale), Some(guard)).await;
            });
        }
    }

    fn usable_on_error(&self, obj: &CachedObject) -> bool {
        obj.freshness.within_stale_if_error(self.clock().now())
    }

    /// Fetches `key` for the cache: a GET, conditional when a stale object
    /// with validators is at hand. Stores what may be stored, and publishes
    /// the outcome to followers through `guard`.
    pub(super) async fn fetch(
        self: &Arc<Self>,
        ctx: &mut Task,
        key: CacheKey,
        stale: Option<Arc<CachedObject>>,
        guard: Option<LeaderGuard>,
    ) -> Served {
        ctx.body = None;
        let ctx = &*ctx;
        let live = ctx.live.clone();
        let mut f = Fetch {
            bereq: self.backend_request(ctx, Method::GET, stale.as_deref(), true),
            live: live.clone(),
            body: Some(ReqBody::Empty),
            fault: None,
            key: Some(key),
            stale,
            guard,
            // Bans added from here on apply to what this fetch stores.
            ban_stamp: self.bans.newest(),
        };
        loop {
            let mut answer = match self.exchange(&mut f).await {
                Exchange::Answer(resp, sent) => Answer::of(resp, sent, &live.clock),
                failed => return self.fetch_failed(ctx, f, failed),
            };
            let (status, request_time, response_time) =
                (answer.status, answer.request_time, answer.response_time);
            if let (StatusCode::NOT_MODIFIED, Some(old)) = (status, f.stale.clone()) {
                let mut merged = merge_304(&old.stored_headers(), &answer.headers);
                let decision = decide(
                    ctx,
                    old.status,
                    &merged,
                    request_time,
                    response_time,
                    &live.freshness,
                );
                let fetched = Fetched {
                    status: old.status,
                    headers: &mut merged,
                    was_304: true,
                    request_time,
                    response_time,
                };
                let verdict = apply_policy(&mut f, ctx, fetched, decision, false);
                match self.after_backend_response(&mut f, verdict.action.clone()) {
                    Next::Go => {}
                    Next::Retry => continue,
                    Next::Done(failed) => return self.fetch_failed(ctx, f, failed),
                }
                return self.refresh(ctx, f, &old, merged, verdict);
            }
            if status.is_server_error() {
                if let Some(obj) = f.stale.as_ref().filter(|o| self.usable_on_error(o)) {
                    crate::log_limited!(10, info, url = %ctx.url, status = status.as_u16(), "backend error; delivering stale");
                    if let Some(g) = f.guard.take() {
                        g.finish(Some(FlightState::Failed(
                            status,
                            Bytes::from_static(b"backend error"),
                        )));
                    }
                    return self.deliver_object(ctx, obj, CacheOutcome::Stale);
                }
            }
            let decision = decide(
                ctx,
                status,
                &answer.headers,
                request_time,
                response_time,
                &live.freshness,
            );
            let do_esi = self.esi_wanted(&live, &ctx.url, &answer.headers);
            let fetched = Fetched {
                status,
                headers: &mut answer.headers,
                was_304: false,
                request_time,
                response_time,
            };
            let verdict = apply_policy(&mut f, ctx, fetched, decision, do_esi);
            match self.after_backend_response(&mut f, verdict.action.clone()) {
                Next::Go => {}
                Next::Retry => continue,
                Next::Done(failed) => return self.fetch_failed(ctx, f, failed),
            }
            // Not an async fn of its own: its future (with the fetch, the
            // answer and the verdict) was moved into this one per miss.
            return match self.store_and_deliver(ctx, f, answer, verdict) {
                AfterFetch::Served(served) => served,
                // Boxed: the ESI branch's 2 KiB would otherwise be part of
                // every fetch's future, copied whole each time one is made
                // or moved.
                AfterFetch::Esi(page) => Box::pin(self.process_esi(ctx, *page)).await,
            };
        }
    }

    /// A fetch for the cache that got no backend answer: followers learn
    /// of it; a stale object within stale-if-error stands in; else the
    /// synthetic answer of `vcl_backend_error`, else lacquer's error.
    fn fetch_failed(self: &Arc<Self>, ctx: &Task, f: Fetch, failed: Exchange) -> Served {
        let Fetch { stale, guard, .. } = f;
        let stale = stale.as_ref();
        let failure = match failed {
            Exchange::Synthetic(resp) => {
                if let Some(g) = guard {
                    let reason =
                        Bytes::from_static(FailureKind::FetchFailed.public_reason().as_bytes());
                    g.finish(Some(FlightState::Failed(resp.status(), reason)));
                }
                if let Some(obj) = stale.filter(|o| self.usable_on_error(o)) {
                    return self.deliver_object(ctx, obj, CacheOutcome::Stale);
                }
                return Served::Response(resp, ObjMeta::uncacheable(CacheOutcome::Synth));
            }
            Exchange::Failed(failure) => failure,
            Exchange::Answer(..) => Failure::new(FailureKind::FetchFailed),
        };
        if let Some(g) = guard {
            let reason = Bytes::from(failure.reason.clone().into_owned());
            g.finish(Some(FlightState::Failed(failure.status, reason)));
        }
        // No answer from the origin at all: lacquer is "disconnected" (RFC
        // 9111 §4.2.4), and a kept object may stand in.
        let disconnected = matches!(
            failure.kind,
            FailureKind::BackendUnavailable | FailureKind::BackendTimeout | FailureKind::BadGateway
        );
        let now = self.clock().now();
        let usable = |o: &&Arc<CachedObject>| {
            self.usable_on_error(o) || (disconnected && o.freshness.usable_when_disconnected(now))
        };
        if let Some(obj) = stale.filter(usable) {
            return self.deliver_object(ctx, obj, CacheOutcome::Stale);
        }
        Served::Failed(failure)
    }

    /// Stores what the verdict allows (streaming it to this client and the
    /// followers meanwhile), or delivers it unstored; an ESI page is handed
    /// back to be assembled.
    fn store_and_deliver(
        self: &Arc<Self>,
        ctx: &Task,
        f: Fetch,
        answer: Answer,
        verdict: Verdict,
    ) -> AfterFetch {
        let Fetch {
            key,
            guard,
            ban_stamp,
            ..
        } = f;
        let Some(key) = key else {
            return AfterFetch::Served(Served::failed(
                FailureKind::FetchFailed,
                "a fetch for the cache without a key",
            ));
        };
        let live = &ctx.live;
        let cache = &live.config.cache;
        let Answer { headers, body, .. } = answer;
        let status = verdict.status;
        let hit_for_miss = match verdict.action {
            BackendAction::HitForPass(d) => d,
            _ => cache.hit_for_miss.0,
        };
        if verdict.do_esi {
            let from = Provenance {
                url: ctx.url.as_str().into(),
                host: ctx.host.as_str().into(),
                ban_stamp,
            };
            let (keep, outcome) = match verdict.decision {
                Decision::Store(f, v) => (Keep::Store(key, f, v), CacheOutcome::Miss),
                Decision::DontStore(reason) => {
                    tracing::debug!(url = %ctx.url, reason = reason.as_str(), "ESI page not stored");
                    self.store
                        .mark_hit_for_miss(key, hit_for_miss, ctx.hit_for_miss_until);
                    let outcome = if guard.is_some() {
                        CacheOutcome::Miss
                    } else {
                        CacheOutcome::Pass
                    };
                    (Keep::Transient, outcome)
                }
            };
            return AfterFetch::Esi(Box::new(EsiPage {
                status,
                headers,
                body,
                keep,
                from,
                guard,
                outcome,
            }));
        }
        AfterFetch::Served(match verdict.decision {
            Decision::Store(freshness, variant) => {
                let size = content_length(&headers);
                if size.is_some_and(|n| n > cache.max_object_size.0) {
                    tracing::debug!(url = %ctx.url, "too large to store");
                    self.store
                        .mark_hit_for_miss(key, hit_for_miss, ctx.hit_for_miss_until);
                    if let Some(g) = guard {
                        g.finish(Some(FlightState::NotShared));
                    }
                    let resp = deliver::fetched_through(
                        ctx,
                        status,
                        headers,
                        body,
                        CacheOutcome::Miss,
                        &live.via,
                        &live.keys,
                    );
                    return AfterFetch::Served(Served::Response(
                        resp,
                        ObjMeta::uncacheable(CacheOutcome::Miss),
                    ));
                }
                let mut headers = headers;
                let origin_coding = Coding::of(&headers);
                let gunzip = verdict.coding.gunzip && origin_coding == Coding::Gzip;
                let forced = verdict.coding.forced().is_some();
                let store_as = self
                    .compress_on_store(live, &headers, size, verdict.coding.forced())
                    .filter(|_| !verdict.coding.gunzip);
                if store_as.is_some() || origin_coding.decodable() {
                    // What is delivered depends on Accept-Encoding from now on.
                    coding::vary_on_accept_encoding(&mut headers);
                }
                let bc = Broadcast::new();
                let head = Arc::new(SharedHead {
                    status,
                    headers: deliver::delivered_headers(&headers, &live.keys),
                    freshness,
                    variant,
                    body: bc.clone(),
                    size,
                    from: Provenance {
                        url: ctx.url.as_str().into(),
                        host: ctx.host.as_str().into(),
                        ban_stamp,
                    },
                    store_as,
                });
                let reader = bc.subscribe(size);
                if let Some(g) = &guard {
                    g.publish(FlightState::Shared(head.clone()));
                }
                let proxy = self.clone();
                let pump_head = head.clone();
                let pump_live = live.clone();
                tokio::spawn(async move {
                    let stored = Stored {
                        headers,
                        store_as,
                        gunzip,
                        forced,
                    };
                    proxy
                        .pump(pump_live, key, pump_head, stored, body, guard)
                        .await;
                });
                match reader {
                    Some(reader) => {
                        let meta = ObjMeta::of(
                            &head.freshness,
                            0,
                            ctx.live.clock.now(),
                            CacheOutcome::Miss,
                        );
                        Served::Response(deliver::shared(ctx, &head, reader, &live.via), meta)
                    }
                    None => Served::failed(FailureKind::FetchFailed, "fetch could not be shared"),
                }
            }
            Decision::DontStore(reason) => {
                tracing::debug!(url = %ctx.url, reason = reason.as_str(), "not stored");
                self.store
                    .mark_hit_for_miss(key, hit_for_miss, ctx.hit_for_miss_until);
                // Without a guard this request did not lead a coalesced miss
                // (hit-for-miss, or an answer it could not share): a pass.
                let outcome = match guard {
                    Some(g) => {
                        g.finish(Some(FlightState::NotShared));
                        CacheOutcome::Miss
                    }
                    None => CacheOutcome::Pass,
                };
                let resp = deliver::fetched_through(
                    ctx, status, headers, body, outcome, &live.via, &live.keys,
                );
                Served::Response(resp, ObjMeta::uncacheable(outcome))
            }
        })
    }

    /// A 304 answered our revalidation: a new object with the merged
    /// headers keeps the old body.
    fn refresh(
        self: &Arc<Self>,
        ctx: &Task,
        f: Fetch,
        old: &CachedObject,
        merged: HeaderMap,
        verdict: Verdict,
    ) -> Served {
        let Fetch {
            key,
            guard,
            ban_stamp,
            ..
        } = f;
        let Some(key) = key else {
            return Served::failed(FailureKind::FetchFailed, "a revalidation without a key");
        };
        let keys = &ctx.live.keys;
        match verdict.decision {
            Decision::Store(freshness, _) => {
                let obj = Arc::new(old.refreshed(merged, freshness, keys, ban_stamp));
                self.store.insert(key, obj.clone());
                if let Some(g) = guard {
                    g.finish(Some(FlightState::Stored));
                }
                self.deliver_object(ctx, &obj, CacheOutcome::Miss)
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
                    keys,
                    old.provenance(ban_stamp),
                );
                // Still the bytes lacquer coded: still a weak ETag.
                let obj = if old.compressed_here {
                    obj.coded_here()
                } else {
                    obj
                };
                self.deliver_object(ctx, &Arc::new(obj), CacheOutcome::Miss)
            }
        }
    }

    /// Reads a storable backend body into the shared broadcast, then stores
    /// the object (unless it grew past `max_object_size` or broke).
    async fn pump(
        self: Arc<Self>,
        live: Arc<Live>,
        key: CacheKey,
        head: Arc<SharedHead>,
        stored: Stored,
        mut body: BackendBody,
        mut guard: Option<LeaderGuard>,
    ) {
        use http_body_util::BodyExt;
        let bc = &head.body;
        let max = live.config.cache.max_object_size.0;
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
                        self.store.mark_hit_for_miss(
                            key.clone(),
                            live.config.cache.hit_for_miss.0,
                            None,
                        );
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
                    crate::log_limited!(10, warn, key = key.as_str(), error = %e, "backend body failed; nothing stored");
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
                let Stored {
                    headers: mut stored_headers,
                    store_as,
                    gunzip,
                    forced,
                } = stored;
                let recoded = self
                    .recode(&live, &key, &all, store_as, gunzip, forced)
                    .await;
                let coded_here = recoded.is_some();
                let all = match recoded {
                    Some((body, coding)) => {
                        match coding {
                            Coding::Identity | Coding::Other => {
                                stored_headers.remove(CONTENT_ENCODING)
                            }
                            coded => stored_headers
                                .insert(CONTENT_ENCODING, HeaderValue::from_static(coded.token())),
                        };
                        body
                    }
                    None => all,
                };
                let obj = CachedObject::new(
                    head.status,
                    stored_headers,
                    all,
                    head.freshness.clone(),
                    head.variant.clone(),
                    &live.keys,
                    head.from.clone(),
                );
                let obj = if coded_here { obj.coded_here() } else { obj };
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
    /// nothing is stored. A successful POST, PUT, DELETE or PATCH
    /// invalidates what is stored for its URL (RFC 9111 §4.4).
    pub(super) async fn pass(self: &Arc<Self>, ctx: &mut Task) -> Served {
        let live = ctx.live.clone();
        // A passed HEAD's answer may update the stored GET it describes
        // (RFC 9111 §4.3.5): its key, as vcl_hash makes it (Varnish runs
        // vcl_hash before a pass too).
        let head_key = (ctx.method == Method::HEAD).then(|| live.policy.hash(ctx));
        let ban_stamp = self.bans.newest();
        let fault = Arc::new(FaultSlot::default());
        if ctx.body.is_none() && ctx.cached_body.is_none() && has_body(&ctx.headers) {
            // A restart after the body was streamed to a backend: it is gone
            // (`std.cache_req_body` keeps it); fail now rather than send a
            // head announcing bytes that never come.
            return Served::failed(
                FailureKind::FetchFailed,
                "the request body was already sent (std.cache_req_body keeps it for restarts)",
            );
        }
        let body = Some(match ctx.body.take() {
            // Read before vcl_recv (std.cache_req_body): kept for restarts.
            _ if ctx.cached_body.is_some() => ReqBody::Full(ctx.cached_body.clone()),
            Some(b) if !http_body::Body::is_end_stream(&b) => ReqBody::Stream(ClientBody::new(
                b,
                live.config.server.body_timeout.0,
                fault.clone(),
            )),
            _ => ReqBody::Empty,
        });
        let ctx = &*ctx;
        let method = ctx.method.clone();
        let mut f = Fetch {
            bereq: self.backend_request(ctx, method.clone(), None, false),
            live: live.clone(),
            body,
            fault: Some(fault),
            key: None,
            stale: None,
            guard: None,
            ban_stamp: 0,
        };
        let (mut answer, verdict) = loop {
            let mut answer = match self.exchange(&mut f).await {
                Exchange::Answer(resp, sent) => Answer::of(resp, sent, &live.clock),
                failed => return self.fetch_failed(ctx, f, failed),
            };
            let do_esi =
                method != Method::HEAD && self.esi_wanted(&live, &ctx.url, &answer.headers);
            let fetched = Fetched {
                status: answer.status,
                headers: &mut answer.headers,
                was_304: false,
                request_time: answer.request_time,
                response_time: answer.response_time,
            };
            let decision = Decision::DontStore(crate::cache::storable::NoCacheReason::Method);
            let verdict = apply_policy(&mut f, ctx, fetched, decision, do_esi);
            match self.after_backend_response(&mut f, verdict.action.clone()) {
                Next::Go => break (answer, verdict),
                Next::Retry => continue,
                Next::Done(failed) => return self.fetch_failed(ctx, f, failed),
            }
        };
        let status = verdict.status;
        if invalidates(&method) && (status.is_success() || status.is_redirection()) {
            self.invalidate_after_unsafe(ctx, &answer.headers);
        }
        if let Some(key) = &head_key {
            let times = (answer.request_time, answer.response_time);
            self.update_from_head(ctx, key, status, &answer.headers, times, ban_stamp);
        }
        let headers = std::mem::take(&mut answer.headers);
        if verdict.do_esi && method != Method::HEAD {
            let from = Provenance {
                url: ctx.url.as_str().into(),
                host: ctx.host.as_str().into(),
                ban_stamp: 0,
            };
            let page = EsiPage {
                status,
                headers,
                body: answer.body,
                keep: Keep::Transient,
                from,
                guard: None,
                outcome: CacheOutcome::Pass,
            };
            // Boxed: the ESI branch's 2 KiB would otherwise be part of every
            // fetch's future, copied whole each time one is made or moved.
            return Box::pin(self.process_esi(ctx, page)).await;
        }
        let resp = deliver::pass_through(
            ctx,
            status,
            headers,
            answer.body,
            CacheOutcome::Pass,
            &live.via,
            &live.keys,
        );
        Served::Response(resp, ObjMeta::uncacheable(CacheOutcome::Pass))
    }
}

impl Proxy {
    /// RFC 9111 §4.3.5: a HEAD answer from the origin updates the stored
    /// GET response it describes — headers and freshness as a 304 would,
    /// never the body — or, when it describes another representation
    /// (other validators, length or status), invalidates it. A 304 (to the
    /// client's own conditional HEAD) or a 5xx says nothing either way.
    fn update_from_head(
        &self,
        ctx: &Task,
        key: &CacheKey,
        status: StatusCode,
        head: &HeaderMap,
        (request_time, response_time): (SystemTime, SystemTime),
        ban_stamp: u64,
    ) {
        if status == StatusCode::NOT_MODIFIED || status.is_server_error() {
            return;
        }
        let Found::Object(old) = self.store.lookup(key, &ctx.headers) else {
            return;
        };
        let mut stored = old.stored_headers();
        if old.compressed_here {
            // The origin's length is the uncoded body's, not the stored
            // one's: only the validators can tell.
            stored.remove(CONTENT_LENGTH);
            if let Some(l) = head.get(CONTENT_LENGTH) {
                stored.insert(CONTENT_LENGTH, l.clone());
            }
        }
        let body_len = u64::try_from(old.body.len()).unwrap_or(u64::MAX);
        if status != old.status || !head_matches(&stored, body_len, head) {
            tracing::debug!(url = %ctx.url, "HEAD answer describes another representation; stored response invalidated");
            self.store.remove_object(key, &old);
            return;
        }
        let merged = merge_304(&stored, head);
        let live = &ctx.live;
        match decide(
            ctx,
            old.status,
            &merged,
            request_time,
            response_time,
            &live.freshness,
        ) {
            Decision::Store(freshness, _) => {
                let obj = old.refreshed(merged, freshness, &live.keys, ban_stamp);
                self.store.insert(key.clone(), Arc::new(obj));
            }
            Decision::DontStore(_) => {
                self.store.remove_object(key, &old);
            }
        }
    }
}

/// What a fetch stores once its body is in: the headers, and whether to
/// compress the body first (with this).
struct Stored {
    headers: HeaderMap,
    store_as: Option<Encoder>,
    /// Decode a gzip'd body first (`beresp.do_gunzip`).
    gunzip: bool,
    /// The policy asked for `store_as` (`beresp.do_gzip` & co.): done
    /// whatever the body's size, as Varnish does.
    forced: bool,
}

impl Proxy {
    /// How to compress a response when it is stored, if it is to be:
    /// compression on, a media type of `compression.types`, no coding
    /// yet, no `Cache-Control: no-transform`, and not known to be smaller
    /// than `compression.min_size`; with `compression.store`'s coding.
    /// `forced` (`beresp.do_gzip`, `do_brotli`, `do_zstd`): with that
    /// coding, any media type and size, `no-transform` or not, as the
    /// policy says (Varnish's `do_gzip`).
    fn compress_on_store(
        &self,
        live: &Live,
        headers: &HeaderMap,
        size: Option<u64>,
        forced: Option<StoreCoding>,
    ) -> Option<Encoder> {
        let c = &live.config.compression;
        let chosen = forced.is_some()
            || (c.compressible(headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes))
                && !coding::no_transform(headers)
                && size.is_none_or(|n| n >= c.min_size.0));
        let wanted = c.enabled && Coding::of(headers) == Coding::Identity && chosen;
        wanted.then(|| c.encoder(forced.unwrap_or(c.store)))
    }

    /// The body to store coded otherwise, once it is complete: decoded
    /// (`gunzip`), or compressed with `store_as` (when not under
    /// `compression.min_size`, and only if that makes it smaller, unless
    /// the policy `forced` it). `None`: stored as it came. Done here, once:
    /// hits never compress.
    async fn recode(
        &self,
        live: &Live,
        key: &CacheKey,
        all: &Bytes,
        store_as: Option<Encoder>,
        gunzip: bool,
        forced: bool,
    ) -> Option<(Bytes, Coding)> {
        if gunzip {
            let limit = live.config.cache.max_object_size.0;
            return match coding::decode_off_worker(Coding::Gzip, all.clone(), limit).await {
                Ok(plain) => Some((plain, Coding::Identity)),
                Err(e) => {
                    crate::log_limited!(10, warn, key = key.as_str(), error = %e, "do_gunzip: body stored as it came");
                    None
                }
            };
        }
        let encoder = store_as?;
        if !forced && (all.len() as u64) < live.config.compression.min_size.0 {
            return None;
        }
        let coded = encoder.encode_off_worker(all.clone()).await;
        self.metrics.count_store_compression();
        coded
            .filter(|z| forced || z.len() < all.len())
            .map(|z| (z, encoder.coding()))
    }
}

/// Whether a successful answer to `method` invalidates its URL: RFC 9111
/// §4.4 says every unsafe method, "including methods whose safety is
/// unknown" — so everything but the methods known to be safe (RFC 9110
/// §9.2.1, and WebDAV's / RFC 9535's read-only ones). The origin decides by
/// answering 2xx/3xx, and one URL is all a client can drop, as with POST.
fn invalidates(method: &Method) -> bool {
    !matches!(
        method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PROPFIND" | "REPORT" | "SEARCH" | "QUERY"
    )
}

/// Whether a request head announces a body.
fn has_body(h: &impl FieldsRead) -> bool {
    h.contains_key(http::header::TRANSFER_ENCODING) || content_length(h).is_some_and(|n| n > 0)
}

fn content_length(h: &impl FieldsRead) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// What [`Proxy::store_and_deliver`] made of a fetched answer.
// Not boxed: the served answer is the usual case and is moved once; the
// ESI page is boxed because it is the rare one.
#[allow(clippy::large_enum_variant)]
enum AfterFetch {
    /// The answer for the client.
    Served(Served),
    /// An ESI page, to be assembled (asynchronously) for the client.
    Esi(Box<EsiPage>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An origin on 127.0.0.1 that answers every request with a
    /// cacheable `hello` and counts the requests.
    async fn counting_origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let hits = counted.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = conn.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            hits.fetch_add(1, Ordering::SeqCst);
                            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\
                                          cache-control: max-age=60\r\n\r\nhello";
                            if conn.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, hits)
    }

    #[tokio::test]
    async fn a_miss_that_leads_after_another_fetch_stored_the_object_delivers_it() {
        let (origin, hits) = counting_origin().await;
        let mut config = crate::config::Config::default();
        config.backend = vec![crate::config::BackendConfig {
            address: origin.to_string(),
            ..Default::default()
        }];
        let proxy = Proxy::new(Arc::new(config)).expect("proxy");
        let task = || {
            Task::internal(
                proxy.live(),
                "test.example".into(),
                "/a".into(),
                HeaderMap::new(),
                "127.0.0.1:1".parse().unwrap(),
                http::Version::HTTP_11,
            )
        };
        let mut first = task();
        let key = proxy.live().policy.hash(&mut first);
        assert!(matches!(
            proxy.miss(&mut first, key.clone(), None).await,
            Served::Response(_, meta) if meta.outcome == CacheOutcome::Miss
        ));
        for _ in 0..200 {
            if matches!(
                proxy.store.lookup(&key, &HeaderMap::new()),
                Found::Object(_)
            ) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A request whose lookup missed just before the first fetch stored
        // its object and left the table: it leads, finds the object, and
        // does not fetch it again.
        let mut second = task();
        assert!(matches!(
            proxy.miss(&mut second, key, None).await,
            Served::Response(_, meta) if meta.outcome == CacheOutcome::Hit
        ));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched again");
    }
}
