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
///
/// After the policy ran, RFC 9111 decides again on the changed headers (so
/// `unset beresp.http.Set-Cookie` makes a response storable, as in Varnish's
/// built-in VCL); then what the policy set explicitly wins: a TTL makes a
/// response that only lacked freshness information storable, and
/// `uncacheable` forces the verdict either way.
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
    /// What the policy set: headers or anything else.
    pub changed: bool,
    /// The policy set `ttl`.
    pub set_ttl: bool,
    /// The policy set `grace`.
    pub set_grace: bool,
    /// The policy set `keep`.
    pub set_keep: bool,
    /// The policy set `uncacheable`.
    pub set_uncacheable: bool,
    /// Process the body as ESI (starts as the handshake and the `[esi]`
    /// settings say; the policy may change it).
    pub do_esi: bool,
}

/// Runs the policy's `backend_response` over a decision, and decides again
/// when it changed anything. `do_esi` goes in as the settings decide and
/// comes out as the policy left it.
#[allow(clippy::too_many_arguments)]
pub fn apply_policy(
    policy: &dyn Policy,
    req: &RequestCtx,
    status: StatusCode,
    headers: &mut HeaderMap,
    decision: Decision,
    do_esi: &mut bool,
    request_time: SystemTime,
    response_time: SystemTime,
    rules: &FreshnessPolicy,
) -> Decision {
    let (ttl, grace, keep, reason) = match &decision {
        Decision::Store(f, _) => (f.ttl.saturating_sub(f.initial_age), f.grace, f.keep, None),
        Decision::DontStore(r) => (
            Duration::ZERO,
            rules.default_grace,
            rules.default_keep,
            Some(*r),
        ),
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
        set_ttl: false,
        set_grace: false,
        set_keep: false,
        set_uncacheable: false,
        do_esi: *do_esi,
    };
    policy.backend_response(req, &mut beresp);
    *do_esi = beresp.do_esi;
    if !beresp.changed {
        return decision;
    }
    let again = decide(
        req,
        status,
        beresp.headers,
        request_time,
        response_time,
        rules,
    );
    let uncacheable = if beresp.set_uncacheable {
        beresp.uncacheable
    } else {
        match &again {
            Decision::Store(..) => false,
            Decision::DontStore(r) => !(beresp.set_ttl && *r == NoCacheReason::NoFreshness),
        }
    };
    if uncacheable {
        return Decision::DontStore(match again {
            Decision::DontStore(r) => r,
            Decision::Store(..) => NoCacheReason::Policy,
        });
    }
    let Some(names) = vary_names(beresp.headers) else {
        return Decision::DontStore(NoCacheReason::VaryStar);
    };
    let (mut freshness, variant) = match again {
        Decision::Store(f, v) => (f, v),
        Decision::DontStore(_) => (
            Freshness {
                ttl: Duration::ZERO,
                initial_age: Duration::ZERO,
                response_time,
                grace: rules.default_grace,
                stale_if_error: rules.default_grace.max(rules.default_keep),
                keep: rules.default_keep,
                must_revalidate: false,
                no_cache: false,
                heuristic: false,
            },
            Variant::capture(&names, &req.headers),
        ),
    };
    if beresp.set_ttl {
        freshness.ttl = freshness.initial_age + beresp.ttl;
    }
    if beresp.set_grace {
        freshness.grace = beresp.grace;
    }
    if beresp.set_keep {
        freshness.keep = beresp.keep;
    }
    freshness.stale_if_error = freshness
        .stale_if_error
        .max(freshness.grace.max(freshness.keep));
    if freshness.retention().is_zero() {
        return Decision::DontStore(NoCacheReason::Policy);
    }
    Decision::Store(freshness, variant)
}
