//! lookup: what the store holds for a request, classified by freshness.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Task;
use crate::cache::freshness::{FreshState, Freshness};
use crate::cache::{CacheKey, CachedObject, Found, Store};
use crate::invalidate::bans::BanList;

/// The outcome of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh object: deliver it.
    Hit(Arc<CachedObject>),
    /// Stale but within grace: deliver it and refresh in the background.
    Grace(Arc<CachedObject>),
    /// Stale beyond grace but retained: revalidate it (and keep it to replace
    /// an error within stale-if-error).
    Stale(Arc<CachedObject>),
    /// Nothing stored: fetch, coalesced.
    Miss,
    /// The last answer was uncacheable: fetch without coalescing. The
    /// marker's end.
    HitForMiss(Instant),
}

/// Looks `key` up for `req`. An object a ban matches is removed here and
/// the lookup is a miss.
pub fn lookup(store: &Store, bans: &BanList, key: &CacheKey, req: &Task) -> Lookup {
    match store.lookup(key, &req.headers) {
        Found::Object(obj) => {
            if bans.is_banned(&obj, Some(&req.headers)) {
                store.remove_object(key, &obj);
                return Lookup::Miss;
            }
            if req.always_miss {
                return Lookup::Stale(obj);
            }
            match state_for(&obj.freshness, req, req.live.clock.now()) {
                FreshState::Fresh => Lookup::Hit(obj),
                FreshState::Grace => Lookup::Grace(obj),
                FreshState::Stale => Lookup::Stale(obj),
            }
        }
        Found::HitForMiss(until) => Lookup::HitForMiss(until),
        Found::Nothing => Lookup::Miss,
    }
}

/// The object's state for this request: its own, unless the policy
/// narrowed it with `req.ttl` (objects older than that are not fresh) or
/// `req.grace` (at most that much grace).
fn state_for(f: &Freshness, req: &Task, now: SystemTime) -> FreshState {
    if req.max_ttl.is_none() && req.max_grace.is_none() {
        return f.state(now);
    }
    let mut narrowed = f.clone();
    if let Some(ttl) = req.max_ttl {
        narrowed.ttl = narrowed.ttl.min(ttl);
    }
    if let Some(grace) = req.max_grace {
        narrowed.grace = narrowed.grace.min(grace);
    }
    narrowed.state(now)
}
