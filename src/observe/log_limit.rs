//! Rate limits for log lines that clients (or a failing backend) can
//! trigger at will: under attack or during an outage, unbounded logging
//! would stall the worker threads on I/O exactly when they are needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lets through at most `per_second` events per second; counts the rest so
/// the next line that gets through can say how many were dropped.
///
/// One per call site, as a `static` ([`log_limited!`](crate::log_limited)
/// declares it).
#[derive(Debug)]
pub struct LogLimit {
    per_second: u64,
    /// The current second (since the epoch) in the high 32 bits, events in
    /// it in the low 32: one atomic word, no lock.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    /// A limit of `per_second` lines.
    pub const fn new(per_second: u64) -> LogLimit {
        LogLimit {
            per_second,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being the events
    /// suppressed since the last one logged; `None` when it must be dropped.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            & 0xffff_ffff;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (sec, n) = (cur >> 32, cur & 0xffff_ffff);
            let next = if sec == now {
                if n >= self.per_second {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                cur + 1
            } else {
                (now << 32) | 1
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => cur = seen,
            }
        }
    }
}

/// Logs through `tracing` at most `$per_second` times a second from this
/// call site, adding a `suppressed` field with the lines dropped since the
/// last one: `log_limited!(10, info, peer = %p, "message")`.
#[macro_export]
macro_rules! log_limited {
    ($per_second:literal, $level:ident, $($rest:tt)+) => {{
        static LIMIT: $crate::observe::log_limit::LogLimit =
            $crate::observe::log_limit::LogLimit::new($per_second);
        if let Some(suppressed) = LIMIT.allow() {
            tracing::$level!(suppressed, $($rest)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_through_the_limit_then_counts_the_rest() {
        let limit = LogLimit::new(3);
        let allowed: Vec<_> = (0..10).filter_map(|_| limit.allow()).collect();
        // All ten land in one second unless the clock ticks in between; then
        // the new second lets some through again, reporting the dropped.
        assert!(allowed.len() >= 3 && allowed.len() <= 6, "{allowed:?}");
        assert_eq!(&allowed[..3], &[0, 0, 0]);
        if allowed.len() == 3 {
            assert_eq!(limit.suppressed.load(Ordering::Relaxed), 7);
        }
    }
}
