//! backend response: decide whether a response is stored, and for how long
//! (`vcl_backend_response`).

use http::header::{HeaderName, ACCEPT_ENCODING};
use http::{HeaderMap, Method, StatusCode};
use std::time::{Duration, SystemTime};

use crate::cache::freshness::{self, Freshness, FreshnessPolicy};
use crate::cache::storable::NoCacheReason;
use crate::cache::vary::{vary_names, Variant};
use crate::http::coding::Coding;
use crate::lifecycle::{Beresp, Fetch, Task};
use crate::policy::BackendAction;

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
    req: &Task,
    status: StatusCode,
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    policy: &FreshnessPolicy,
) -> Decision {
    let names = match vary_names(headers) {
        Ok(names) => names,
        Err(reason) => return Decision::DontStore(reason),
    };
    let names = selecting(names, req, headers);
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

/// `beresp.ttl` for a response RFC 9111 does not let lacquer store: its
/// stated lifetime when the reason is one Varnish's built-in
/// `vcl_backend_response` checks itself (so the policy sees Varnish's
/// `beresp.ttl`, and removing the reason stores it), else zero.
fn stated_ttl(
    reason: NoCacheReason,
    status: StatusCode,
    headers: &HeaderMap,
    response_time: SystemTime,
    rules: &FreshnessPolicy,
) -> Duration {
    match reason {
        NoCacheReason::SetCookie
        | NoCacheReason::Private
        | NoCacheReason::NoStore
        | NoCacheReason::VaryStar
        | NoCacheReason::Authorization => {
            freshness::stated_lifetime(status, headers, response_time, rules).unwrap_or_default()
        }
        _ => Duration::ZERO,
    }
}

/// The request fields that select a variant: those `Vary` names, less
/// `Accept-Encoding` when lacquer negotiates the coding itself (settings'
/// `compression.enabled`) and can decode what the response is coded with:
/// one stored copy then serves every client, coded or decoded at delivery.
fn selecting(mut names: Vec<HeaderName>, req: &Task, headers: &HeaderMap) -> Vec<HeaderName> {
    let coding = Coding::of(headers);
    if req.live.config.compression.enabled && (coding == Coding::Identity || coding.decodable()) {
        names.retain(|n| n != ACCEPT_ENCODING);
    }
    names
}

/// A backend response as fetched, for [`apply_policy`].
pub struct Fetched<'a> {
    /// Status (after a 304: the stored object's).
    pub status: StatusCode,
    /// Headers (after a 304: the merged ones).
    pub headers: &'a mut HeaderMap,
    /// The response was a 304 to a revalidation.
    pub was_304: bool,
    /// When the request was sent.
    pub request_time: SystemTime,
    /// When the response arrived.
    pub response_time: SystemTime,
}

/// What `vcl_backend_response` made of a response.
#[derive(Debug)]
pub struct Verdict {
    /// Stored or not, and how.
    pub decision: Decision,
    /// The status to store and deliver.
    pub status: StatusCode,
    /// Process the body as ESI.
    pub do_esi: bool,
    /// The policy's `beresp.do_gzip` / `do_brotli` / `do_zstd` /
    /// `do_gunzip`.
    pub coding: CodingChoice,
    /// The hook's `return`.
    pub action: BackendAction,
}

/// What the policy asked of the stored body's coding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodingChoice {
    /// `beresp.do_gzip`: gzip it whatever its media type.
    pub gzip: bool,
    /// `beresp.do_brotli` (a lacquer extension): brotli it whatever its
    /// media type.
    pub brotli: bool,
    /// `beresp.do_zstd` (a lacquer extension): zstd it whatever its media
    /// type.
    pub zstd: bool,
    /// `beresp.do_gunzip`: store it decoded.
    pub gunzip: bool,
}

impl CodingChoice {
    /// The coding the policy asked to store, whatever the media type:
    /// when it asked for several, brotli, then zstd, then gzip (the
    /// smallest first). `do_gunzip` wins over all of them (see its
    /// users).
    pub fn forced(&self) -> Option<crate::config::StoreCoding> {
        use crate::config::StoreCoding;
        if self.brotli {
            Some(StoreCoding::Br)
        } else if self.zstd {
            Some(StoreCoding::Zstd)
        } else if self.gzip {
            Some(StoreCoding::Gzip)
        } else {
            None
        }
    }
}

/// Runs the policy's `backend_response` (when it has one) over RFC 9111's
/// decision, and decides again when it changed anything. `do_esi` goes in
/// as the settings decide. For a pass (`bereq.uncacheable`) only headers,
/// status, `do_esi` and the action count.
pub fn apply_policy(
    f: &mut Fetch,
    req: &Task,
    fetched: Fetched<'_>,
    decision: Decision,
    do_esi: bool,
) -> Verdict {
    let Fetched {
        status,
        headers,
        was_304,
        request_time,
        response_time,
    } = fetched;
    let (live, bereq) = (&*f.live, &mut f.bereq);
    if !live.hooks.backend_response {
        return Verdict {
            decision,
            status,
            do_esi,
            coding: CodingChoice::default(),
            action: BackendAction::Builtin,
        };
    }
    let rules = &live.freshness;
    let (ttl, grace, keep, age, reason) = match &decision {
        Decision::Store(f, _) => (
            f.ttl.saturating_sub(f.initial_age),
            f.grace,
            f.keep,
            f.initial_age,
            None,
        ),
        Decision::DontStore(r) => (
            stated_ttl(*r, status, headers, response_time, rules),
            rules.default_grace,
            rules.default_keep,
            Duration::ZERO,
            Some(*r),
        ),
    };
    let mut beresp = Beresp {
        status,
        headers,
        ttl,
        grace,
        keep,
        age,
        // Varnish's core knows no RFC 9111 reasons: only a pass starts
        // uncacheable, the built-in VCL decides the rest.
        uncacheable: (reason.is_some() && !live.hooks.varnish) || bereq.uncacheable,
        phrase: None,
        was_304,
        reason,
        changed: false,
        set_ttl: false,
        set_grace: false,
        set_keep: false,
        set_uncacheable: false,
        do_esi,
        do_gzip: false,
        do_brotli: false,
        do_zstd: false,
        do_gunzip: false,
    };
    let action = live.policy.backend_response(bereq, &mut beresp);
    let status = beresp.status;
    let do_esi = beresp.do_esi;
    let coding = CodingChoice {
        gzip: beresp.do_gzip,
        brotli: beresp.do_brotli,
        zstd: beresp.do_zstd,
        gunzip: beresp.do_gunzip,
    };
    let verdict = |decision| Verdict {
        decision,
        status,
        do_esi,
        coding,
        action: action.clone(),
    };
    if let BackendAction::HitForPass(_) = action {
        return verdict(Decision::DontStore(NoCacheReason::Policy));
    }
    if bereq.uncacheable {
        return verdict(decision);
    }
    if live.hooks.varnish {
        return verdict(varnish_decision(
            &beresp,
            req,
            decision,
            response_time,
            rules,
        ));
    }
    if !beresp.changed {
        return verdict(decision);
    }
    let again = decide(
        req,
        status,
        beresp.headers,
        request_time,
        response_time,
        rules,
    );
    // A TTL the policy set stores what only lacked freshness information.
    // With an explicit `return (deliver)` it stores the answer whatever its
    // Cache-Control says, as in Varnish, where only the built-in
    // vcl_backend_response (which that return skips) reads no-store,
    // private or Set-Cookie; falling through, RFC 9111's verdict stands, as
    // the built-in's would.
    let forced = beresp.set_ttl
        && !beresp.ttl.is_zero()
        && action == BackendAction::Continue
        && bereq.method == http::Method::GET;
    let uncacheable = if beresp.set_uncacheable {
        beresp.uncacheable
    } else {
        match &again {
            Decision::Store(..) => false,
            Decision::DontStore(r) => {
                !(forced || (beresp.set_ttl && *r == NoCacheReason::NoFreshness))
            }
        }
    };
    if uncacheable {
        return verdict(Decision::DontStore(not_stored(again)));
    }
    let stored = storage_of(again, &beresp, Duration::ZERO, req, response_time, rules);
    let (mut freshness, variant) = match stored {
        Ok(stored) => stored,
        Err(reason) => return verdict(Decision::DontStore(reason)),
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
    // Grace set by the policy also allows stale use on errors; keep never
    // does (it serves revalidation only).
    freshness.stale_if_error = freshness.stale_if_error.max(freshness.grace);
    if freshness.retention().is_zero() {
        return verdict(Decision::DontStore(NoCacheReason::Policy));
    }
    verdict(Decision::Store(freshness, variant))
}

/// What a loaded VCL stores, as Varnish decides it: nothing when
/// `beresp.uncacheable` (the built-in `vcl_backend_response` sets it for
/// Set-Cookie, no-store, private, Vary: * and TTLs of 0), else the answer
/// for `beresp.ttl` + `grace` + `keep`, whatever RFC 9111 says about it
/// (an `Authorization` request's answer, `private` after an explicit
/// `return (deliver)`, …).
fn varnish_decision(
    beresp: &Beresp<'_>,
    req: &Task,
    decision: Decision,
    response_time: SystemTime,
    rules: &freshness::FreshnessPolicy,
) -> Decision {
    if beresp.uncacheable {
        return Decision::DontStore(not_stored(decision));
    }
    let stored = storage_of(decision, beresp, beresp.age, req, response_time, rules);
    let (mut freshness, variant) = match stored {
        Ok(stored) => stored,
        Err(reason) => return Decision::DontStore(reason),
    };
    freshness.ttl = freshness.initial_age + beresp.ttl;
    freshness.grace = beresp.grace;
    freshness.keep = beresp.keep;
    freshness.stale_if_error = freshness.stale_if_error.max(freshness.grace);
    if beresp.ttl.is_zero() && freshness.grace.is_zero() && freshness.keep.is_zero() {
        return Decision::DontStore(NoCacheReason::Policy);
    }
    Decision::Store(freshness, variant)
}

/// Why an answer the policy made uncacheable is not stored: RFC 9111's
/// reason when it had one, else the policy.
fn not_stored(decision: Decision) -> NoCacheReason {
    match decision {
        Decision::DontStore(r) => r,
        Decision::Store(..) => NoCacheReason::Policy,
    }
}

/// The freshness and variant an answer the policy stores is kept under:
/// RFC 9111's when it would store it too, else the defaults of an answer
/// without freshness information (the caller applies the policy's TTL,
/// grace and keep), aged `initial_age`. `Err`: its `Vary` cannot be
/// stored.
fn storage_of(
    decision: Decision,
    beresp: &Beresp<'_>,
    initial_age: Duration,
    req: &Task,
    response_time: SystemTime,
    rules: &freshness::FreshnessPolicy,
) -> Result<(Freshness, Variant), NoCacheReason> {
    let names = selecting(vary_names(beresp.headers)?, req, beresp.headers);
    Ok(match decision {
        Decision::Store(f, v) => (f, v),
        Decision::DontStore(_) => (
            Freshness {
                ttl: Duration::ZERO,
                initial_age,
                response_time,
                grace: rules.default_grace,
                stale_if_error: rules.default_grace,
                keep: rules.default_keep,
                must_revalidate: false,
                no_cache: false,
                heuristic: false,
            },
            Variant::capture(&names, &req.headers),
        ),
    })
}
