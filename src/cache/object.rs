//! A stored response. Immutable once built (shared as `Arc`); a refresh
//! (a 304) makes a new object that shares the old body bytes.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ETAG, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::directives::NOT_DELIVERED;
use super::fields::StoredFields;
use super::freshness::Freshness;
use super::vary::Variant;
use crate::esi::parse::{Segment, Template};
use crate::http::coding::Coding;

/// Fixed bytes charged per object on top of its header fields and body:
/// the object and entry structs, moka's per-entry bookkeeping, the key,
/// allocator rounding. Set from measured resident memory (see
/// benches/README.md, "Memory per object"): the budget errs on the side of
/// the real memory.
const OVERHEAD: usize = 1024;

/// Bytes charged per stored header field besides its text: its name and
/// value handles in [`StoredFields`] (72 bytes) and its share of the
/// values' buffer's bookkeeping.
const FIELD_OVERHEAD: usize = 80;

/// Bytes charged per surrogate key of an object, on top of twice the key's
/// length (the object's copy and the index's). Counted for a key unique to
/// the object (the common worst case): the object's boxed copy (16 + a
/// 32-byte allocation), the index's tag entry (~64 bytes in a table at most
/// 7/8 full, doubling: up to ~146), the tag's copy (32), and its map of
/// cache keys with a count (a 128-byte allocation): ~320 bytes. A key shared
/// by many objects costs less per object (~40 bytes in its map).
const TAG_OVERHEAD: usize = 320;

/// Which response headers carry surrogate keys, and whether they are
/// delivered.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Headers whose space-separated values tag the object.
    pub headers: Vec<HeaderName>,
    /// Remove those headers before delivery.
    pub strip: bool,
    /// Deliver the `xkey` header even when stripping: the policy imports
    /// vmod xkey, which leaves it, as Varnish does (the policy unsets it if
    /// it wants).
    pub keep_xkey: bool,
    /// Most keys kept per object (`cache.max_surrogate_keys`); the first
    /// ones, in header order, are kept.
    pub max_keys: usize,
}

impl Default for KeySpec {
    /// No key headers; at most 1024 keys per object (the setting's default).
    fn default() -> Self {
        KeySpec {
            headers: Vec::new(),
            strip: false,
            keep_xkey: false,
            max_keys: 1024,
        }
    }
}

impl KeySpec {
    /// The surrogate keys named in `headers` (duplicates once), at most
    /// `max_keys` of them, and how many more were ignored.
    pub fn keys_of(&self, headers: &HeaderMap) -> (Box<[Box<str>]>, usize) {
        let mut keys: Vec<Box<str>> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut ignored = 0;
        for name in &self.headers {
            for v in headers.get_all(name) {
                let Ok(v) = v.to_str() else { continue };
                for k in super::tags::parse_keys(v) {
                    if seen.insert(k) {
                        if keys.len() < self.max_keys {
                            keys.push(k.into());
                        } else {
                            ignored += 1;
                        }
                    }
                }
            }
        }
        (keys.into_boxed_slice(), ignored)
    }

    /// Removes the key headers from `headers` when configured to.
    pub fn strip_from(&self, headers: &mut HeaderMap) {
        if self.strip {
            let stripped = self
                .headers
                .iter()
                .filter(|name| !(self.keep_xkey && *name == "xkey"));
            crate::http::headers::remove_named(headers, stripped);
        }
    }
}

/// A stored response.
#[derive(Debug)]
pub struct CachedObject {
    /// The response status.
    pub status: StatusCode,
    /// The header fields: those delivered to clients (the backend's,
    /// hop-by-hop removed, without the fields meant for this cache, with
    /// an exact `Content-Length` and a weak `ETag` on ESI pages), and the
    /// backend's fields withheld from them (targeted cache control,
    /// `Surrogate-Control`, stripped surrogate keys, the strong `ETag` of
    /// an ESI page).
    pub fields: StoredFields,
    /// The body.
    pub body: Bytes,
    /// RFC 9111 timing.
    pub freshness: Freshness,
    /// The request header values this variant was stored for.
    pub variant: Variant,
    /// When the store should let go of it.
    pub expires: Instant,
    /// Surrogate keys (tags) for purges by key.
    pub tags: Box<[Box<str>]>,
    /// Surrogate keys the response named beyond `cache.max_surrogate_keys`.
    pub ignored_tags: u32,
    /// The URL it was fetched for (bans: `req.url`).
    pub url: Box<str>,
    /// The Host it was fetched for (bans: `req.http.host`).
    pub host: Box<str>,
    /// The newest ban this object has been checked against (see
    /// `invalidate::bans`).
    pub ban_checked: AtomicU64,
    /// The ESI template, when the body is assembled at delivery.
    pub esi: Option<Arc<Template>>,
    /// The stored body's content coding.
    pub coding: Coding,
    /// lacquer coded the body (the origin sent it uncoded): the delivered
    /// `ETag` is weak, the origin's strong one is withheld for
    /// revalidation and for clients that get the uncoded bytes.
    pub compressed_here: bool,
    /// The body decoded, for insertion into ESI pages and for clients that
    /// do not accept its coding: filled on first use (`None` inside: it did
    /// not decode within the limit then), so a stored body is decoded once,
    /// not at every hit. Once filled it is part of [`CachedObject::weight`];
    /// the store is told to weigh the object again (`Store::recharge`).
    identity: tokio::sync::OnceCell<Option<Bytes>>,
    /// Times delivered from the cache.
    hits: AtomicU64,
    weight: usize,
}

/// Where an object came from: the request it was fetched for, and the
/// newest ban at that time.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The URL (path and query).
    pub url: Box<str>,
    /// The Host.
    pub host: Box<str>,
    /// The newest ban when it was fetched: older bans do not apply to it.
    pub ban_stamp: u64,
}

impl CachedObject {
    /// Builds an object from a backend response.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
        variant: Variant,
        keys: &KeySpec,
        from: Provenance,
    ) -> CachedObject {
        let body = compact_body(body);
        let (tags, ignored_tags) = keys.keys_of(&headers);
        let withhold = |name: &HeaderName| {
            NOT_DELIVERED.contains(name) || (keys.strip && keys.headers.contains(name))
        };
        let coding = Coding::of(&headers);
        let fields = StoredFields::pack(&headers, withhold, HeaderValue::from(body.len()));
        let tag_bytes: usize = tags.iter().map(|t| TAG_OVERHEAD + 2 * t.len()).sum();
        let weight = OVERHEAD
            + fields.len() * FIELD_OVERHEAD
            + fields.text_bytes()
            + body.len()
            + variant.weight()
            + tag_bytes;
        // Retention counts from now, not from the response's own clock.
        let resident = SystemTime::now()
            .duration_since(freshness.response_time)
            .unwrap_or_default();
        let expires = Instant::now() + freshness.retention().saturating_sub(resident);
        CachedObject {
            status,
            fields,
            body,
            freshness,
            variant,
            expires,
            tags,
            ignored_tags: u32::try_from(ignored_tags).unwrap_or(u32::MAX),
            url: from.url,
            host: from.host,
            ban_checked: AtomicU64::new(from.ban_stamp),
            esi: None,
            coding,
            compressed_here: false,
            identity: tokio::sync::OnceCell::new(),
            hits: AtomicU64::new(0),
            weight,
        }
    }

    /// Makes this an ESI page assembled from `template` at delivery: the
    /// delivered `ETag` is weakened (the assembled bytes vary with the
    /// fragments) and the template's size is charged.
    pub fn with_template(mut self, template: Arc<Template>) -> CachedObject {
        self.weaken_delivered_etag();
        self.weight += template_weight(&template.segments);
        self.esi = Some(template);
        self
    }

    /// Marks the body as coded by lacquer (see [`CachedObject::compressed_here`]):
    /// the delivered `ETag` is weakened.
    pub fn coded_here(mut self) -> CachedObject {
        self.weaken_delivered_etag();
        self.compressed_here = true;
        self
    }

    /// A weak `ETag` delivered; the strong one withheld, for revalidation
    /// with the backend.
    fn weaken_delivered_etag(&mut self) {
        self.fields.weaken_etag();
    }

    /// Where this object came from, stamped with `ban_stamp`.
    pub fn provenance(&self, ban_stamp: u64) -> Provenance {
        Provenance {
            url: self.url.clone(),
            host: self.host.clone(),
            ban_stamp,
        }
    }

    /// A copy with the headers and freshness of a 304 revalidation; the body
    /// bytes are shared, the hit count carries over.
    pub fn refreshed(
        &self,
        headers: HeaderMap,
        freshness: Freshness,
        keys: &KeySpec,
        ban_stamp: u64,
    ) -> CachedObject {
        let obj = CachedObject::new(
            self.status,
            headers,
            self.body.clone(),
            freshness,
            self.variant.clone(),
            keys,
            self.provenance(ban_stamp),
        );
        obj.hits.store(self.hits(), Ordering::Relaxed);
        // Same body bytes, same decoded form.
        let mut obj = obj;
        obj.identity = self.identity.clone();
        if self.compressed_here {
            obj = obj.coded_here();
        }
        match &self.esi {
            Some(t) => obj.with_template(t.clone()),
            None => obj,
        }
    }

    /// A copy that is stale from `now` on (a soft purge): grace, keep and
    /// stale-if-error still apply, so it is delivered while one fetch
    /// refreshes it.
    pub fn expired(&self, now: SystemTime) -> CachedObject {
        let mut freshness = self.freshness.clone();
        freshness.ttl = freshness.age(now).min(freshness.ttl);
        self.with_freshness(freshness, self.expires)
    }

    /// A copy whose freshness ends `ttl` from `now`, with this `grace` and
    /// `keep` (`None`: as they are): Varnish's `purge.soft(ttl, grace,
    /// keep)`, which may raise them too (as varnishd 7.1 does). An object
    /// that must be revalidated keeps no grace.
    pub fn softened(
        &self,
        now: SystemTime,
        ttl: Duration,
        grace: Option<Duration>,
        keep: Option<Duration>,
    ) -> CachedObject {
        let mut freshness = self.freshness.clone();
        freshness.ttl = freshness.age(now).saturating_add(ttl);
        if let Some(g) = grace.filter(|_| !freshness.must_revalidate) {
            freshness.grace = g;
        }
        if let Some(k) = keep {
            freshness.keep = k;
        }
        // Kept as long as the new values say (counted as `new` counts it).
        let resident = now
            .duration_since(freshness.response_time)
            .unwrap_or_default();
        let expires = Instant::now() + freshness.retention().saturating_sub(resident);
        self.with_freshness(freshness, expires)
    }

    /// A copy with other freshness, kept until `expires`.
    fn with_freshness(&self, freshness: Freshness, expires: Instant) -> CachedObject {
        CachedObject {
            status: self.status,
            fields: self.fields.clone(),
            body: self.body.clone(),
            expires,
            variant: self.variant.clone(),
            tags: self.tags.clone(),
            ignored_tags: self.ignored_tags,
            url: self.url.clone(),
            host: self.host.clone(),
            ban_checked: AtomicU64::new(self.ban_checked.load(Ordering::Acquire)),
            esi: self.esi.clone(),
            coding: self.coding,
            compressed_here: self.compressed_here,
            identity: self.identity.clone(),
            hits: AtomicU64::new(self.hits()),
            weight: self.weight,
            freshness,
        }
    }

    /// Whether the object carries surrogate key `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| &**t == tag)
    }

    /// Counts one delivery from cache and returns the new count.
    pub fn record_hit(&self) -> u64 {
        self.hits.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Times delivered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Bytes this object is charged against the storage budget: its body,
    /// headers, template and fixed overhead, plus its decoded body once
    /// there is one.
    pub fn weight(&self) -> usize {
        let decoded = self
            .identity
            .get()
            .and_then(Option::as_ref)
            .map_or(0, Bytes::len);
        self.weight + decoded
    }

    /// The cell holding the body decoded from gzip (see the field's docs):
    /// `get` it, or fill it once with `get_or_init`.
    pub fn identity(&self) -> &tokio::sync::OnceCell<Option<Bytes>> {
        &self.identity
    }

    /// The backend's value of response field `name` (withheld fields
    /// included; `Content-Length` is the stored body's).
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.fields.get(name)
    }

    /// [`CachedObject::header`] for a name given as text (any case).
    pub fn header_named(&self, name: &str) -> Option<&HeaderValue> {
        self.fields.get_named(name)
    }

    /// The backend's response fields (for merging a 304 into them).
    pub fn stored_headers(&self) -> HeaderMap {
        self.fields.backend_map()
    }

    /// The stored `ETag` (the backend's, strong even on an ESI page).
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.header(&ETAG)
    }

    /// The stored `Last-Modified`.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.header(&LAST_MODIFIED)
    }

    /// Whether a conditional request can revalidate it.
    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }
}

/// Bodies up to this size are copied into an allocation of their own when
/// stored (see [`compact_body`]).
const COMPACT_BODY_MAX: usize = 64 << 10;

/// A body as received is often a slice of the backend connection's read
/// buffer (8 KiB or more): storing the slice would keep that whole buffer
/// alive for the object's lifetime. Measured before this copy: 100k stored
/// 1 KiB objects held ~460 MiB resident for ~100 MiB charged. Small bodies
/// are copied (cheap); large ones are already built from many chunks or
/// dwarf any buffer they could pin.
fn compact_body(body: Bytes) -> Bytes {
    if body.len() <= COMPACT_BODY_MAX {
        Bytes::copy_from_slice(&body)
    } else {
        body
    }
}

/// Bytes a template adds to its object: its segments (the literal bytes
/// are slices of the body, already counted).
fn template_weight(segments: &[Segment]) -> usize {
    segments
        .iter()
        .map(|s| {
            64 + match s {
                Segment::Try { attempt, except } => {
                    template_weight(attempt) + template_weight(except)
                }
                Segment::Choose { whens, otherwise } => {
                    whens
                        .iter()
                        .map(|(_, b)| 64 + template_weight(b))
                        .sum::<usize>()
                        + template_weight(otherwise)
                }
                _ => 0,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_get_their_own_allocation() {
        let big = Bytes::from(vec![7u8; 8192]);
        let slice = big.slice(100..1124);
        let stored = compact_body(slice.clone());
        assert_eq!(stored, slice);
        assert_ne!(stored.as_ptr(), slice.as_ptr());
    }
}
