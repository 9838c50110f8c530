//! A stored response. Immutable once built (shared as `Arc`); a refresh
//! (a 304) makes a new object that shares the old body bytes.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, ETAG, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use super::freshness::{Freshness, TARGETED_FIELDS};
use super::vary::Variant;

/// Fixed bytes charged per object on top of its headers and body.
const OVERHEAD: usize = 256;

/// A stored response.
#[derive(Debug)]
pub struct CachedObject {
    /// The response status.
    pub status: StatusCode,
    /// The stored headers as the backend sent them (hop-by-hop removed);
    /// used for revalidation and 304 merges.
    pub headers: HeaderMap,
    /// The headers delivered to clients: `headers` without the targeted
    /// cache-control fields, with an exact `Content-Length`.
    pub deliver_headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// RFC 9111 timing.
    pub freshness: Freshness,
    /// The request header values this variant was stored for.
    pub variant: Variant,
    /// When the store should let go of it.
    pub expires: Instant,
    /// Times delivered from the cache.
    hits: AtomicU64,
    weight: usize,
}

impl CachedObject {
    /// Builds an object from a backend response.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
        variant: Variant,
    ) -> CachedObject {
        let mut deliver_headers = headers.clone();
        for name in TARGETED_FIELDS {
            deliver_headers.remove(name);
        }
        deliver_headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let header_bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let weight = OVERHEAD + 2 * header_bytes + body.len() + variant.weight();
        // Retention counts from now, not from the response's own clock.
        let resident = SystemTime::now()
            .duration_since(freshness.response_time)
            .unwrap_or_default();
        let expires = Instant::now() + freshness.retention().saturating_sub(resident);
        CachedObject {
            status,
            headers,
            deliver_headers,
            body,
            freshness,
            variant,
            expires,
            hits: AtomicU64::new(0),
            weight,
        }
    }

    /// A copy with the headers and freshness of a 304 revalidation; the body
    /// bytes are shared, the hit count carries over.
    pub fn refreshed(&self, headers: HeaderMap, freshness: Freshness) -> CachedObject {
        let obj = CachedObject::new(
            self.status,
            headers,
            self.body.clone(),
            freshness,
            self.variant.clone(),
        );
        obj.hits.store(self.hits(), Ordering::Relaxed);
        obj
    }

    /// Counts one delivery from cache and returns the new count.
    pub fn record_hit(&self) -> u64 {
        self.hits.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Times delivered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Bytes this object is charged against the storage budget.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The stored `ETag`.
    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(ETAG)
    }

    /// The stored `Last-Modified`.
    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }

    /// Whether a conditional request can revalidate it.
    pub fn has_validator(&self) -> bool {
        self.etag().is_some() || self.last_modified().is_some()
    }
}
