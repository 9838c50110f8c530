//! How a response was served ([`CacheOutcome`]) and what `vcl_deliver`
//! reads of the object behind it ([`ObjMeta`]).

use std::time::{Duration, SystemTime};

use crate::cache::freshness::Freshness;

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
