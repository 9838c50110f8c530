//! The wall clock every freshness decision reads: the system's, plus an
//! offset that tests move forward instead of sleeping until an object
//! expires. In production the offset stays zero (one relaxed atomic load
//! per reading).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A shared clock: copies read the same offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time.
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    /// The time now.
    pub fn now(&self) -> SystemTime {
        match self.offset_ms.load(Ordering::Relaxed) {
            0 => SystemTime::now(),
            ms => SystemTime::now() + Duration::from_millis(ms),
        }
    }

    /// Moves the clock forward by `by` (tests: an object's TTL passes
    /// without waiting for it). Objects are judged by this clock; the
    /// store still evicts by real time, never earlier than the clock says.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_copy() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(Duration::from_secs(60));
        let after = copy.now();
        let moved = after.duration_since(before).unwrap_or_default();
        assert!(moved >= Duration::from_secs(60), "{moved:?}");
    }
}
