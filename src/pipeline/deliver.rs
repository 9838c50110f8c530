//! deliver: build what the client receives — from a stored object, a shared
//! fetch, a backend stream, or a synthetic answer — with `Age`, `Via`,
//! `X-Cache`, 304s to conditional requests, and HEAD.

use http::header::{HeaderValue, AGE, CONTENT_LENGTH, CONTENT_TYPE, DATE, VIA};
use http::{HeaderMap, Method, Response, StatusCode};
use std::time::{Duration, SystemTime};

use super::RequestCtx;
use crate::body::RespBody;
use crate::cache::directives::NOT_DELIVERED;
use crate::cache::freshness::Freshness;
use crate::cache::object::KeySpec;
use crate::cache::CachedObject;
use crate::fetch::broadcast::BodyReader;
use crate::fetch::inflight::SharedHead;
use crate::fetch::pool::BackendBody;
use crate::http::conditional::{is_not_modified, strip_for_304};

/// Name of the header that tells how a response was served.
pub const X_CACHE: &str = "x-cache";

/// How a response was served (the `X-Cache` header, logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// From a fresh stored object.
    Hit,
    /// Fetched for this request (or a coalesced one).
    Miss,
    /// Not cacheable: straight from the backend.
    Pass,
    /// A stale object, in grace or replacing a backend error.
    Stale,
}

impl CacheOutcome {
    /// The name used in headers and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "HIT",
            CacheOutcome::Miss => "MISS",
            CacheOutcome::Pass => "PASS",
            CacheOutcome::Stale => "STALE",
        }
    }
}

/// What `vcl_deliver` reads of the object behind a response (`obj.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ObjMeta {
    /// Deliveries from the cache, this one included (0 on a miss or pass).
    pub hits: u64,
    /// Its age.
    pub age: Duration,
    /// Remaining time to live in seconds (negative once expired).
    pub ttl: f64,
    /// Its grace.
    pub grace: Duration,
    /// Its keep.
    pub keep: Duration,
    /// A pass or hit-for-miss answer: no stored object.
    pub uncacheable: bool,
}

impl ObjMeta {
    /// A stored (or just fetched) object with this freshness, delivered
    /// `hits` times.
    pub fn of(freshness: &Freshness, hits: u64, now: SystemTime) -> ObjMeta {
        let age = freshness.age(now);
        ObjMeta {
            hits,
            age,
            ttl: freshness.ttl.as_secs_f64() - age.as_secs_f64(),
            grace: freshness.grace,
            keep: freshness.keep,
            uncacheable: false,
        }
    }

    /// A response that is not a stored object.
    pub fn uncacheable() -> ObjMeta {
        ObjMeta {
            uncacheable: true,
            ..ObjMeta::default()
        }
    }
}

fn age_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs())
}

/// A response from a stored object.
pub fn from_cache(
    ctx: &RequestCtx,
    obj: &CachedObject,
    outcome: CacheOutcome,
    via: &HeaderValue,
) -> Response<RespBody> {
    let mut headers = obj.deliver_headers.clone();
    headers.insert(AGE, age_value(obj.freshness.age(SystemTime::now())));
    let x_cache = match outcome {
        CacheOutcome::Hit => HeaderValue::from_str(&format!("HIT {}", obj.record_hit()))
            .unwrap_or(HeaderValue::from_static("HIT")),
        other => HeaderValue::from_static(other.as_str()),
    };
    headers.insert(X_CACHE, x_cache);
    headers.append(VIA, via.clone());
    if obj.status == StatusCode::OK
        && is_not_modified(
            &ctx.headers,
            obj.etag(),
            obj.last_modified(),
            obj.header(DATE),
        )
    {
        return not_modified(headers);
    }
    let body = if ctx.method == Method::HEAD {
        RespBody::empty()
    } else {
        RespBody::Full(Some(obj.body.clone()).filter(|b| !b.is_empty()))
    };
    respond(obj.status, headers, body)
}

/// A response read from a shared, still-streaming fetch.
pub fn shared(
    ctx: &RequestCtx,
    head: &SharedHead,
    reader: BodyReader,
    via: &HeaderValue,
) -> Response<RespBody> {
    let mut headers = head.headers.clone();
    headers.insert(AGE, age_value(head.freshness.age(SystemTime::now())));
    headers.insert(
        X_CACHE,
        HeaderValue::from_static(CacheOutcome::Miss.as_str()),
    );
    headers.append(VIA, via.clone());
    if head.status == StatusCode::OK
        && is_not_modified(
            &ctx.headers,
            headers.get(http::header::ETAG),
            headers.get(http::header::LAST_MODIFIED),
            headers.get(DATE),
        )
    {
        return not_modified(headers);
    }
    let body = if ctx.method == Method::HEAD {
        RespBody::empty()
    } else {
        RespBody::Shared(reader)
    };
    respond(head.status, headers, body)
}

/// A response streamed straight from the backend.
pub fn pass_through(
    ctx: &RequestCtx,
    status: StatusCode,
    mut headers: HeaderMap,
    body: BackendBody,
    outcome: CacheOutcome,
    via: &HeaderValue,
    keys: &KeySpec,
) -> Response<RespBody> {
    for name in NOT_DELIVERED {
        headers.remove(name);
    }
    keys.strip_from(&mut headers);
    headers.insert(X_CACHE, HeaderValue::from_static(outcome.as_str()));
    headers.append(VIA, via.clone());
    let body = if ctx.method == Method::HEAD {
        RespBody::empty()
    } else {
        RespBody::Backend(body)
    };
    respond(status, headers, body)
}

/// Headers for delivery of a stored response (targeted fields removed).
pub fn delivered_headers(stored: &HeaderMap, keys: &KeySpec) -> HeaderMap {
    let mut h = stored.clone();
    for name in NOT_DELIVERED {
        h.remove(name);
    }
    keys.strip_from(&mut h);
    h
}

fn not_modified(mut headers: HeaderMap) -> Response<RespBody> {
    strip_for_304(&mut headers);
    headers.remove(CONTENT_LENGTH);
    respond(StatusCode::NOT_MODIFIED, headers, RespBody::empty())
}

fn respond(status: StatusCode, headers: HeaderMap, body: RespBody) -> Response<RespBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// lacquer's body for a synthetic answer: status, reason phrase, message.
pub fn synth_body(status: StatusCode, message: &str) -> String {
    format!(
        "{} {}\n{}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message
    )
}

/// The explanation a synthetic answer carries: text (`&str`, `&String`),
/// or an outcome that describes itself (a reload's).
pub trait SynthText {
    /// The text.
    fn text(&self) -> std::borrow::Cow<'_, str>;
}

impl SynthText for &str {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self)
    }
}

impl SynthText for &String {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.as_str())
    }
}

/// A synthetic answer: `status` with a short plain-text explanation. (The
/// lifecycle's own synthetic answers go through `vcl_synth` first.)
pub fn synth(status: StatusCode, message: impl SynthText) -> Response<RespBody> {
    let body = synth_body(status, &message.text());
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    respond(status, headers, RespBody::full(body))
}
