//! RFC 9111 freshness for a *shared* cache: how long a storable response
//! stays fresh, usable within grace, usable on error, or retained for
//! conditional revalidation.
//!
//! Everything here is pure: it looks at a request/response header pair and a
//! few timestamps. [`evaluate`] is the entry point: it asks
//! [`super::storable`] whether the response may be stored at all, reads the
//! directives [`super::directives`] chose, and computes [`Freshness`].
//!
//! The headers are untrusted input. Malformed values never panic; they are
//! handled the way RFC 9111 asks (mostly: "treat as stale").
//!
//! Why not the `http-cache-semantics` crate: it keeps a `CachePolicy` per
//! stored response (a copy of the request and response headers) and answers
//! "is it fresh / how to revalidate" from it. lacquer needs what it does not
//! model: RFC 9213 targeted fields, operator-set grace / keep / default TTL
//! and a capped heuristic (Varnish's knobs), stale-if-error windows, and
//! reasons for not storing (for logs and metrics). The rules themselves are
//! short, so they live here as pure functions with one test per rule, and a
//! stored object carries only the few numbers in [`Freshness`].

use crate::http::req_fields::FieldsRead;
use std::time::{Duration, SystemTime};

use ::http::header::{self, HeaderMap};
use ::http::{Method, StatusCode};

use super::directives::CacheDirectives;
use super::storable::{self, heuristically_cacheable, NoCacheReason};
use crate::http::syntax::{
    first_date, parse_delta_seconds, parse_http_date, split_list, trim_ows, MAX_DELTA_SECONDS,
};

/// Knobs from the settings file.
#[derive(Debug, Clone)]
pub struct FreshnessPolicy {
    /// Lifetime given to responses without explicit freshness (takes
    /// precedence over the `Last-Modified` heuristic). `None` = off: such
    /// responses only get heuristic freshness.
    pub default_ttl: Option<Duration>,
    /// Fraction of `Date - Last-Modified` used as heuristic lifetime, e.g.
    /// 0.1. Zero, negative or non-finite values disable the heuristic.
    pub heuristic_fraction: f64,
    /// Cap on the heuristic lifetime, e.g. one day.
    pub heuristic_max: Duration,
    /// Grace (stale-while-revalidate window) used when the response has no
    /// `stale-while-revalidate` directive; also the `stale-if-error` window
    /// when it has none.
    pub default_grace: Duration,
    /// Extra retention after the lifetime: for conditional revalidation, and
    /// usable only while the origin gives no answer (never for a 5xx).
    pub default_keep: Duration,
    /// When false, responses carrying `Set-Cookie` are not stored.
    pub cache_set_cookie: bool,
}

impl Default for FreshnessPolicy {
    fn default() -> Self {
        FreshnessPolicy {
            default_ttl: None,
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            default_grace: Duration::ZERO,
            default_keep: Duration::from_secs(3600),
            cache_set_cookie: false,
        }
    }
}

/// Where a response stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshState {
    /// Fresh: may be served as is.
    Fresh,
    /// Stale but within grace: may be served while it is revalidated in the
    /// background.
    Grace,
    /// Stale beyond grace (or stale use forbidden): must be revalidated
    /// before use; still usable as a base for a conditional request.
    Stale,
}

/// The freshness of a storable response.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// Freshness lifetime.
    pub ttl: Duration,
    /// `corrected_initial_age` (RFC 9111 §4.2.3).
    pub initial_age: Duration,
    /// When the response was received.
    pub response_time: SystemTime,
    /// Stale-while-revalidate window after `ttl`.
    pub grace: Duration,
    /// Window after `ttl` in which the stale response may replace an error.
    pub stale_if_error: Duration,
    /// Retention after `ttl` for conditional revalidation.
    pub keep: Duration,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage` present: no stale
    /// use at all after `ttl` (`grace` and `stale_if_error` are zero).
    pub must_revalidate: bool,
    /// Unqualified `no-cache`: stored, but revalidated on every use (never
    /// fresh, no grace).
    pub no_cache: bool,
    /// `ttl` came from the `Last-Modified` heuristic.
    pub heuristic: bool,
}

impl Freshness {
    /// The timing of a response received at `response_time` that is not
    /// stored (no lifetime, no grace, no keep).
    pub fn unstored(response_time: SystemTime) -> Freshness {
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
        }
    }

    /// `current_age` (RFC 9111 §4.2.3): `initial_age + (now - response_time)`,
    /// saturating; a `now` before `response_time` counts as no time passed.
    pub fn age(&self, now: SystemTime) -> Duration {
        let resident = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO);
        self.initial_age.saturating_add(resident)
    }

    /// True when the response may be served without revalidation.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.no_cache && self.age(now) < self.ttl
    }

    /// Fresh, within grace, or stale.
    pub fn state(&self, now: SystemTime) -> FreshState {
        if self.is_fresh(now) {
            return FreshState::Fresh;
        }
        if !self.no_cache
            && !self.must_revalidate
            && self.age(now) < self.ttl.saturating_add(self.grace)
        {
            return FreshState::Grace;
        }
        FreshState::Stale
    }

    /// How long after `response_time` the store should keep the object:
    /// `ttl - initial_age` (saturating) plus the longest of grace,
    /// stale-if-error and keep.
    pub fn retention(&self) -> Duration {
        let extra = self.grace.max(self.stale_if_error).max(self.keep);
        self.ttl
            .saturating_sub(self.initial_age)
            .saturating_add(extra)
    }

    /// True when the object may stand in at `now` for an answer the origin
    /// could not give (refused, unreachable, timed out, connection closed):
    /// RFC 9111 §4.2.4 allows stale use by a disconnected cache. Within
    /// stale-if-error or keep, unless stale use is forbidden
    /// (`must-revalidate` family, `no-cache`). Not for answers the origin
    /// did give (a 5xx): that is [`Self::within_stale_if_error`].
    pub fn usable_when_disconnected(&self, now: SystemTime) -> bool {
        if self.within_stale_if_error(now) {
            return true;
        }
        !self.no_cache
            && !self.must_revalidate
            && self.age(now) < self.ttl.saturating_add(self.keep)
    }

    /// True when the object may be served in place of an error at `now`:
    /// it is fresh, or stale by less than `stale_if_error` and stale use is
    /// not forbidden (`must-revalidate` family, `no-cache`).
    pub fn within_stale_if_error(&self, now: SystemTime) -> bool {
        if self.no_cache {
            return false;
        }
        if self.is_fresh(now) {
            return true;
        }
        !self.must_revalidate && self.age(now) < self.ttl.saturating_add(self.stale_if_error)
    }
}

/// Decide whether a response to `method` with `req_headers` may be stored by
/// a shared cache, and if so its freshness.
///
/// `request_time` is when the request was sent upstream, `response_time`
/// when the response (headers) arrived.
pub fn evaluate(
    method: &Method,
    req_headers: &impl FieldsRead,
    status: StatusCode,
    resp_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    policy: &FreshnessPolicy,
) -> Result<Freshness, NoCacheReason> {
    let d = storable::check(
        method,
        req_headers,
        status,
        resp_headers,
        policy.cache_set_cookie,
    )?;
    let code = status.as_u16();

    let date = first_date(resp_headers, &header::DATE).unwrap_or(response_time);
    let explicit = explicit_lifetime(&d, resp_headers, date);
    // RFC 9111 §3: without explicit freshness, only heuristically cacheable
    // status codes, or responses marked public, may be stored.
    if explicit.is_none() && !heuristically_cacheable(code) && !d.public {
        return Err(NoCacheReason::Status);
    }

    let (ttl, heuristic) = if let Some(ttl) = explicit {
        (ttl, false)
    } else if let Some(ttl) = policy.default_ttl {
        (ttl, false)
    } else if let Some(ttl) = heuristic_lifetime(resp_headers, date, policy) {
        (ttl, true)
    } else if d.no_cache {
        // Revalidated on every use anyway: the lifetime does not matter, and
        // keeping it allows conditional revalidation.
        (Duration::ZERO, false)
    } else {
        return Err(NoCacheReason::NoFreshness);
    };

    // RFC 9111 §4.2.3.
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let age_value = age_header(resp_headers);
    let corrected_age_value = age_value.saturating_add(response_delay);
    let initial_age = apparent_age.max(corrected_age_value);

    let must_revalidate = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some();
    let keep = policy.default_keep;
    // RFC 9111 §4.2.4: stale use only where the origin allows it or the
    // operator set grace; keep adds only the "disconnected" case (see
    // `Freshness::usable_when_disconnected`).
    let (grace, stale_if_error) = if must_revalidate || d.no_cache {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let grace = d.stale_while_revalidate.unwrap_or(policy.default_grace);
        let sie = d.stale_if_error.unwrap_or(grace);
        (grace, sie)
    };

    Ok(Freshness {
        ttl,
        initial_age,
        response_time,
        grace,
        stale_if_error,
        keep,
        must_revalidate,
        no_cache: d.no_cache,
        heuristic,
    })
}

/// The freshness lifetime a response's own fields state, whether or not
/// it may be stored: what Varnish shows as `beresp.ttl` before its built-in
/// `vcl_backend_response` reads `Set-Cookie`, `private`, `no-store` or
/// `Vary: *` and makes the object hit-for-miss. The explicit lifetime, else
/// (for a heuristically cacheable status) the default TTL or the heuristic,
/// less the response's `Age`; `None` when nothing applies. A policy reads
/// it through `beresp.ttl` when RFC 9111 would not store the response for
/// one of those reasons, so a policy that removes the reason (`unset
/// beresp.http.Set-Cookie`) stores it for its stated lifetime.
pub fn stated_lifetime(
    status: StatusCode,
    resp_headers: &HeaderMap,
    response_time: SystemTime,
    policy: &FreshnessPolicy,
) -> Option<Duration> {
    let d = super::directives::directives(resp_headers);
    let date = first_date(resp_headers, &header::DATE).unwrap_or(response_time);
    let lifetime = match explicit_lifetime(&d, resp_headers, date) {
        Some(ttl) => ttl,
        None if heuristically_cacheable(status.as_u16()) => policy
            .default_ttl
            .or_else(|| heuristic_lifetime(resp_headers, date, policy))?,
        None => return None,
    };
    Some(lifetime.saturating_sub(age_header(resp_headers)))
}

/// Explicit freshness lifetime: `s-maxage`, else `max-age`, else `Expires -
/// Date` (ignored when a targeted field supplies the directives). An invalid
/// `Expires` means "already expired": `Some(0)`.
fn explicit_lifetime(
    d: &CacheDirectives,
    resp_headers: &HeaderMap,
    date: SystemTime,
) -> Option<Duration> {
    if let Some(s) = d.s_maxage {
        return Some(s);
    }
    if let Some(m) = d.max_age {
        return Some(m);
    }
    if d.is_targeted() {
        return None;
    }
    let expires = resp_headers.get(header::EXPIRES)?;
    let lifetime = parse_http_date(expires.as_bytes())
        .and_then(|t| t.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    Some(lifetime.min(Duration::from_secs(MAX_DELTA_SECONDS)))
}

/// `heuristic_fraction * (Date - Last-Modified)`, capped at `heuristic_max`;
/// `None` when `Last-Modified` is missing, invalid or not before `Date`, or
/// the fraction disables the heuristic.
fn heuristic_lifetime(
    resp_headers: &HeaderMap,
    date: SystemTime,
    policy: &FreshnessPolicy,
) -> Option<Duration> {
    let fraction = policy.heuristic_fraction;
    if !(fraction.is_finite() && fraction > 0.0) {
        return None;
    }
    let last_modified = first_date(resp_headers, &header::LAST_MODIFIED)?;
    let span = date.duration_since(last_modified).ok()?;
    if span.is_zero() {
        return None;
    }
    let cap = policy.heuristic_max;
    let ttl = Duration::try_from_secs_f64(span.as_secs_f64() * fraction)
        .map(|t| t.min(cap))
        .unwrap_or(cap);
    Some(ttl)
}

/// The `Age` header as delta-seconds (RFC 9111 §5.1): a list-based value
/// (`Age: 7200, 0`, or several field lines, which combine into one list)
/// counts by its first member; a first member that is not a non-negative
/// integer (`1.5`, `-1`, `abc`) makes the field ignored (0).
fn age_header(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| {
            let first = split_list(v.as_bytes()).next()?;
            parse_delta_seconds(trim_ows(first))
        })
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::*;

    // ---- freshness sources and precedence ----------------------------

    #[test]
    fn stated_lifetime_ignores_what_forbids_storing() {
        let p = FreshnessPolicy::default();
        let at = SystemTime::UNIX_EPOCH + secs(T0);
        let stated = |status: u16, h: &[(&str, &str)]| {
            stated_lifetime(StatusCode::from_u16(status).unwrap(), &headers(h), at, &p)
        };
        let cookie = [("cache-control", "max-age=60"), ("set-cookie", "a=b")];
        assert_eq!(stated(200, &cookie), Some(secs(60)));
        assert_eq!(
            stated(
                200,
                &[("cache-control", "private, max-age=30"), ("age", "10")]
            ),
            Some(secs(20))
        );
        assert_eq!(stated(200, &[("cache-control", "no-store")]), None);
        // A 500 states nothing without explicit freshness.
        assert_eq!(stated(500, &[]), None);
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let exp = date(T0 + 500);
        let d = date(T0);
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10, s-maxage=20"),
                    ("date", &d),
                    ("expires", &exp)
                ]
            ),
            secs(20)
        );
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("date", &d),
                    ("expires", &exp)
                ]
            ),
            secs(10)
        );
        assert_eq!(ttl(200, &[("date", &d), ("expires", &exp)]), secs(500));
    }

    #[test]
    fn explicit_beats_default_ttl_beats_heuristic() {
        let p = FreshnessPolicy {
            default_ttl: Some(secs(120)),
            ..Default::default()
        };
        let lm = date(T0 - 10_000);
        let f = eval_full(
            Method::GET,
            &[],
            200,
            &[("cache-control", "max-age=5"), ("last-modified", &lm)],
            &p,
        )
        .unwrap();
        assert_eq!((f.ttl, f.heuristic), (secs(5), false));
        let f = eval_full(Method::GET, &[], 200, &[("last-modified", &lm)], &p).unwrap();
        assert_eq!((f.ttl, f.heuristic), (secs(120), false));
        let f = eval(200, &[("last-modified", &lm), ("date", &date(T0))]).unwrap();
        assert_eq!((f.ttl, f.heuristic), (secs(1000), true));
    }

    #[test]
    fn expires_relative_to_date_or_response_time() {
        // Date 100 s in the past: lifetime is Expires - Date.
        let f = eval(
            200,
            &[("date", &date(T0 - 100)), ("expires", &date(T0 + 200))],
        )
        .unwrap();
        assert_eq!(f.ttl, secs(300));
        assert_eq!(f.initial_age, secs(100));
        // No Date, or a broken one: response_time is used.
        assert_eq!(ttl(200, &[("expires", &date(T0 + 200))]), secs(200));
        assert_eq!(
            ttl(200, &[("date", "yesterday"), ("expires", &date(T0 + 200))]),
            secs(200)
        );
        // Expires before Date: already expired.
        assert_eq!(
            ttl(200, &[("date", &date(T0)), ("expires", &date(T0 - 5))]),
            Duration::ZERO
        );
    }

    #[test]
    fn invalid_expires_is_explicit_and_expired() {
        for bad in ["0", "-1", "never", ""] {
            let f = eval(500, &[("expires", bad)]).unwrap();
            assert_eq!(f.ttl, Duration::ZERO, "{bad:?}");
            assert!(!f.heuristic);
        }
        // Invalid Expires beats the default TTL and the heuristic.
        let p = FreshnessPolicy {
            default_ttl: Some(secs(120)),
            ..Default::default()
        };
        let f = eval_full(
            Method::GET,
            &[],
            200,
            &[("expires", "0"), ("last-modified", &date(T0 - 10_000))],
            &p,
        )
        .unwrap();
        assert_eq!(f.ttl, Duration::ZERO);
    }

    #[test]
    fn expires_formats() {
        assert_eq!(
            ttl(
                200,
                &[
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("expires", "Sunday, 06-Nov-94 08:50:37 GMT")
                ]
            ),
            secs(60)
        );
        assert_eq!(
            ttl(
                200,
                &[
                    ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("expires", "Sun Nov  6 08:51:37 1994")
                ]
            ),
            secs(120)
        );
    }

    #[test]
    fn zero_max_age_is_storable() {
        let f = eval(200, &[("cache-control", "max-age=0"), ("etag", "\"v1\"")]).unwrap();
        assert_eq!(f.ttl, Duration::ZERO);
        assert!(!f.is_fresh(at(T0)));
    }

    #[test]
    fn heuristic_allowed() {
        let f = eval(
            200,
            &[("date", &date(T0)), ("last-modified", &date(T0 - 3600))],
        )
        .unwrap();
        assert_eq!(f.ttl, secs(360));
        assert!(f.heuristic);
        // Capped at heuristic_max.
        let f = eval(
            200,
            &[
                ("date", &date(T0)),
                ("last-modified", &date(T0 - 100 * 86_400)),
            ],
        )
        .unwrap();
        assert_eq!(f.ttl, secs(86_400));
        // Without Date, response_time stands in.
        assert_eq!(ttl(404, &[("last-modified", &date(T0 - 1000))]), secs(100));
        // `public` allows it for a status that is not heuristically cacheable.
        let f = eval(
            302,
            &[
                ("cache-control", "public"),
                ("last-modified", &date(T0 - 1000)),
            ],
        )
        .unwrap();
        assert_eq!((f.ttl, f.heuristic), (secs(100), true));
    }

    #[test]
    fn heuristic_not_allowed() {
        // Status not heuristically cacheable, not public.
        assert_eq!(
            eval(302, &[("last-modified", &date(T0 - 1000))]),
            Err(NoCacheReason::Status)
        );
        // Last-Modified missing, invalid, equal to or after Date.
        for lm in ["garbage".to_string(), date(T0), date(T0 + 60)] {
            assert_eq!(
                eval(200, &[("date", &date(T0)), ("last-modified", &lm)]),
                Err(NoCacheReason::NoFreshness),
                "{lm}"
            );
        }
        // Disabled by the fraction.
        for fraction in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let p = FreshnessPolicy {
                heuristic_fraction: fraction,
                ..Default::default()
            };
            assert_eq!(
                eval_full(
                    Method::GET,
                    &[],
                    200,
                    &[("last-modified", &date(T0 - 1000))],
                    &p
                ),
                Err(NoCacheReason::NoFreshness)
            );
        }
        // Huge fraction: capped, no panic.
        let p = FreshnessPolicy {
            heuristic_fraction: 1e300,
            ..Default::default()
        };
        let f = eval_full(Method::GET, &[], 200, &[("last-modified", &date(0))], &p).unwrap();
        assert_eq!(f.ttl, secs(86_400));
    }

    // ---- age -------------------------------------------------------------

    #[test]
    fn age_calculation() {
        // Age header plus response delay beats apparent age.
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[
                ("cache-control", "max-age=600"),
                ("date", &date(T0 - 3)),
                ("age", "100"),
            ]),
            at(T0 - 5),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert_eq!(f.initial_age, secs(105));
        assert_eq!(f.age(at(T0 + 10)), secs(115));
        assert_eq!(f.age(at(T0 - 50)), secs(105));
        // Apparent age (clock skew / old Date) beats a small Age.
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[
                ("cache-control", "max-age=600"),
                ("date", &date(T0 - 300)),
                ("age", "10"),
            ]),
            at(T0 - 1),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert_eq!(f.initial_age, secs(300));
        // Date in the future: apparent age 0; request after response: no delay.
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=600"), ("date", &date(T0 + 300))]),
            at(T0 + 1),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::ZERO);
    }

    #[test]
    fn invalid_age_header_counts_as_zero() {
        for age in ["abc", "-5", "1.5", ""] {
            let f = eval(200, &[("cache-control", "max-age=60"), ("age", age)]).unwrap();
            assert_eq!(f.initial_age, Duration::ZERO, "{age:?}");
        }
        let f = eval(
            200,
            &[("cache-control", "max-age=60"), ("age", "99999999999999")],
        )
        .unwrap();
        assert_eq!(f.initial_age, secs(MAX_DELTA_SECONDS));
        assert!(!f.is_fresh(at(T0)));
    }

    #[test]
    fn age_counts_by_its_first_member_and_is_ignored_when_invalid() {
        let age = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(header::AGE, ::http::HeaderValue::from_str(l).unwrap());
            }
            age_header(&h)
        };
        assert_eq!(age(&["100"]), secs(100));
        assert_eq!(age(&[" 100 "]), secs(100));
        // A list counts by its first member (RFC 9111 §5.1).
        assert_eq!(age(&["7200, 0"]), secs(7200));
        assert_eq!(age(&["0, 7200"]), secs(0));
        assert_eq!(age(&["7200", "0"]), secs(7200));
        assert_eq!(age(&["0", "7200"]), secs(0));
        for bad in [&["1.5"][..], &["-1"], &["abc"], &[""], &["abc, 7200"]] {
            assert_eq!(age(bad), secs(0), "{bad:?}");
        }
    }

    // ---- grace, stale-if-error, keep, states -----------------------------

    #[test]
    fn grace_and_stale_if_error_defaults() {
        let p = FreshnessPolicy {
            default_grace: secs(10),
            default_keep: secs(300),
            ..Default::default()
        };
        let f = eval_full(
            Method::GET,
            &[],
            200,
            &[("cache-control", "max-age=60")],
            &p,
        )
        .unwrap();
        assert_eq!(f.grace, secs(10));
        assert_eq!(f.keep, secs(300));
        // Keep never allows stale use: stale-if-error defaults to grace.
        assert_eq!(f.stale_if_error, secs(10));
        assert_eq!(f.retention(), secs(360));
        // Keep: usable only when disconnected.
        let now = at(T0 + 100);
        assert!(!f.within_stale_if_error(now));
        assert!(f.usable_when_disconnected(now));
        assert!(!f.usable_when_disconnected(at(T0 + 400)));
        let f = eval_full(
            Method::GET,
            &[],
            200,
            &[(
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=900",
            )],
            &p,
        )
        .unwrap();
        assert_eq!(f.grace, secs(30));
        assert_eq!(f.stale_if_error, secs(900));
        assert_eq!(f.retention(), secs(960));
        // Without keep, stale-if-error defaults to grace.
        let f = eval(
            200,
            &[("cache-control", "max-age=60, stale-while-revalidate=30")],
        )
        .unwrap();
        assert_eq!(f.stale_if_error, secs(30));
    }

    #[test]
    fn must_revalidate_family_forbids_stale_use() {
        for cc in [
            "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=60",
            "max-age=60, proxy-revalidate, stale-while-revalidate=30",
            "s-maxage=60, stale-while-revalidate=30",
        ] {
            let f = eval(200, &[("cache-control", cc)]).unwrap();
            assert!(f.must_revalidate, "{cc}");
            assert_eq!(f.grace, Duration::ZERO);
            assert_eq!(f.stale_if_error, Duration::ZERO);
            assert_eq!(f.state(at(T0 + 61)), FreshState::Stale);
            assert!(!f.within_stale_if_error(at(T0 + 61)));
            assert!(f.within_stale_if_error(at(T0 + 59)));
        }
    }

    #[test]
    fn no_cache_is_stored_but_never_fresh() {
        let f = eval(
            200,
            &[(
                "cache-control",
                "no-cache, max-age=60, stale-while-revalidate=30",
            )],
        )
        .unwrap();
        assert!(f.no_cache);
        assert_eq!(f.ttl, secs(60));
        assert_eq!(f.grace, Duration::ZERO);
        assert!(!f.is_fresh(at(T0)));
        assert_eq!(f.state(at(T0)), FreshState::Stale);
        assert!(!f.within_stale_if_error(at(T0)));
        // No freshness source at all is fine for no-cache.
        let f = eval(200, &[("cache-control", "no-cache"), ("etag", "\"a\"")]).unwrap();
        assert_eq!(f.ttl, Duration::ZERO);
        // ...but not for statuses needing explicit freshness.
        assert_eq!(
            eval(500, &[("cache-control", "no-cache")]),
            Err(NoCacheReason::Status)
        );
    }

    #[test]
    fn states_over_time() {
        let f = eval(
            200,
            &[
                (
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, stale-if-error=120",
                ),
                ("age", "10"),
            ],
        )
        .unwrap();
        assert_eq!(f.state(at(T0)), FreshState::Fresh);
        assert_eq!(f.state(at(T0 + 49)), FreshState::Fresh);
        assert_eq!(f.state(at(T0 + 50)), FreshState::Grace);
        assert_eq!(f.state(at(T0 + 79)), FreshState::Grace);
        assert_eq!(f.state(at(T0 + 80)), FreshState::Stale);
        assert!(f.within_stale_if_error(at(T0 + 169)));
        assert!(!f.within_stale_if_error(at(T0 + 170)));
        // ttl 60 - age 10 + max(30, 120, keep 3600 by default)
        assert_eq!(f.retention(), secs(3650));
    }

    #[test]
    fn retention_saturates() {
        let f = Freshness {
            ttl: secs(10),
            initial_age: secs(100),
            response_time: at(T0),
            grace: Duration::MAX,
            stale_if_error: Duration::ZERO,
            keep: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
            heuristic: false,
        };
        assert_eq!(f.retention(), Duration::MAX);
        assert_eq!(f.state(at(T0)), FreshState::Grace);
    }
}
