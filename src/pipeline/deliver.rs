//! deliver: build what the client receives — from a stored object, a shared
//! fetch, a backend stream, or a synthetic answer — with `Age`, `Via`,
//! `X-Cache`, 304s to conditional requests, range requests (206, 416), and
//! HEAD.

use crate::http::req_fields::FieldsRead;
use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_RANGES, AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, LAST_MODIFIED, RANGE, VIA,
};
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

use super::{Proxy, Served};
use crate::body::{RespBody, StoredResponse, Window};
use crate::cache::directives::NOT_DELIVERED;
use crate::cache::object::KeySpec;
use crate::cache::{CacheKey, CachedObject};
use crate::fetch::broadcast::BodyReader;
use crate::fetch::inflight::SharedHead;
use crate::fetch::pool::BackendBody;
use crate::http::coding::{self, Accepted, Coding};
use crate::http::conditional::{is_conditional, is_not_modified, strip_for_304};
use crate::http::few_fields::FewFields;
use crate::http::headers::remove_named;
use crate::http::name_set::NameSet;
use crate::http::range::{self, ByteRange, Validators};
use crate::http::small_numbers::SmallNumbers;
use crate::lifecycle::{CacheOutcome, ObjMeta, Task};

/// Name of the header that tells how a response was served.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Fields a delivery may add to a stored object's (`Age`, `X-Cache`,
/// `Via`, `Accept-Ranges`, `X-Varnish`, a policy's own): room made for
/// them up front so that adding them does not grow the map.
const DELIVERY_FIELDS: usize = 6;

/// `Accept-Ranges: bytes`, the one value `stored_as_is` and
/// `accept_ranges` set.
static BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// `X-Cache: HIT n` (written without `fmt`: this runs on every hit).
fn hit_value(n: u64) -> HeaderValue {
    static HITS: SmallNumbers = SmallNumbers::new("HIT ");
    if let Some(v) = HITS.value(n) {
        return v;
    }
    crate::http::small_numbers::numbers_value("HIT ", &[n])
}

fn age_value(age: Duration) -> HeaderValue {
    static AGES: SmallNumbers = SmallNumbers::new("");
    let secs = age.as_secs();
    AGES.value(secs).unwrap_or_else(|| HeaderValue::from(secs))
}

/// A response from a stored object.
///
/// `leave_out`: headers `vcl_deliver` would remove first
/// ([`removed_by_vcl_deliver`]), left out of the response.
pub fn from_cache(
    ctx: &Task,
    obj: &CachedObject,
    outcome: CacheOutcome,
    via: &HeaderValue,
    leave_out: &NameSet,
) -> Response<RespBody> {
    let mut headers = obj.fields.delivered_map_without(DELIVERY_FIELDS, leave_out);
    // The usual 200 (and the 304) add fields only when not left out; the
    // other answers are made whole, then the left-out fields removed.
    let without = |mut resp: Response<RespBody>| {
        remove_all(resp.headers_mut(), leave_out);
        resp
    };
    // A coded body for a client that does not accept its coding: the
    // decoded bytes (decoded before, see `Proxy::decode_for`).
    let decoded;
    let mut body = &obj.body;
    let decoding = needs_decoding(ctx, obj);
    if decoding {
        match obj.identity().get() {
            Some(Some(identity)) => {
                decoded = identity.clone();
                body = &decoded;
                uncoded_headers(obj, &mut headers, decoded.len(), ctx.live.hooks.varnish);
            }
            _ => return without(undecodable(headers, via)),
        }
    }
    add_delivery_fields(ctx, obj, outcome, via, leave_out, &mut headers);
    if obj.status == StatusCode::OK
        && is_conditional(&ctx.headers)
        && is_not_modified(
            &ctx.headers,
            obj.etag(),
            obj.last_modified(),
            obj.header(&DATE),
        )
    {
        // Removes fields only: nothing left out comes back, but for the
        // decoded body's (`uncoded_headers`).
        let resp = not_modified(headers);
        return if decoding { without(resp) } else { resp };
    }
    // Ranges of stored 200s only; an ESI page (a template) is assembled at
    // delivery and sent whole.
    if obj.status == StatusCode::OK && obj.esi.is_none() && accept_ranges(ctx, &mut headers) {
        let validators = Validators {
            etag: obj.etag(),
            last_modified: obj.last_modified(),
            date: obj.header(&DATE),
        };
        let len = body.len() as u64;
        match range::answer(&ctx.headers, len, max_ranges(ctx), validators) {
            range::Answer::Whole => {}
            range::Answer::Unsatisfiable => return without(unsatisfiable(headers, len)),
            range::Answer::Partial(ranges) => match partial(ctx, headers, body, &ranges) {
                Ok(resp) => return without(resp),
                Err(whole) => headers = whole,
            },
        }
    }
    // What else this path may have added.
    if decoding || leave_out.contains(&ACCEPT_RANGES) {
        remove_all(&mut headers, leave_out);
    }
    let body = if ctx.method == Method::HEAD {
        RespBody::empty()
    } else {
        RespBody::Full(Some(body.clone()).filter(|b| !b.is_empty()))
    };
    respond(obj.status, headers, body)
}

/// The usual hit: a GET of a stored 200 (not an ESI page, not for an ESI
/// include) that is neither conditional nor a range request and needs no
/// decoding. Its stored fields are written from the object as the head
/// goes out (`RespBody::Stored`), followed by the few each delivery sets
/// (`Age`, `X-Cache`, `Via`, `Accept-Ranges`, kept beside them in a
/// `FewFields`); the response's map starts empty (callgrind: building and
/// dropping a map of every stored field was ~2,500 of a 1 KiB hit's
/// ~16,400 instructions in session 17, a map of the four ~860 in session
/// 18). `vcl_deliver` reads them all through the response
/// (`lifecycle::resp_fields`); a change to one of them moves it, or all
/// the object's, into the map first. `None`: the general way
/// (`from_cache`).
fn stored_as_is(
    ctx: &Task,
    obj: &Arc<CachedObject>,
    outcome: CacheOutcome,
    via: &HeaderValue,
) -> Option<Response<RespBody>> {
    if ctx.method != Method::GET
        || obj.status != StatusCode::OK
        || ctx.esi.is_some()
        || obj.esi.is_some()
        || needs_decoding(ctx, obj)
        || ctx.headers.contains_key(RANGE)
        || is_conditional(&ctx.headers)
    {
        return None;
    }
    // What `vcl_deliver` removes first is left out here too (as in
    // `from_cache`); the stored fields leave it out when written.
    let leave_out = removed_by_vcl_deliver(ctx);
    let mut delivery = FewFields::default();
    add_delivery_fields(ctx, obj, outcome, via, leave_out, &mut delivery);
    // `Accept-Ranges` as `accept_ranges` sets it; a `Range` was ruled out
    // above.
    if ranges_served(ctx) && !leave_out.contains(&ACCEPT_RANGES) {
        delivery.set(ACCEPT_RANGES, BYTES.clone());
    }
    let stored = RespBody::Stored(Box::new(StoredResponse {
        obj: obj.clone(),
        body: Some(obj.body.clone()).filter(|b| !b.is_empty()),
        leave_out: leave_out.clone(),
        delivery,
    }));
    // The map stays empty (no allocation) unless `vcl_deliver` sets fields.
    Some(respond(obj.status, HeaderMap::new(), stored))
}

/// Where the fields a delivery sets go: a response's map, or the few
/// fields kept beside a stored object's (`stored_as_is`).
trait DeliveryFields {
    /// `name` set to `value`, replacing any other value.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    /// `value` added after `name`'s other values.
    fn add(&mut self, name: HeaderName, value: HeaderValue);
}

impl DeliveryFields for HeaderMap {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }
    fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.append(name, value);
    }
}

/// A fresh list, each name set once: `set` has nothing to replace. It
/// holds the four a delivery sets (`few_fields::CAPACITY`).
impl DeliveryFields for FewFields {
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        let pushed = self.push(name, value);
        debug_assert!(pushed.is_ok(), "more delivery fields than FewFields holds");
    }
    fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.set(name, value);
    }
}

/// The fields each delivery of a stored object sets (unless left out):
/// `Age`, `X-Cache` (the hit counted), `Via` appended.
fn add_delivery_fields(
    ctx: &Task,
    obj: &CachedObject,
    outcome: CacheOutcome,
    via: &HeaderValue,
    leave_out: &NameSet,
    headers: &mut impl DeliveryFields,
) {
    if !leave_out.contains(&AGE) {
        headers.set(AGE, age_value(obj.freshness.age(ctx.live.clock.now())));
    }
    let x_cache = match outcome {
        CacheOutcome::Hit => hit_value(obj.record_hit()),
        other => HeaderValue::from_static(other.as_str()),
    };
    if !leave_out.contains(&X_CACHE) {
        headers.set(X_CACHE, x_cache);
    }
    if !leave_out.contains(&VIA) {
        headers.add(VIA, via.clone());
    }
}

/// Removes every field named in `names`.
fn remove_all(headers: &mut HeaderMap, names: &NameSet) {
    for name in names.names() {
        headers.remove(name);
    }
}

/// Whether `vcl_deliver` runs on the response to `ctx` (not for ESI
/// fragments, of which only the body is used).
pub(super) fn runs_vcl_deliver(ctx: &Task) -> bool {
    ctx.live.hooks.deliver && ctx.esi.is_none() && !ctx.piped
}

/// The headers a response from the cache to `ctx` may leave out: those
/// `vcl_deliver` removes before anything could see them
/// ([`crate::lifecycle::Policy::deliver_removes`]), when it runs.
fn removed_by_vcl_deliver(ctx: &Task) -> &NameSet {
    if runs_vcl_deliver(ctx) {
        ctx.live.policy.deliver_removes()
    } else {
        NameSet::empty()
    }
}

/// Whether `obj`'s body must be decoded for this client: coded with a
/// coding lacquer decodes, which the client does not accept. Not for an
/// ESI include: the assembly decodes gzip itself, once for the stored
/// object (see `pipeline/fragments.rs`).
pub fn needs_decoding(ctx: &Task, obj: &CachedObject) -> bool {
    obj.coding != Coding::Identity
        && ctx.esi.is_none()
        && ctx.live.config.compression.enabled
        && obj.coding.decodable()
        && !Accepted::of(&ctx.headers).allows(obj.coding)
}

/// The delivered headers made to describe the decoded body of `len`
/// bytes: no `Content-Encoding`; the origin's strong `ETag` when lacquer
/// had coded it, else a weak one (lacquer changed the coding). Under a
/// loaded VCL (`varnish`) always a weak one, as Varnish's gunzip does.
fn uncoded_headers(obj: &CachedObject, headers: &mut HeaderMap, len: usize, varnish: bool) {
    headers.remove(CONTENT_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    match obj.etag() {
        Some(strong) if obj.compressed_here && obj.esi.is_none() && !varnish => {
            headers.insert(ETAG, strong.clone());
        }
        _ => coding::weaken_etag(headers),
    }
}

/// 502 for a stored body that did not decode (corrupt, or larger than
/// `cache.max_object_size` decoded).
fn undecodable(headers: HeaderMap, via: &HeaderValue) -> Response<RespBody> {
    let mut out = HeaderMap::new();
    out.insert(X_CACHE, HeaderValue::from_static("HIT"));
    for v in headers.get_all(VIA) {
        out.append(VIA, v.clone());
    }
    out.append(VIA, via.clone());
    let body = Bytes::from_static(b"backend fetch failed\n");
    out.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    out.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    respond(StatusCode::BAD_GATEWAY, out, RespBody::full(body))
}

/// Whether a streamed body coded as `headers` say must be decoded on the
/// way for this client (a coding lacquer decodes and the client does not
/// accept): then the headers are made to describe the decoded stream (no
/// `Content-Encoding`, `Content-Length` or `Accept-Ranges`, a weak `ETag`)
/// and the coding and the limit on its decoded size are returned. Not for
/// an ESI include (see [`needs_decoding`]).
fn decode_on_the_way(ctx: &Task, headers: &mut HeaderMap) -> Option<(Coding, u64)> {
    let coding = Coding::of(headers);
    if !coding.decodable()
        || ctx.esi.is_some()
        || !ctx.live.config.compression.enabled
        || Accepted::of(&ctx.headers).allows(coding)
    {
        return None;
    }
    headers.remove(CONTENT_ENCODING);
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    coding::weaken_etag(headers);
    Some((coding, ctx.live.config.cache.max_object_size.0))
}

/// Whether a miss to be stored compressed is sent gzip'd to this client
/// (whatever coding is stored: see [`coding::StreamGzip`] for why not
/// brotli): it accepts gzip and asks for no range (a range applies to the
/// bytes it would get, whose length is not known yet: the uncoded stream
/// answers it).
fn gzip_on_the_way(ctx: &Task, headers: &HeaderMap) -> bool {
    ctx.esi.is_none()
        && !ctx.headers.contains_key(RANGE)
        && Coding::of(headers) == Coding::Identity
        && Accepted::of(&ctx.headers).allows(Coding::Gzip)
}

/// `body` decoded as it streams (see [`decode_on_the_way`]); nothing for
/// HEAD.
fn decoding(ctx: &Task, body: RespBody, (coding, limit): (Coding, u64)) -> RespBody {
    if ctx.method == Method::HEAD {
        return RespBody::empty();
    }
    RespBody::Decode(Box::new(crate::body::Decode::new(body, coding, limit)))
}

/// Says `Accept-Ranges: bytes` on a whole 200 when this request may get
/// ranges (and removes the origin's when it may not); true when it may and
/// asks for some.
fn accept_ranges(ctx: &Task, headers: &mut HeaderMap) -> bool {
    if !ranges_served(ctx) {
        headers.remove(ACCEPT_RANGES);
        return false;
    }
    headers.insert(ACCEPT_RANGES, BYTES.clone());
    ctx.headers.contains_key(RANGE)
}

/// Whether this request may get ranges: GET (RFC 9110 §14.2) and HEAD
/// (which gets the head a GET would), with `server.max_ranges` above 0.
fn ranges_served(ctx: &Task) -> bool {
    (ctx.method == Method::GET || ctx.method == Method::HEAD) && max_ranges(ctx) > 0
}

fn max_ranges(ctx: &Task) -> usize {
    ctx.live.config.server.max_ranges
}

/// A 206 of `ranges` of a stored `body`: one range as its slice with
/// `Content-Range`; several as `multipart/byteranges`. `Err` with the
/// headers handed back (send the whole 200) for several ranges of a
/// content-coded body: its `Content-Encoding` would seem to apply to the
/// multipart body.
#[allow(clippy::result_large_err)] // the Err is the caller's own headers, moved back
fn partial(
    ctx: &Task,
    mut headers: HeaderMap,
    body: &Bytes,
    ranges: &[ByteRange],
) -> Result<Response<RespBody>, HeaderMap> {
    let total = body.len() as u64;
    let head_only = ctx.method == Method::HEAD;
    let (len, out) = match ranges {
        [one] => {
            headers.insert(CONTENT_RANGE, content_range(one, total));
            let out = body.slice(one.first as usize..=one.last as usize);
            (one.len(), RespBody::Full(Some(out)))
        }
        _ if headers.contains_key(CONTENT_ENCODING) => return Err(headers),
        _ => {
            let boundary = range::boundary();
            let (parts, len) = range::multipart(body, ranges, headers.get(CONTENT_TYPE), &boundary);
            let ct = format!("multipart/byteranges; boundary={boundary}");
            let Ok(ct) = HeaderValue::from_str(&ct) else {
                return Err(headers);
            };
            headers.insert(CONTENT_TYPE, ct);
            headers.remove(CONTENT_RANGE);
            (len, RespBody::Parts(parts))
        }
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    let out = if head_only { RespBody::empty() } else { out };
    Ok(respond(StatusCode::PARTIAL_CONTENT, headers, out))
}

fn content_range(r: &ByteRange, total: u64) -> HeaderValue {
    HeaderValue::from_str(&r.content_range(total)).unwrap_or(HeaderValue::from_static("bytes */0"))
}

/// 416 for a body of `len` bytes: `Content-Range: bytes */len`, no body,
/// and only lacquer's own fields (`X-Cache`, `Via`) from the object's head:
/// its `Cache-Control` must not make a downstream cache keep the 416.
fn unsatisfiable(headers: HeaderMap, len: u64) -> Response<RespBody> {
    let mut out = HeaderMap::new();
    for name in [X_CACHE, VIA] {
        for v in headers.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        out.insert(CONTENT_RANGE, v);
    }
    out.insert(CONTENT_LENGTH, HeaderValue::from(0));
    respond(StatusCode::RANGE_NOT_SATISFIABLE, out, RespBody::empty())
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
    let decode = decode_on_the_way(ctx, &mut headers);
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
    if let Some(how) = decode {
        // Decoded as it streams: no length, so no ranges.
        let body = decoding(ctx, RespBody::Shared(reader), how);
        return respond(head.status, headers, body);
    }
    if head.store_as.is_some() && gzip_on_the_way(ctx, &headers) {
        // To be stored compressed: a client that accepts gzip gets it so
        // now (compressed as it streams, as lacquer's own bytes: weak ETag).
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.remove(CONTENT_LENGTH);
        headers.remove(ACCEPT_RANGES);
        coding::weaken_etag(&mut headers);
        let body = if ctx.method == Method::HEAD {
            RespBody::empty()
        } else {
            RespBody::Gzip(Box::new(crate::body::Gzip::new(
                RespBody::Shared(reader),
                ctx.live.config.compression.level,
            )))
        };
        return respond(head.status, headers, body);
    }
    // Only with a known length: without one neither `Content-Range` nor a
    // 416 can be written before the body has ended.
    if head.status == StatusCode::OK && accept_ranges(ctx, &mut headers) {
        if let Some(len) = head.size {
            let validators = Validators {
                etag: headers.get(ETAG),
                last_modified: headers.get(LAST_MODIFIED),
                date: headers.get(DATE),
            };
            match range::answer(&ctx.headers, len, max_ranges(ctx), validators) {
                range::Answer::Unsatisfiable => return unsatisfiable(headers, len),
                // Several ranges on a miss: the whole 200 (see LIFECYCLE.md).
                range::Answer::Partial(ranges) if ranges.len() == 1 => {
                    let r = ranges[0];
                    headers.insert(CONTENT_RANGE, content_range(&r, len));
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(r.len()));
                    let body = if ctx.method == Method::HEAD {
                        RespBody::empty()
                    } else {
                        RespBody::SharedRange(Window::new(reader, r.first, r.len()))
                    };
                    return respond(StatusCode::PARTIAL_CONTENT, headers, body);
                }
                _ => {}
            }
        }
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
    remove_named(&mut headers, &NOT_DELIVERED);
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

/// [`pass_through`] of an answer to a fetch for the cache, which asked
/// for gzip whatever the client accepts: decoded on the way when the
/// client does not accept its coding.
pub fn fetched_through(
    ctx: &Task,
    status: StatusCode,
    mut headers: HeaderMap,
    body: BackendBody,
    outcome: CacheOutcome,
    via: &HeaderValue,
    keys: &KeySpec,
) -> Response<RespBody> {
    let Some(how) = decode_on_the_way(ctx, &mut headers) else {
        return pass_through(ctx, status, headers, body, outcome, via, keys);
    };
    let mut resp = pass_through(ctx, status, headers, body, outcome, via, keys);
    let body = std::mem::replace(resp.body_mut(), RespBody::empty());
    *resp.body_mut() = decoding(ctx, body, how);
    resp
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
        obj: &Arc<CachedObject>,
        outcome: CacheOutcome,
    ) -> Served {
        let leave_out = removed_by_vcl_deliver(ctx);
        let resp = self.object_response(ctx, obj, outcome, leave_out);
        let mut meta = if ctx.live.hooks.deliver {
            ObjMeta::of(&obj.freshness, obj.hits(), ctx.live.clock.now(), outcome)
        } else {
            ObjMeta::served(outcome)
        };
        meta.removed_early = !leave_out.is_empty();
        Served::Response(resp, meta)
    }

    /// Decodes `obj` for `ctx` when this client needs its body decoded and
    /// nobody has decoded it yet: once for every client (they wait for the
    /// first), off the worker for large bodies, bounded by
    /// `cache.max_object_size`; the decoded bytes stay with the object and
    /// are charged to the cache under `key`.
    pub(super) async fn decode_for(&self, ctx: &Task, key: &CacheKey, obj: &Arc<CachedObject>) {
        if !needs_decoding(ctx, obj) || obj.identity().initialized() {
            return;
        }
        let limit = ctx.live.config.cache.max_object_size.0;
        let mut decoded_here = false;
        let decoded = obj
            .identity()
            .get_or_init(|| async {
                decoded_here = true;
                self.metrics.count_body_decode();
                decoded_or_logged(
                    obj,
                    coding::decode_off_worker(obj.coding, obj.body.clone(), limit).await,
                )
            })
            .await
            .is_some();
        if decoded_here && decoded {
            self.store.recharge(key, obj);
        }
    }

    fn object_response(
        self: &Arc<Self>,
        ctx: &Task,
        obj: &Arc<CachedObject>,
        outcome: CacheOutcome,
        leave_out: &NameSet,
    ) -> Response<RespBody> {
        if let Some(resp) = stored_as_is(ctx, obj, outcome, &ctx.live.via) {
            return resp;
        }
        // The hit path decoded it already (`decode_for`); the rarer ways
        // here (a stale object on an error, a 304 refresh) decode now.
        if needs_decoding(ctx, obj) && !obj.identity().initialized() {
            let limit = ctx.live.config.cache.max_object_size.0;
            let decoded = decoded_or_logged(obj, coding::decode(obj.coding, &obj.body, limit));
            if obj.identity().set(decoded).is_ok() {
                self.metrics.count_body_decode();
            }
        }
        let resp = from_cache(ctx, obj, outcome, &ctx.live.via, leave_out);
        let Some(template) = &obj.esi else {
            return resp;
        };
        if resp.status() == StatusCode::NOT_MODIFIED {
            return resp;
        }
        let mut resp = self.esi_page(ctx, resp, template);
        remove_all(resp.headers_mut(), leave_out);
        resp
    }

    /// `resp`, a stored ESI page, with its body assembled from `template`.
    fn esi_page(
        self: &Arc<Self>,
        ctx: &Task,
        mut resp: Response<RespBody>,
        template: &crate::esi::parse::Template,
    ) -> Response<RespBody> {
        resp.headers_mut().remove(CONTENT_LENGTH);
        // Ranges of an assembled page are not served (see docs/ESI.md).
        resp.headers_mut().remove(ACCEPT_RANGES);
        let gzip_level = page_gzip_level(ctx, resp.headers_mut());
        if ctx.method == Method::HEAD || ctx.background {
            *resp.body_mut() = RespBody::empty();
            return resp;
        }
        let body = self.assemble(ctx, template);
        let body = match (gzip_level, body) {
            (None, body) => body,
            // Every part was at hand: compressed in one go.
            (Some(level), RespBody::Parts(parts))
                if total_len(&parts) <= coding::GZIP_INLINE_MAX =>
            {
                let mut all = bytes::BytesMut::with_capacity(total_len(&parts));
                for p in &parts {
                    all.extend_from_slice(p);
                }
                RespBody::full(coding::gzip(&all, level))
            }
            (Some(level), body) => RespBody::Gzip(Box::new(crate::body::Gzip::new(body, level))),
        };
        match &body {
            RespBody::Parts(parts) => {
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(total_len(parts)));
            }
            RespBody::Full(b) => {
                let len = b.as_ref().map_or(0, Bytes::len);
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(len));
            }
            _ => {}
        }
        *resp.body_mut() = body;
        resp
    }
}

fn decoded_or_logged(
    obj: &CachedObject,
    decoded: Result<Bytes, coding::DecodeError>,
) -> Option<Bytes> {
    match decoded {
        Ok(b) => Some(b),
        Err(e) => {
            crate::log_limited!(10, warn, url = %obj.url, error = %e, "stored body not decoded");
            None
        }
    }
}

fn total_len(parts: &std::collections::VecDeque<Bytes>) -> usize {
    parts.iter().map(Bytes::len).sum()
}

/// The gzip level to compress an assembled ESI page with for this client,
/// if it is to be: compression on, a media type of `compression.types`, no
/// `no-transform`, a client that accepts gzip, and a page (not an include
/// of another page: only the outermost is sent). The page is compressed at
/// each delivery, as it is assembled (see docs/ESI.md); the headers are
/// made to say so (`Content-Encoding: gzip`, `Vary: Accept-Encoding`; its
/// `ETag` is weak already).
fn page_gzip_level(ctx: &Task, headers: &mut HeaderMap) -> Option<u32> {
    let c = &ctx.live.config.compression;
    let compressible = c.enabled
        && ctx.esi.is_none()
        && Coding::of(headers) == Coding::Identity
        && c.compressible(headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes))
        && !coding::no_transform(headers);
    if !compressible {
        return None;
    }
    coding::vary_on_accept_encoding(headers);
    if !Accepted::of(&ctx.headers).allows(Coding::Gzip) {
        return None;
    }
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    Some(c.level)
}

#[cfg(test)]
mod tests {
    use super::hit_value;

    #[test]
    fn hit_counts_are_written_in_decimal() {
        assert_eq!(hit_value(0), "HIT 0");
        assert_eq!(hit_value(7), "HIT 7");
        assert_eq!(hit_value(1_234_567_890), "HIT 1234567890");
        assert_eq!(hit_value(u64::MAX), format!("HIT {}", u64::MAX).as_str());
    }
}
