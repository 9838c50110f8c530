//! Whether a shared cache may store a response at all (RFC 9111 §3), and why
//! not ([`NoCacheReason`], for logs and metrics). How long a stored response
//! stays fresh is [`super::freshness`]'s job.

use crate::http::req_fields::FieldsRead;
use std::fmt;

use ::http::header::{self, HeaderMap};
use ::http::{Method, StatusCode};

use super::directives::{directives, CacheDirectives};
use crate::http::syntax::{split_list, trim_ows};

/// Why a response is not stored. [`NoCacheReason::as_str`] gives a short
/// kebab-case name for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoCacheReason {
    /// The request method is not GET.
    Method,
    /// The status code is never stored (1xx, 206, 304, not a valid HTTP
    /// status), or it is not heuristically cacheable and the response has
    /// neither explicit freshness nor `public`.
    Status,
    /// The effective cache directives contain `no-store`.
    NoStore,
    /// The effective cache directives contain `private` (any form).
    Private,
    /// The response has `Vary: *`.
    VaryStar,
    /// The response's `Vary` is not a list of field names (`Cookie
    /// Session`, `Cookie;q=1`, non-ASCII): which request headers select the
    /// variant is unknown, so storing it could hand one user's page to
    /// another. Not stored (hit-for-miss), as in Varnish.
    VaryInvalid,
    /// The request carried `Authorization` and the response has none of
    /// `public`, `s-maxage`, `must-revalidate`.
    Authorization,
    /// The response sets a cookie and the policy forbids storing those.
    SetCookie,
    /// No freshness source (explicit, default TTL or heuristic) applies.
    NoFreshness,
    /// `must-understand` is present but the status code is not one whose
    /// caching rules this cache implements.
    MustUnderstand,
    /// The policy (`vcl_backend_response`) made it uncacheable.
    Policy,
}

impl NoCacheReason {
    /// Short kebab-case name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NoCacheReason::Method => "method",
            NoCacheReason::Status => "status",
            NoCacheReason::NoStore => "no-store",
            NoCacheReason::Private => "private",
            NoCacheReason::VaryStar => "vary-star",
            NoCacheReason::VaryInvalid => "vary-invalid",
            NoCacheReason::Authorization => "authorization",
            NoCacheReason::SetCookie => "set-cookie",
            NoCacheReason::NoFreshness => "no-freshness",
            NoCacheReason::MustUnderstand => "must-understand",
            NoCacheReason::Policy => "policy",
        }
    }
}

impl fmt::Display for NoCacheReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The storability rules that do not depend on a freshness lifetime: the
/// method, the status code, `must-understand`, `no-store`, `private`,
/// `Vary: *`, `Authorization` and `Set-Cookie` (stored only when
/// `cache_set_cookie`). On success, the directives that were applied, for
/// the freshness computation. What remains (a status code that needs
/// explicit freshness, no freshness source at all) is decided by
/// [`super::freshness::evaluate`].
pub fn check(
    method: &Method,
    req_headers: &impl FieldsRead,
    status: StatusCode,
    resp_headers: &HeaderMap,
    cache_set_cookie: bool,
) -> Result<CacheDirectives, NoCacheReason> {
    if *method != Method::GET {
        return Err(NoCacheReason::Method);
    }
    let code = status.as_u16();
    if !(200..600).contains(&code) || code == 206 || code == 304 {
        return Err(NoCacheReason::Status);
    }

    let d = directives(resp_headers);
    let understood = status_understood(code);
    if d.must_understand && !understood {
        return Err(NoCacheReason::MustUnderstand);
    }
    // RFC 9111 §5.2.2.3: with must-understand, a cache that implements the
    // status code's caching rules should ignore no-store.
    if d.no_store && !(d.must_understand && understood) {
        return Err(NoCacheReason::NoStore);
    }
    if d.private {
        return Err(NoCacheReason::Private);
    }
    if has_vary_star(resp_headers) {
        return Err(NoCacheReason::VaryStar);
    }
    if req_headers.contains_key(header::AUTHORIZATION)
        && !(d.public || d.s_maxage.is_some() || d.must_revalidate)
    {
        return Err(NoCacheReason::Authorization);
    }
    if !cache_set_cookie && resp_headers.contains_key(header::SET_COOKIE) {
        return Err(NoCacheReason::SetCookie);
    }
    Ok(d)
}

/// True for the status codes RFC 9110 defines as heuristically cacheable.
pub fn heuristically_cacheable(code: u16) -> bool {
    matches!(
        code,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// True for the status codes whose caching requirements this cache
/// implements (those defined by RFC 9110), for `must-understand`.
pub fn status_understood(code: u16) -> bool {
    matches!(
        code,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// True when any `Vary` element is `*`.
fn has_vary_star(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .any(|item| trim_ows(item) == b"*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::freshness::FreshnessPolicy;
    use crate::cache::test_support::*;

    // ---- storability -------------------------------------------------

    #[test]
    fn only_get_is_storable() {
        for m in [Method::HEAD, Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(
                eval_full(
                    m,
                    &[],
                    200,
                    &[("cache-control", "max-age=60")],
                    &Default::default()
                ),
                Err(NoCacheReason::Method)
            );
        }
        assert!(eval(200, &[("cache-control", "max-age=60")]).is_ok());
    }

    #[test]
    fn never_store_206_304_or_1xx() {
        for code in [100, 103, 206, 304] {
            assert_eq!(
                eval(code, &[("cache-control", "max-age=60, public")]),
                Err(NoCacheReason::Status),
                "{code}"
            );
        }
    }

    #[test]
    fn heuristically_cacheable_statuses_need_no_explicit_freshness() {
        let policy = FreshnessPolicy {
            default_ttl: Some(secs(120)),
            ..Default::default()
        };
        for code in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            let f = eval_full(Method::GET, &[], code, &[], &policy).unwrap();
            assert_eq!(f.ttl, secs(120), "{code}");
        }
    }

    #[test]
    fn other_statuses_need_explicit_freshness() {
        let policy = FreshnessPolicy {
            default_ttl: Some(secs(120)),
            ..Default::default()
        };
        for code in [201, 302, 303, 307, 400, 403, 500, 502, 503] {
            assert_eq!(
                eval_full(Method::GET, &[], code, &[], &policy),
                Err(NoCacheReason::Status),
                "{code}"
            );
            assert_eq!(ttl(code, &[("cache-control", "max-age=30")]), secs(30));
            assert_eq!(ttl(code, &[("cache-control", "s-maxage=40")]), secs(40));
            assert_eq!(
                ttl(code, &[("date", &date(T0)), ("expires", &date(T0 + 50))]),
                secs(50)
            );
        }
    }

    #[test]
    fn public_makes_other_statuses_storable_with_default_ttl() {
        let policy = FreshnessPolicy {
            default_ttl: Some(secs(120)),
            ..Default::default()
        };
        let f = eval_full(
            Method::GET,
            &[],
            302,
            &[("cache-control", "public")],
            &policy,
        )
        .unwrap();
        assert_eq!(f.ttl, secs(120));
        // Without default TTL nor Last-Modified there is no lifetime.
        assert_eq!(
            eval(302, &[("cache-control", "public")]),
            Err(NoCacheReason::NoFreshness)
        );
    }

    #[test]
    fn no_store() {
        assert_eq!(
            eval(200, &[("cache-control", "max-age=60, no-store")]),
            Err(NoCacheReason::NoStore)
        );
        assert_eq!(
            eval(200, &[("cache-control", "NO-STORE")]),
            Err(NoCacheReason::NoStore)
        );
    }

    #[test]
    fn must_understand() {
        // Understood status: no-store is ignored.
        assert_eq!(
            ttl(
                200,
                &[("cache-control", "must-understand, no-store, max-age=60")]
            ),
            secs(60)
        );
        // Unknown status code: not stored.
        assert_eq!(
            eval(
                299,
                &[("cache-control", "must-understand, no-store, max-age=60")]
            ),
            Err(NoCacheReason::MustUnderstand)
        );
    }

    #[test]
    fn private_unqualified_and_qualified() {
        assert_eq!(
            eval(200, &[("cache-control", "private, max-age=60")]),
            Err(NoCacheReason::Private)
        );
        assert_eq!(
            eval(
                200,
                &[(
                    "cache-control",
                    "max-age=60, private=\"set-cookie, x-user\""
                )]
            ),
            Err(NoCacheReason::Private)
        );
        let d = directives(&headers(&[(
            "cache-control",
            "private=\"Set-Cookie, X-User\"",
        )]));
        assert!(d.private);
        assert_eq!(d.private_fields, vec!["set-cookie", "x-user"]);
    }

    #[test]
    fn vary_star() {
        assert_eq!(
            eval(200, &[("cache-control", "max-age=60"), ("vary", "*")]),
            Err(NoCacheReason::VaryStar)
        );
        assert_eq!(
            eval(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("vary", "accept-encoding"),
                    ("vary", "cookie , *")
                ]
            ),
            Err(NoCacheReason::VaryStar)
        );
        assert!(eval(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept, x-star*")]
        )
        .is_ok());
    }

    #[test]
    fn authorization_needs_public_s_maxage_or_must_revalidate() {
        let req = [("authorization", "Basic Zm9vOmJhcg==")];
        let p = FreshnessPolicy::default();
        assert_eq!(
            eval_full(
                Method::GET,
                &req,
                200,
                &[("cache-control", "max-age=60")],
                &p
            ),
            Err(NoCacheReason::Authorization)
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            let f = eval_full(Method::GET, &req, 200, &[("cache-control", cc)], &p).unwrap();
            assert_eq!(f.ttl, secs(60), "{cc}");
        }
        // proxy-revalidate is not in the list.
        assert_eq!(
            eval_full(
                Method::GET,
                &req,
                200,
                &[("cache-control", "proxy-revalidate, max-age=60")],
                &p
            ),
            Err(NoCacheReason::Authorization)
        );
    }

    #[test]
    fn set_cookie_depends_on_policy() {
        let resp = [("cache-control", "max-age=60"), ("set-cookie", "a=b")];
        assert_eq!(eval(200, &resp), Err(NoCacheReason::SetCookie));
        let p = FreshnessPolicy {
            cache_set_cookie: true,
            ..Default::default()
        };
        assert!(eval_full(Method::GET, &[], 200, &resp, &p).is_ok());
    }

    #[test]
    fn no_freshness_source() {
        assert_eq!(eval(200, &[]), Err(NoCacheReason::NoFreshness));
        assert_eq!(
            eval(200, &[("etag", "\"x\"")]),
            Err(NoCacheReason::NoFreshness)
        );
    }

    #[test]
    fn reason_names() {
        assert_eq!(NoCacheReason::VaryStar.as_str(), "vary-star");
        assert_eq!(NoCacheReason::NoFreshness.as_str(), "no-freshness");
        assert_eq!(NoCacheReason::SetCookie.to_string(), "set-cookie");
    }
}
