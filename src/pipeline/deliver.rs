//! deliver: build what the client receives — from a stored object, a shared
//! fetch, a backend stream, or a synthetic answer — with `Age`, `Via`,
//! `X-Cache`, 304s to conditional requests, and HEAD.

use bytes::Bytes;
use http::header::{HeaderValue, AGE, CONTENT_LENGTH, DATE, VIA};
use http::{HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

use super::{Proxy, Served};
use crate::body::RespBody;
use crate::cache::directives::NOT_DELIVERED;
use crate::cache::object::KeySpec;
use crate::cache::CachedObject;
use crate::fetch::broadcast::BodyReader;
use crate::fetch::inflight::SharedHead;
use crate::fetch::pool::BackendBody;
use crate::http::conditional::{is_not_modified, strip_for_304};
use crate::lifecycle::{CacheOutcome, ObjMeta, Task};

/// Name of the header that tells how a response was served.
pub const X_CACHE: &str = "x-cache";

fn age_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs())
}

/// A response from a stored object.
pub fn from_cache(
    ctx: &Task,
    obj: &CachedObject,
    outcome: CacheOutcome,
    via: &HeaderValue,
) -> Response<RespBody> {
    let mut headers = obj.deliver_headers.clone();
    headers.insert(AGE, age_value(obj.freshness.age(ctx.live.clock.now())));
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
    ctx: &Task,
    head: &SharedHead,
    reader: BodyReader,
    via: &HeaderValue,
) -> Response<RespBody> {
    let mut headers = head.headers.clone();
    headers.insert(AGE, age_value(head.freshness.age(ctx.live.clock.now())));
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
    ctx: &Task,
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
impl Proxy {
    /// A stored object as the response to `ctx`; an ESI page is assembled.
    /// `obj.*` for `vcl_deliver` is read only when the policy has it.
    pub(super) fn deliver_object(
        self: &Arc<Self>,
        ctx: &Task,
        obj: &CachedObject,
        outcome: CacheOutcome,
    ) -> Served {
        let resp = self.object_response(ctx, obj, outcome);
        let meta = if ctx.live.hooks.deliver {
            ObjMeta::of(&obj.freshness, obj.hits(), ctx.live.clock.now(), outcome)
        } else {
            ObjMeta::served(outcome)
        };
        Served::Response(resp, meta)
    }

    fn object_response(
        self: &Arc<Self>,
        ctx: &Task,
        obj: &CachedObject,
        outcome: CacheOutcome,
    ) -> Response<RespBody> {
        let mut resp = from_cache(ctx, obj, outcome, &ctx.live.via);
        let Some(template) = &obj.esi else {
            return resp;
        };
        if resp.status() == StatusCode::NOT_MODIFIED {
            return resp;
        }
        resp.headers_mut().remove(CONTENT_LENGTH);
        if ctx.method == Method::HEAD || ctx.background {
            *resp.body_mut() = RespBody::empty();
            return resp;
        }
        let body = self.assemble(ctx, template);
        if let RespBody::Parts(parts) = &body {
            let len: usize = parts.iter().map(Bytes::len).sum();
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        *resp.body_mut() = body;
        resp
    }
}
