//! The wall clock every freshness decision reads: the system's, plus an
//! offset that tests move forward instead of sleeping until an object
//! expires, and which tests may stop (so a one-second TTL does not run out
//! while a loaded machine is slow). In production it is never stopped and
//! the offset stays zero (two relaxed atomic loads per reading).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// A shared clock: copies read the same offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time.
    offset_ms: Arc<AtomicU64>,
    /// Set by [`Clock::stop`]: the time stands still there (plus the offset).
    stopped_at: Arc<OnceLock<SystemTime>>,
}

impl Clock {
    /// The time now.
    pub fn now(&self) -> SystemTime {
        let base = match self.stopped_at.get() {
            Some(at) => *at,
            None => SystemTime::now(),
        };
        match self.offset_ms.load(Ordering::Relaxed) {
            0 => base,
            ms => base + Duration::from_millis(ms),
        }
    }

    /// Stops the clock where it is (tests): from now on only
    /// [`Clock::advance`] moves it. A second call changes nothing.
    pub fn stop(&self) {
        let _ = self.stopped_at.set(SystemTime::now());
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
    fn a_stopped_clock_moves_only_when_advanced() {
        let clock = Clock::default();
        clock.stop();
        let at = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), at);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), at + Duration::from_secs(2));
    }

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
