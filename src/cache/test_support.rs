//! Helpers shared by the unit tests of `cache::{storable, freshness,
//! directives, merge_304}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::http::{Method, StatusCode};

use super::freshness::{evaluate, Freshness, FreshnessPolicy};
use super::storable::NoCacheReason;

pub(crate) const T0: u64 = 1_700_000_000;

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub(crate) fn date(secs: u64) -> String {
    httpdate::fmt_http_date(at(secs))
}

pub(crate) use crate::http::test_support::headers;

pub(crate) fn eval_full(
    method: Method,
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
    policy: &FreshnessPolicy,
) -> Result<Freshness, NoCacheReason> {
    evaluate(
        &method,
        &headers(req),
        StatusCode::from_u16(status).unwrap(),
        &headers(resp),
        at(T0),
        at(T0),
        policy,
    )
}

pub(crate) fn eval(status: u16, resp: &[(&str, &str)]) -> Result<Freshness, NoCacheReason> {
    eval_full(Method::GET, &[], status, resp, &FreshnessPolicy::default())
}

pub(crate) fn ttl(status: u16, resp: &[(&str, &str)]) -> Duration {
    eval(status, resp).unwrap().ttl
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
