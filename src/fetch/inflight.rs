//! Request coalescing: one backend fetch per key at a time.
//!
//! The first request for a key becomes the leader and fetches; requests that
//! arrive meanwhile follow: they wait for the response head, then either read
//! the shared body as it streams in, or — when the answer cannot be shared
//! (uncacheable, a Vary mismatch) — go to the backend on their own, in
//! parallel.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use super::broadcast::Broadcast;
use crate::cache::freshness::Freshness;
use crate::cache::object::Provenance;
use crate::cache::vary::Variant;
use crate::cache::CacheKey;

/// The head of a shared (storable) response, and its streaming body.
#[derive(Debug)]
pub struct SharedHead {
    /// Status.
    pub status: StatusCode,
    /// Headers as delivered to clients.
    pub headers: HeaderMap,
    /// Freshness of the object being stored.
    pub freshness: Freshness,
    /// The variant the object is stored for.
    pub variant: Variant,
    /// The body as it streams in.
    pub body: Arc<Broadcast>,
    /// Body length when the backend said so.
    pub size: Option<u64>,
    /// The request it was fetched for.
    pub from: Provenance,
    /// How it will be stored compressed, if it will be: clients that
    /// accept gzip get the stream gzip'd as it arrives meanwhile (see
    /// `pipeline::deliver::shared`).
    pub store_as: Option<crate::http::coding::Encoder>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broadcast")
    }
}

/// How a fetch turned out, as seen by its followers.
#[derive(Debug, Clone)]
pub enum FlightState {
    /// The leader is still waiting for the response head.
    Pending,
    /// A storable response: read it from the shared body.
    Shared(Arc<SharedHead>),
    /// An object is in the store now (e.g. a 304 refreshed one): look again.
    Stored,
    /// The answer cannot be shared: fetch on your own.
    NotShared,
    /// The fetch failed with this status (and a short reason).
    Failed(StatusCode, Bytes),
    /// The leader went away before a head arrived: try again.
    Abandoned,
}

/// A fetch in progress.
#[derive(Debug)]
pub struct Flight {
    state: watch::Sender<FlightState>,
}

impl Flight {
    /// Waits until the fetch has a head (or failed), and returns what it is.
    pub async fn outcome(&self) -> FlightState {
        let mut rx = self.state.subscribe();
        let outcome = match rx.wait_for(|s| !matches!(s, FlightState::Pending)).await {
            Ok(s) => s.clone(),
            Err(_) => FlightState::Abandoned,
        };
        outcome
    }
}

/// Leader or follower of a fetch.
pub enum Role {
    /// Fetch, then publish through the guard.
    Leader(LeaderGuard),
    /// Wait on this flight.
    Follower(Arc<Flight>),
}

/// The fetches in progress, by key.
#[derive(Default)]
pub struct Inflight {
    map: Mutex<HashMap<CacheKey, Arc<Flight>>>,
}

impl Inflight {
    /// An empty table.
    pub fn new() -> Arc<Inflight> {
        Arc::new(Inflight::default())
    }

    /// Joins the fetch for `key` or starts one.
    pub fn join_or_lead(self: &Arc<Self>, key: &CacheKey) -> Role {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(key) {
            return Role::Follower(f.clone());
        }
        let flight = Arc::new(Flight {
            state: watch::channel(FlightState::Pending).0,
        });
        map.insert(key.clone(), flight.clone());
        Role::Leader(LeaderGuard {
            table: self.clone(),
            key: key.clone(),
            flight,
            done: false,
        })
    }

    /// Whether a fetch for `key` is in progress.
    pub fn is_busy(&self, key: &CacheKey) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Waits until no fetch of `key` is in progress: the one running now
    /// has stored its object (or given up). Returns at once when none runs.
    pub async fn finished(&self, key: &CacheKey) {
        let Some(flight) = self.flight(key) else {
            return;
        };
        let mut rx = flight.state.subscribe();
        // The leader wakes the flight's receivers when it leaves the table
        // (see `LeaderGuard::leave`), whatever state it ends in.
        while self
            .flight(key)
            .is_some_and(|current| Arc::ptr_eq(&current, &flight))
        {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn flight(&self, key: &CacheKey) -> Option<Arc<Flight>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Number of fetches in progress.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no fetch is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Held by the leader. Dropped without `finish`, it tells followers the
/// fetch was abandoned so one of them takes over.
pub struct LeaderGuard {
    table: Arc<Inflight>,
    key: CacheKey,
    flight: Arc<Flight>,
    done: bool,
}

impl LeaderGuard {
    /// Publishes the head; followers wake. The flight stays joinable (new
    /// requests become followers) until `finish`.
    pub fn publish(&self, state: FlightState) {
        self.flight.state.send_replace(state);
    }

    /// Publishes a final state and leaves the table: later requests look in
    /// the store or start a new fetch.
    pub fn finish(mut self, state: Option<FlightState>) {
        if let Some(s) = state {
            self.publish(s);
        }
        self.leave();
        self.done = true;
    }

    fn leave(&self) {
        let mut map = self.table.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
        drop(map);
        // Wake whoever waits for this fetch to end (`Inflight::finished`).
        self.flight.state.send_modify(|_| {});
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.done {
            self.flight.state.send_if_modified(|s| {
                if matches!(s, FlightState::Pending) {
                    *s = FlightState::Abandoned;
                    true
                } else {
                    false
                }
            });
            self.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn finished_waits_for_the_leader_to_leave_whatever_it_ends_with() {
        let table = Inflight::new();
        let key = CacheKey::for_request("a.test", "/f");
        table.finished(&key).await; // nothing in flight: at once
        for end in [Some(FlightState::Stored), None] {
            let Role::Leader(guard) = table.join_or_lead(&key) else {
                panic!("first request leads");
            };
            let waiter = {
                let (table, key) = (table.clone(), key.clone());
                tokio::spawn(async move { table.finished(&key).await })
            };
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished(), "returned while the fetch runs");
            guard.finish(end);
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken when the leader left")
                .expect("waiter task");
        }
    }
}
