//! backend response: decide whether a response is stored, and for how long
//! (`vcl_backend_response`).

use http::{HeaderMap, Method, StatusCode};
use std::time::SystemTime;

use super::RequestCtx;
use crate::cache::freshness::{self, Freshness, FreshnessPolicy, NoCacheReason};
use crate::cache::vary::{vary_names, Variant};

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
