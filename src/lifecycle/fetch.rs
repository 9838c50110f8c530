//! One backend fetch in progress (Varnish's `busyobj`): what every step of
//! a fetch — `vcl_backend_fetch`, the exchange with its retries,
//! `vcl_backend_error`, `vcl_backend_response`, storing — works on, in one
//! value instead of a parameter list passed from step to step.

use std::sync::Arc;

use super::{Bereq, Live};
use crate::cache::{CacheKey, CachedObject};
use crate::fetch::inflight::LeaderGuard;
use crate::fetch::req_body::{FaultSlot, ReqBody};

/// A fetch for the cache (a miss, a revalidation, a background refresh)
/// or a pass.
pub struct Fetch {
    /// The settings and policy of the request it is for.
    pub live: Arc<Live>,
    /// The backend request (`bereq.*`), as the backend hooks leave it.
    pub bereq: Bereq,
    /// The body to send: taken by each attempt, put back when it can be
    /// sent again (a streamed body cannot: no retry after it).
    pub body: Option<ReqBody>,
    /// Where a client's streamed body records why it failed (a pass).
    pub fault: Option<Arc<FaultSlot>>,
    /// The key the answer is stored under (a fetch for the cache).
    pub key: Option<CacheKey>,
    /// The stale object this fetch revalidates, or that stands in when
    /// the fetch fails (stale-if-error).
    pub stale: Option<Arc<CachedObject>>,
    /// The coalesced requests waiting on this fetch: told how it ended.
    pub guard: Option<LeaderGuard>,
    /// Bans added after this one apply to what the fetch stores.
    pub ban_stamp: u64,
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("bereq", &self.bereq)
            .field("key", &self.key)
            .field("revalidating", &self.stale.is_some())
            .field("leading", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}
