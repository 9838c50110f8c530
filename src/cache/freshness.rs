//! RFC 9111 storability and freshness for a *shared* cache.
//!
//! Everything here is pure: it looks at a request/response header pair and a
//! few timestamps and decides whether the response may be stored and for how
//! long it stays fresh, usable within grace, usable on error, or retained for
//! conditional revalidation.
//!
//! The headers are untrusted input. Malformed values never panic; they are
//! handled the way RFC 9111 asks (mostly: "treat as stale").
//!
//! Cache directives come from the first of these fields that is present and
//! valid (RFC 9213 targeted fields): `Lacquer-Cache-Control`,
//! `CDN-Cache-Control`, then the ordinary `Cache-Control`.
//!
//! Why not the `http-cache-semantics` crate: it keeps a `CachePolicy` per
//! stored response (a copy of the request and response headers) and answers
//! "is it fresh / how to revalidate" from it. lacquer needs what it does not
//! model: RFC 9213 targeted fields, operator-set grace / keep / default TTL
//! and a capped heuristic (Varnish's knobs), stale-if-error windows, and
//! reasons for not storing (for logs and metrics). The rules themselves are
//! short, so they live here as pure functions with one test per rule, and a
//! stored object carries only the few numbers in [`Freshness`].

use std::fmt;
use std::time::{Duration, SystemTime};

use ::http::header::{self, HeaderMap, HeaderName};
use ::http::{Method, StatusCode};

/// The largest delta-seconds value this cache represents (RFC 9111 §1.2.2):
/// bigger values, and values that overflow, are taken as 2^31 seconds.
pub const MAX_DELTA_SECONDS: u64 = 2_147_483_648;

/// Header names this cache removes before delivering (the targeted fields),
/// in order of precedence: the first one present and valid is used.
pub const TARGETED_FIELDS: [&str; 2] = ["lacquer-cache-control", "cdn-cache-control"];

/// Response fields meant for this cache and removed before delivery: the
/// targeted cache-control fields and `Surrogate-Control` (the ESI
/// handshake; its other directives are not used).
pub const NOT_DELIVERED: [&str; 3] = [
    "lacquer-cache-control",
    "cdn-cache-control",
    "surrogate-control",
];

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
    /// `stale-while-revalidate` directive.
    pub default_grace: Duration,
    /// Extra retention after the lifetime, for conditional revalidation and
    /// as default `stale-if-error` window.
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
            default_grace: Duration::from_secs(10),
            default_keep: Duration::ZERO,
            cache_set_cookie: false,
        }
    }
}

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

/// Which header field the effective cache directives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectiveSource {
    /// No cache-control field at all.
    #[default]
    None,
    /// The ordinary `Cache-Control` field.
    CacheControl,
    /// A targeted field (RFC 9213); holds its lowercase name, one of
    /// [`TARGETED_FIELDS`]. When a targeted field is used, `Cache-Control`
    /// and `Expires` are ignored.
    Targeted(&'static str),
}

/// The response cache directives that apply to this cache.
///
/// Numeric directives keep the first occurrence; a present directive with a
/// missing or invalid value (`max-age=abc`, `max-age=-1`, `max-age=1.5`) is
/// recorded as zero, so the response counts as stale (RFC 9111 §4.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    /// Field the directives were read from.
    pub source: DirectiveSource,
    /// `max-age`.
    pub max_age: Option<Duration>,
    /// `s-maxage`.
    pub s_maxage: Option<Duration>,
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `no-cache` (a malformed argument counts as unqualified).
    pub no_cache: bool,
    /// Field names of the qualified form `no-cache="a, b"` (lowercase).
    /// Recorded for information; this cache does not act on them.
    pub no_cache_fields: Vec<String>,
    /// `private`, unqualified *or qualified*: a shared cache could store a
    /// `private="x"` response without the listed fields, but this cache does
    /// not strip fields, so it conservatively treats both forms alike.
    pub private: bool,
    /// Field names of the qualified form `private="a, b"` (lowercase).
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<Duration>,
}

impl CacheDirectives {
    /// True when the directives came from a targeted field.
    pub fn is_targeted(&self) -> bool {
        matches!(self.source, DirectiveSource::Targeted(_))
    }
}

/// The cache-control directives that apply to this cache (RFC 9213 targeted
/// fields): `Lacquer-Cache-Control` if present and valid, else
/// `CDN-Cache-Control` if present and valid, else `Cache-Control`.
///
/// A targeted field fully replaces `Cache-Control`. Targeted fields are
/// Structured Field Dictionaries (RFC 8941): one that is empty or fails to
/// parse is ignored as if absent; within one, a repeated key keeps its last
/// value, as RFC 8941 requires. `Cache-Control` is parsed leniently:
/// case-insensitive names, token or quoted-string values, all field lines
/// combined, first occurrence of a numeric directive wins.
pub fn directives(resp_headers: &HeaderMap) -> CacheDirectives {
    for name in TARGETED_FIELDS {
        if let Some(raw) = targeted_directives(resp_headers, name) {
            return interpret(raw, DirectiveSource::Targeted(name));
        }
    }
    let mut values = resp_headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .peekable();
    if values.peek().is_none() {
        return CacheDirectives::default();
    }
    let mut raw = Vec::new();
    for value in values {
        for member in split_list(value.as_bytes()) {
            if let Some(d) = parse_cache_control_member(member) {
                raw.push(d);
            }
        }
    }
    interpret(raw, DirectiveSource::CacheControl)
}

/// Decide whether a response to `method` with `req_headers` may be stored by
/// a shared cache, and if so its freshness.
///
/// `request_time` is when the request was sent upstream, `response_time`
/// when the response (headers) arrived.
pub fn evaluate(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    policy: &FreshnessPolicy,
) -> Result<Freshness, NoCacheReason> {
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
    if !policy.cache_set_cookie && resp_headers.contains_key(header::SET_COOKIE) {
        return Err(NoCacheReason::SetCookie);
    }

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
    let (grace, stale_if_error) = if must_revalidate || d.no_cache {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let grace = d.stale_while_revalidate.unwrap_or(policy.default_grace);
        let sie = d.stale_if_error.unwrap_or_else(|| grace.max(keep));
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

/// RFC 9111 §4.3.4 / §3.2: the headers of a stored response updated by a
/// 304 (or a HEAD response) `not_modified`.
///
/// Every field of the 304 replaces all stored lines of the same name, except:
/// `Content-Length` (never updated from a 304); hop-by-hop fields
/// (`Connection` and the fields it lists, `Proxy-Connection`, `Keep-Alive`,
/// `TE`, `Transfer-Encoding`, `Upgrade`) and proxy-specific fields
/// (`Proxy-Authenticate`, `Proxy-Authentication-Info`,
/// `Proxy-Authorization`), which are never stored; and `Content-Encoding`
/// and `Content-Range`, which describe the stored body bytes: §3.2 allows a
/// cache to skip fields whose update would break the integrity of what it
/// stored.
///
/// `Date` and `Age` describe a message, not the representation: when the
/// 304 lacks them, the stored ones are dropped (rather than kept), so that a
/// freshness recomputed from the merged headers is based on the revalidation
/// time and not on the original response.
pub fn merge_304(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let listed = connection_listed(not_modified);
    for name in not_modified.keys() {
        if !updatable_from_304(name) || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        out.remove(name);
        for value in not_modified.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if !not_modified.contains_key(header::DATE) {
        out.remove(header::DATE);
    }
    if !not_modified.contains_key(header::AGE) {
        out.remove(header::AGE);
    }
    out
}

/// False for the fields a 304 must not update (see [`merge_304`]).
fn updatable_from_304(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-length"
            | "content-encoding"
            | "content-range"
            | "connection"
            | "proxy-connection"
            | "keep-alive"
            | "te"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authenticate"
            | "proxy-authentication-info"
            | "proxy-authorization"
    )
}

/// Lowercase field names listed in `Connection`.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    let mut names = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        for item in split_list(value.as_bytes()) {
            let item = trim_ows(item);
            if !item.is_empty() {
                names.push(String::from_utf8_lossy(item).to_ascii_lowercase());
            }
        }
    }
    names
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

/// The first line of a date-valued header, if it is a valid HTTP-date.
fn first_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| parse_http_date(v.as_bytes()))
}

/// Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime), trimming OWS.
fn parse_http_date(bytes: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(trim_ows(bytes)).ok()?;
    httpdate::parse_http_date(s).ok()
}

/// The `Age` header (first line) as delta-seconds; missing or invalid = 0.
fn age_header(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| parse_delta_seconds(trim_ows(v.as_bytes())))
        .unwrap_or(Duration::ZERO)
}

/// `delta-seconds = 1*DIGIT`, clamped to [`MAX_DELTA_SECONDS`].
fn parse_delta_seconds(bytes: &[u8]) -> Option<Duration> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut secs: u64 = 0;
    for b in bytes {
        secs = secs
            .saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(MAX_DELTA_SECONDS);
    }
    Some(Duration::from_secs(secs))
}

/// True when any `Vary` element is `*`.
fn has_vary_star(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .any(|item| trim_ows(item) == b"*")
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strip leading and trailing spaces and tabs.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Split a comma-separated list at commas outside quoted strings (a
/// backslash inside a quoted string escapes the next byte).
fn split_list(s: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b',' {
            items.push(&s[start..i]);
            start = i + 1;
        }
    }
    items.push(&s[start..]);
    items
}

/// A directive argument, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    /// No `=value`.
    Absent,
    /// A token, a legacy quoted-string (unquoted), or an sf-integer.
    Value(String),
    /// An sf-string: valid for field lists, not for numeric directives.
    SfString(String),
    /// Present but unusable (unterminated quote, decimal, inner list...).
    Invalid,
}

/// One directive, name lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawDirective {
    name: String,
    arg: Arg,
}

/// Parse one `Cache-Control` list member: `token [ "=" ( token / quoted-string ) ]`.
fn parse_cache_control_member(member: &[u8]) -> Option<RawDirective> {
    let member = trim_ows(member);
    let (name, value) = match member.iter().position(|&b| b == b'=') {
        Some(eq) => (trim_ows(&member[..eq]), Some(trim_ows(&member[eq + 1..]))),
        None => (member, None),
    };
    if name.is_empty() {
        return None;
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let arg = match value {
        None => Arg::Absent,
        Some([]) => Arg::Invalid,
        Some([b'"', rest @ ..]) => match unquote(rest) {
            Some(s) => Arg::Value(s),
            None => Arg::Invalid,
        },
        Some(v) => Arg::Value(String::from_utf8_lossy(v).into_owned()),
    };
    Some(RawDirective { name, arg })
}

/// The content of a quoted-string whose opening quote was already consumed;
/// `None` if unterminated or followed by anything.
fn unquote(rest: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(rest.len());
    let mut iter = rest.iter().enumerate();
    while let Some((i, &b)) = iter.next() {
        match b {
            b'\\' => {
                let (_, &next) = iter.next()?;
                out.push(next);
            }
            b'"' => {
                return if trim_ows(&rest[i + 1..]).is_empty() {
                    Some(String::from_utf8_lossy(&out).into_owned())
                } else {
                    None
                };
            }
            _ => out.push(b),
        }
    }
    None
}

/// The directives of targeted field `name`, or `None` when it is absent,
/// empty or not a valid Structured Field Dictionary.
fn targeted_directives(headers: &HeaderMap, name: &str) -> Option<Vec<RawDirective>> {
    let mut combined: Vec<u8> = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(value.as_bytes());
    }
    let members = sf::parse_dictionary(&combined)?;
    let mut raw = Vec::with_capacity(members.len());
    for (key, value) in members {
        let arg = match value {
            sf::Value::Boolean(true) => Arg::Absent,
            // `?0`: the directive is explicitly off.
            sf::Value::Boolean(false) => continue,
            sf::Value::Integer(n) => Arg::Value(n.to_string()),
            sf::Value::Token(t) => Arg::Value(t),
            sf::Value::String(s) => Arg::SfString(s),
            sf::Value::Other => Arg::Invalid,
        };
        raw.push(RawDirective { name: key, arg });
    }
    Some(raw)
}

/// A numeric directive's value: invalid or missing values count as zero.
fn delta_arg(arg: &Arg) -> Duration {
    match arg {
        Arg::Value(v) => parse_delta_seconds(v.as_bytes()).unwrap_or(Duration::ZERO),
        Arg::Absent | Arg::SfString(_) | Arg::Invalid => Duration::ZERO,
    }
}

/// Lowercase field names of a qualified `no-cache` / `private` argument.
fn field_names(v: &str) -> Vec<String> {
    v.split(',')
        .map(|f| f.trim_matches([' ', '\t']).to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .collect()
}

fn set_first(slot: &mut Option<Duration>, arg: &Arg) {
    if slot.is_none() {
        *slot = Some(delta_arg(arg));
    }
}

fn interpret(raw: Vec<RawDirective>, source: DirectiveSource) -> CacheDirectives {
    let mut d = CacheDirectives {
        source,
        ..CacheDirectives::default()
    };
    for RawDirective { name, arg } in raw {
        match name.as_str() {
            "max-age" => set_first(&mut d.max_age, &arg),
            "s-maxage" => set_first(&mut d.s_maxage, &arg),
            "stale-while-revalidate" => set_first(&mut d.stale_while_revalidate, &arg),
            "stale-if-error" => set_first(&mut d.stale_if_error, &arg),
            "no-store" => d.no_store = true,
            "no-cache" => match arg {
                Arg::Value(v) | Arg::SfString(v) => d.no_cache_fields.extend(field_names(&v)),
                // A broken argument is treated as the stricter, unqualified form.
                Arg::Absent | Arg::Invalid => d.no_cache = true,
            },
            "private" => {
                d.private = true;
                if let Arg::Value(v) | Arg::SfString(v) = arg {
                    d.private_fields.extend(field_names(&v));
                }
            }
            "public" => d.public = true,
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            "must-understand" => d.must_understand = true,
            "no-transform" => d.no_transform = true,
            "immutable" => d.immutable = true,
            _ => {}
        }
    }
    d
}

/// A small Structured Field Dictionary parser (RFC 8941 §4.2.2, plus the
/// Date and Display String types of RFC 9651), enough to validate targeted
/// cache-control fields and extract their members.
mod sf {
    /// A dictionary member value, reduced to what cache directives need.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Value {
        Boolean(bool),
        Integer(i64),
        Token(String),
        String(String),
        /// Decimal, byte sequence, date, display string or inner list.
        Other,
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    /// Parse a dictionary. `None` for empty input or any syntax error.
    /// Duplicate keys keep their first position and their last value.
    pub(super) fn parse_dictionary(input: &[u8]) -> Option<Vec<(String, Value)>> {
        let mut p = Parser { s: input, i: 0 };
        p.skip_sp();
        // Trailing spaces are discarded too (RFC 8941 §4.2).
        let mut end = input.len();
        while end > p.i && input[end - 1] == b' ' {
            end -= 1;
        }
        p.s = &input[..end];
        if p.at_end() {
            return None;
        }
        let mut members: Vec<(String, Value)> = Vec::new();
        loop {
            let key = p.key()?;
            let value = if p.eat(b'=') {
                if p.peek() == Some(b'(') {
                    p.inner_list()?;
                    Value::Other
                } else {
                    let v = p.bare_item()?;
                    p.parameters()?;
                    v
                }
            } else {
                p.parameters()?;
                Value::Boolean(true)
            };
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
            p.skip_ows();
            if p.at_end() {
                return Some(members);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            if p.at_end() {
                return None;
            }
        }
    }

    impl Parser<'_> {
        fn at_end(&self) -> bool {
            self.i >= self.s.len()
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, b: u8) -> bool {
            if self.peek() == Some(b) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn skip_sp(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }

        fn skip_ows(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }

        fn key(&mut self) -> Option<String> {
            let start = self.i;
            match self.peek() {
                Some(b'a'..=b'z' | b'*') => self.i += 1,
                _ => return None,
            }
            while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
                self.i += 1;
            }
            Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }

        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }

        fn inner_list(&mut self) -> Option<()> {
            if !self.eat(b'(') {
                return None;
            }
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    return self.parameters();
                }
                self.bare_item()?;
                self.parameters()?;
                match self.peek() {
                    Some(b' ' | b')') => {}
                    _ => return None,
                }
            }
        }

        fn bare_item(&mut self) -> Option<Value> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string().map(Value::String),
                b'A'..=b'Z' | b'a'..=b'z' | b'*' => Some(Value::Token(self.token())),
                b':' => self.binary(),
                b'?' => self.boolean(),
                b'@' => {
                    self.i += 1;
                    match self.number()? {
                        Value::Integer(_) => Some(Value::Other),
                        _ => None,
                    }
                }
                b'%' => self.display_string(),
                _ => None,
            }
        }

        fn number(&mut self) -> Option<Value> {
            let negative = self.eat(b'-');
            let int_start = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            let int_len = self.i - int_start;
            if int_len == 0 {
                return None;
            }
            if self.eat(b'.') {
                let frac_start = self.i;
                while let Some(b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
                let frac_len = self.i - frac_start;
                if int_len > 12 || !(1..=3).contains(&frac_len) {
                    return None;
                }
                return Some(Value::Other);
            }
            if int_len > 15 {
                return None;
            }
            let digits = std::str::from_utf8(&self.s[int_start..self.i]).ok()?;
            let n: i64 = digits.parse().ok()?;
            Some(Value::Integer(if negative { -n } else { n }))
        }

        fn string(&mut self) -> Option<String> {
            if !self.eat(b'"') {
                return None;
            }
            let mut out = String::new();
            loop {
                let b = self.peek()?;
                self.i += 1;
                match b {
                    b'\\' => {
                        let next = self.peek()?;
                        if next != b'"' && next != b'\\' {
                            return None;
                        }
                        self.i += 1;
                        out.push(char::from(next));
                    }
                    b'"' => return Some(out),
                    0x20..=0x7e => out.push(char::from(b)),
                    _ => return None,
                }
            }
        }

        fn token(&mut self) -> String {
            let start = self.i;
            self.i += 1;
            while let Some(b) = self.peek() {
                let ok = b.is_ascii_alphanumeric() || b":/!#$%&'*+-.^_`|~".contains(&b);
                if !ok {
                    break;
                }
                self.i += 1;
            }
            String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
        }

        fn binary(&mut self) -> Option<Value> {
            self.i += 1;
            loop {
                match self.peek()? {
                    b':' => {
                        self.i += 1;
                        return Some(Value::Other);
                    }
                    b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') => {
                        self.i += 1;
                    }
                    _ => return None,
                }
            }
        }

        fn boolean(&mut self) -> Option<Value> {
            self.i += 1;
            let v = match self.peek()? {
                b'0' => false,
                b'1' => true,
                _ => return None,
            };
            self.i += 1;
            Some(Value::Boolean(v))
        }

        fn display_string(&mut self) -> Option<Value> {
            self.i += 1;
            if !self.eat(b'"') {
                return None;
            }
            let mut bytes = Vec::new();
            loop {
                let b = self.peek()?;
                self.i += 1;
                match b {
                    b'%' => {
                        let hex = self.s.get(self.i..self.i + 2)?;
                        if !hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f')) {
                            return None;
                        }
                        let hex = std::str::from_utf8(hex).ok()?;
                        bytes.push(u8::from_str_radix(hex, 16).ok()?);
                        self.i += 2;
                    }
                    b'"' => {
                        return std::str::from_utf8(&bytes).ok().map(|_| Value::Other);
                    }
                    0x20..=0x7e => bytes.push(b),
                    _ => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::header::HeaderValue;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn eval_full(
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

    fn eval(status: u16, resp: &[(&str, &str)]) -> Result<Freshness, NoCacheReason> {
        eval_full(Method::GET, &[], status, resp, &FreshnessPolicy::default())
    }

    fn ttl(status: u16, resp: &[(&str, &str)]) -> Duration {
        eval(status, resp).unwrap().ttl
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

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

    // ---- freshness sources and precedence ----------------------------

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

    // ---- directive parsing ------------------------------------------

    #[test]
    fn malformed_numeric_directives_mean_stale() {
        for cc in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age=",
            "max-age=\"60",
            "max-age=60 s",
        ] {
            assert_eq!(ttl(200, &[("cache-control", cc)]), Duration::ZERO, "{cc}");
        }
        // An invalid max-age still overrides Expires.
        assert_eq!(
            ttl(
                200,
                &[("cache-control", "max-age=x"), ("expires", &date(T0 + 60))]
            ),
            Duration::ZERO
        );
    }

    #[test]
    fn quoted_values_case_and_whitespace() {
        assert_eq!(ttl(200, &[("cache-control", "max-age=\"60\"")]), secs(60));
        assert_eq!(ttl(200, &[("cache-control", "MAX-AGE=60")]), secs(60));
        assert_eq!(ttl(200, &[("cache-control", "  max-age = 60 ,")]), secs(60));
    }

    #[test]
    fn duplicates_use_the_first() {
        assert_eq!(
            ttl(200, &[("cache-control", "max-age=10, max-age=20")]),
            secs(10)
        );
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("cache-control", "max-age=20")
                ]
            ),
            secs(10)
        );
    }

    #[test]
    fn multiple_lines_combine() {
        let d = directives(&headers(&[
            ("cache-control", "public"),
            ("cache-control", "max-age=60, must-revalidate"),
        ]));
        assert!(d.public && d.must_revalidate);
        assert_eq!(d.max_age, Some(secs(60)));
        assert_eq!(d.source, DirectiveSource::CacheControl);
    }

    #[test]
    fn huge_values_are_clamped() {
        assert_eq!(
            ttl(
                200,
                &[("cache-control", "max-age=99999999999999999999999999")]
            ),
            secs(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn no_cache_qualified_vs_unqualified() {
        let d = directives(&headers(&[(
            "cache-control",
            "no-cache=\"set-cookie, x-a\", max-age=5",
        )]));
        assert!(!d.no_cache);
        assert_eq!(d.no_cache_fields, vec!["set-cookie", "x-a"]);
        assert_eq!(d.max_age, Some(secs(5)));
        // The comma inside the quotes did not split the list.
        let d = directives(&headers(&[("cache-control", "no-cache=\"a,b\", no-cache")]));
        assert!(d.no_cache);
        let d = directives(&headers(&[("cache-control", "no-cache=\"unterminated")]));
        assert!(d.no_cache);
    }

    #[test]
    fn other_directives_parsed() {
        let d = directives(&headers(&[(
            "cache-control",
            "public, proxy-revalidate, no-transform, immutable, stale-while-revalidate=30, stale-if-error=600, x-ext=\"q,\\\"z\"",
        )]));
        assert!(d.public && d.proxy_revalidate && d.no_transform && d.immutable);
        assert_eq!(d.stale_while_revalidate, Some(secs(30)));
        assert_eq!(d.stale_if_error, Some(secs(600)));
        assert_eq!(directives(&HeaderMap::new()), CacheDirectives::default());
    }

    #[test]
    fn non_utf8_headers_do_not_panic() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=\xff\xfe, \xffprivate").unwrap(),
        );
        map.insert(header::DATE, HeaderValue::from_bytes(b"\xff\xff").unwrap());
        map.insert(header::AGE, HeaderValue::from_bytes(b"\xff").unwrap());
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &map,
            at(T0),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert_eq!(f.ttl, Duration::ZERO);
    }

    // ---- targeted fields -----------------------------------------------

    #[test]
    fn targeted_precedence() {
        let all = [
            ("cache-control", "max-age=10"),
            ("cdn-cache-control", "max-age=20"),
            ("lacquer-cache-control", "max-age=30"),
        ];
        assert_eq!(ttl(200, &all), secs(30));
        assert_eq!(
            directives(&headers(&all)).source,
            DirectiveSource::Targeted("lacquer-cache-control")
        );
        assert_eq!(ttl(200, &all[..2]), secs(20));
        assert_eq!(ttl(200, &all[..1]), secs(10));
    }

    #[test]
    fn targeted_field_replaces_cache_control_and_expires() {
        // no-store in Cache-Control does not apply.
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60")
                ]
            ),
            secs(60)
        );
        // ...and the reverse: the targeted field forbids storage.
        assert_eq!(
            eval(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("lacquer-cache-control", "no-store")
                ]
            ),
            Err(NoCacheReason::NoStore)
        );
        // Expires is ignored when a targeted field is in use.
        assert_eq!(
            eval(
                200,
                &[("expires", &date(T0 + 60)), ("cdn-cache-control", "public")]
            ),
            Err(NoCacheReason::NoFreshness)
        );
        // A field with no known directive still counts (RFC 9213 "none").
        assert_eq!(
            eval(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "none")
                ]
            ),
            Err(NoCacheReason::NoFreshness)
        );
    }

    #[test]
    fn invalid_targeted_field_is_ignored() {
        for bad in [
            "",
            "Max-Age=30",
            "max-age=30,",
            "max-age=\"30",
            "max-age=30 junk",
            "max-age==1",
        ] {
            assert_eq!(
                ttl(
                    200,
                    &[
                        ("cache-control", "max-age=10"),
                        ("lacquer-cache-control", bad)
                    ]
                ),
                secs(10),
                "{bad:?}"
            );
        }
        // Lacquer invalid -> falls to CDN.
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("cdn-cache-control", "max-age=20"),
                    ("lacquer-cache-control", "MAX-AGE=30")
                ]
            ),
            secs(20)
        );
    }

    #[test]
    fn targeted_field_values() {
        let d = directives(&headers(&[(
            "cdn-cache-control",
            "max-age=60;foo=bar, no-cache=\"set-cookie\", must-revalidate, no-store=?0, stale-if-error=1.5",
        )]));
        assert_eq!(d.max_age, Some(secs(60)));
        assert!(!d.no_cache);
        assert_eq!(d.no_cache_fields, vec!["set-cookie"]);
        assert!(d.must_revalidate);
        assert!(!d.no_store);
        assert_eq!(d.stale_if_error, Some(Duration::ZERO));
        // Duplicate keys: last wins (RFC 8941). Strings are not integers.
        let d = directives(&headers(&[(
            "cdn-cache-control",
            "max-age=1, max-age=2, s-maxage=\"5\"",
        )]));
        assert_eq!(d.max_age, Some(secs(2)));
        assert_eq!(d.s_maxage, Some(Duration::ZERO));
        // Several lines combine.
        let d = directives(&headers(&[
            ("cdn-cache-control", "max-age=5"),
            ("cdn-cache-control", "public"),
        ]));
        assert_eq!(d.max_age, Some(secs(5)));
        assert!(d.public);
        // Other SF types parse.
        let d = directives(&headers(&[(
            "lacquer-cache-control",
            "a=(1 2 \"x\");p, b=:aGk=:, c=@1700000000, d=%\"caf%c3%a9\", e=*tok/x, max-age=-3",
        )]));
        assert_eq!(d.source, DirectiveSource::Targeted("lacquer-cache-control"));
        assert_eq!(d.max_age, Some(Duration::ZERO));
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
        assert_eq!(f.stale_if_error, secs(300));
        assert_eq!(f.retention(), secs(360));
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
        // ttl 60 - age 10 + max(30, 120, 0)
        assert_eq!(f.retention(), secs(170));
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

    // ---- 304 merge ---------------------------------------------------------

    #[test]
    fn merge_304_replaces_fields() {
        let stored = headers(&[
            ("content-type", "text/html"),
            ("content-length", "1234"),
            ("content-encoding", "gzip"),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("date", &date(T0 - 1000)),
            ("age", "500"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("x-keep", "k"),
        ]);
        let nm = headers(&[
            ("etag", "\"v2\""),
            ("cache-control", "max-age=120"),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-hop", "1"),
            ("x-multi", "c"),
            ("x-multi", "d"),
            ("proxy-authenticate", "Basic"),
        ]);
        let merged = merge_304(&stored, &nm);
        assert_eq!(merged["etag"], "\"v2\"");
        assert_eq!(merged["cache-control"], "max-age=120");
        assert_eq!(merged["content-length"], "1234");
        assert_eq!(merged["content-encoding"], "gzip");
        assert_eq!(merged["content-type"], "text/html");
        assert_eq!(merged["x-keep"], "k");
        let multi: Vec<_> = merged.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["c", "d"]);
        for hop in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "x-hop",
            "proxy-authenticate",
        ] {
            assert!(!merged.contains_key(hop), "{hop}");
        }
        // Date and Age of the old message are dropped when the 304 has none.
        assert!(!merged.contains_key("date"));
        assert!(!merged.contains_key("age"));
    }

    #[test]
    fn merge_304_takes_date_and_age_from_the_304() {
        let stored = headers(&[("date", &date(T0 - 1000)), ("age", "500")]);
        let nm = headers(&[("date", &date(T0)), ("age", "3")]);
        let merged = merge_304(&stored, &nm);
        assert_eq!(merged["date"], date(T0).as_str());
        assert_eq!(merged["age"], "3");
        // Freshness recomputed from the merged headers starts over.
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &merge_304(
                &headers(&[("cache-control", "max-age=60"), ("date", &date(T0 - 1000))]),
                &headers(&[("etag", "\"a\"")]),
            ),
            at(T0),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert!(f.is_fresh(at(T0)));
    }
}
