//! backend response: decide whether a response is stored, and for how long
//! (`vcl_backend_response`).

use http::{HeaderMap, Method, StatusCode};
use std::time::{Duration, SystemTime};

use super::RequestCtx;
use crate::cache::freshness::{self, Freshness, FreshnessPolicy, NoCacheReason};
use crate::cache::vary::{vary_names, Variant};
use crate::policy::Policy;

/// Whether and how a backend response is stored.
#[derive(Debug)]
pub enum Decision {
    /// Store it with this freshness, as the variant for these request values.
    Store(Freshness, Variant),
    /// Deliver it, store nothing.
    DontStore(NoCacheReason),
}

/// Applies RFC 9111 (via [`freshness::evaluate`]) and Vary to a response
/// fetched with GET for `req`.
pub fn decide(
    req: &RequestCtx,
    status: StatusCode,
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    policy: &FreshnessPolicy,
) -> Decision {
    let Some(names) = vary_names(headers) else {
        return Decision::DontStore(NoCacheReason::VaryStar);
    };
    match freshness::evaluate(
        &Method::GET,
        &req.headers,
        status,
        headers,
        request_time,
        response_time,
        policy,
    ) {
        Ok(f) => Decision::Store(f, Variant::capture(&names, &req.headers)),
        Err(reason) => Decision::DontStore(reason),
    }
}

/// What `vcl_backend_response` sees and may change: the response headers,
/// its lifetimes (remaining TTL, grace, keep) and whether it is stored.
/// `uncacheable` starts as RFC 9111's verdict (with `reason`). Setting a TTL
/// on a response that only lacked freshness information makes it storable,
/// as in Varnish; one RFC 9111 refuses for another reason (`private`,
/// `no-store`, `Set-Cookie`…) is stored only if the policy also sets
/// `uncacheable = false`.
#[derive(Debug)]
pub struct Beresp<'a> {
    /// Status.
    pub status: StatusCode,
    /// Headers as they will be stored and delivered.
    pub headers: &'a mut HeaderMap,
    /// Remaining time to live.
    pub ttl: Duration,
    /// Grace after the TTL.
    pub grace: Duration,
    /// Keep after TTL and grace.
    pub keep: Duration,
    /// Not stored.
    pub uncacheable: bool,
    /// Why RFC 9111 would not store it.
    pub reason: Option<NoCacheReason>,
    /// Set by the policy when it changed any of the above.
    pub changed: bool,
}

/// Runs the policy's `backend_response` over a decision.
pub fn apply_policy(
    policy: &dyn Policy,
    req: &RequestCtx,
    status: StatusCode,
    headers: &mut HeaderMap,
    decision: Decision,
    response_time: SystemTime,
) -> Decision {
    let (ttl, grace, keep, reason) = match &decision {
        Decision::Store(f, _) => (f.ttl.saturating_sub(f.initial_age), f.grace, f.keep, None),
        Decision::DontStore(r) => (Duration::ZERO, Duration::ZERO, Duration::ZERO, Some(*r)),
    };
    let mut beresp = Beresp {
        status,
        headers,
        ttl,
        grace,
        keep,
        uncacheable: reason.is_some(),
        reason,
        changed: false,
    };
    policy.backend_response(req, &mut beresp);
    if !beresp.changed {
        return decision;
    }
    if beresp.uncacheable {
        return Decision::DontStore(reason.unwrap_or(NoCacheReason::Policy));
    }
    let Some(names) = vary_names(beresp.headers) else {
        return Decision::DontStore(NoCacheReason::VaryStar);
    };
    if beresp.ttl.is_zero() && beresp.grace.is_zero() && beresp.keep.is_zero() {
        return Decision::DontStore(reason.unwrap_or(NoCacheReason::Policy));
    }
    let (mut freshness, variant) = match decision {
        Decision::Store(f, v) => (f, v),
        Decision::DontStore(_) => (
            Freshness {
                ttl: Duration::ZERO,
                initial_age: Duration::ZERO,
                response_time,
                grace: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep: Duration::ZERO,
                must_revalidate: false,
                no_cache: false,
                heuristic: false,
            },
            Variant::capture(&names, &req.headers),
        ),
    };
    freshness.ttl = freshness.initial_age + beresp.ttl;
    freshness.grace = beresp.grace;
    freshness.keep = beresp.keep;
    freshness.stale_if_error = freshness.stale_if_error.max(beresp.grace.max(beresp.keep));
    Decision::Store(freshness, variant)
}
