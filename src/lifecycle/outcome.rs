//! How a response was served ([`CacheOutcome`]) and what `vcl_deliver`
//! reads of the object behind it ([`ObjMeta`]).

use std::time::{Duration, SystemTime};

use crate::cache::freshness::Freshness;

/// How a response was served: the `X-Cache` header, the access log and the
/// metrics. Carried as a value from where the response is made to where it
/// is counted, so a policy that rewrites or removes `X-Cache` in
/// `vcl_deliver` changes what the client sees, not what is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheOutcome {
    /// From a fresh stored object.
    Hit,
    /// Fetched for this request (or a coalesced one).
    Miss,
    /// Not cacheable: straight from the backend.
    Pass,
    /// A stale object, in grace or replacing a backend error.
    Stale,
    /// Answered by lacquer itself: errors, refusals, purges, `synth()`,
    /// the health check. No `X-Cache` header.
    #[default]
    Synth,
    /// A pipe: the connection switched protocols (WebSockets) and bytes
    /// flow both ways between client and backend.
    Pipe,
}

impl CacheOutcome {
    /// The name used in headers and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "HIT",
            CacheOutcome::Miss => "MISS",
            CacheOutcome::Pass => "PASS",
            CacheOutcome::Stale => "STALE",
            CacheOutcome::Synth => "SYNTH",
            CacheOutcome::Pipe => "PIPE",
        }
    }

    /// Every outcome, in the order of [`CacheOutcome::index`].
    pub const ALL: [CacheOutcome; 6] = [
        CacheOutcome::Hit,
        CacheOutcome::Miss,
        CacheOutcome::Pass,
        CacheOutcome::Stale,
        CacheOutcome::Synth,
        CacheOutcome::Pipe,
    ];

    /// A dense index (0..6), for counters.
    pub fn index(self) -> usize {
        self as usize
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
    /// How the response was served.
    pub outcome: CacheOutcome,
    /// A number naming the stored object (the same on every hit on it; 0
    /// when there is none): the second number of `X-Varnish` on hits.
    pub id: u64,
    /// The response was made without the headers `vcl_deliver` removes
    /// first ([`super::Policy::deliver_removes`]): the policy runs it
    /// without those removals.
    pub removed_early: bool,
}

impl ObjMeta {
    /// A stored (or just fetched) object with this freshness, delivered
    /// `hits` times, served as `outcome`.
    pub fn of(freshness: &Freshness, hits: u64, now: SystemTime, outcome: CacheOutcome) -> ObjMeta {
        let age = freshness.age(now);
        ObjMeta {
            hits,
            age,
            ttl: freshness.ttl.as_secs_f64() - age.as_secs_f64(),
            grace: freshness.grace,
            keep: freshness.keep,
            uncacheable: false,
            outcome,
            // When it arrived, in microseconds: distinct per object, stable
            // across its hits.
            id: freshness
                .response_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, object_id),
            removed_early: false,
        }
    }

    /// Only how the response was served (when no hook reads `obj.*`).
    pub fn served(outcome: CacheOutcome) -> ObjMeta {
        ObjMeta {
            outcome,
            ..ObjMeta::default()
        }
    }

    /// A response that is not a stored object.
    pub fn uncacheable(outcome: CacheOutcome) -> ObjMeta {
        ObjMeta {
            uncacheable: true,
            outcome,
            ..ObjMeta::default()
        }
    }
}

/// An object's number in `X-Varnish`: when it arrived, in microseconds,
/// modulo 10^9. Written without 128-bit arithmetic (`as_micros() % 10^9`
/// divides a `u128` on every delivery under a policy): whole seconds
/// modulo 1000 are the same microseconds modulo 10^9.
fn object_id(since_epoch: std::time::Duration) -> u64 {
    (since_epoch.as_secs() % 1000) * 1_000_000 + u64::from(since_epoch.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::object_id;
    use std::time::Duration;

    #[test]
    fn object_ids_are_arrival_microseconds_modulo_a_billion() {
        for d in [
            Duration::ZERO,
            Duration::new(999, 999_999_999),
            Duration::new(1000, 1_000),
            Duration::new(1_764_892_800, 123_456_789),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            assert_eq!(
                object_id(d),
                (d.as_micros() % 1_000_000_000) as u64,
                "{d:?}"
            );
        }
    }
}
