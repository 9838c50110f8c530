//! The timer client connections run their header-read timeout on
//! (`server.header_read_timeout`: the slow-client guard and the idle
//! keep-alive limit).
//!
//! The timeout is armed for every request: when the connection starts
//! waiting for a head, dropped once it has come. On tokio's timer that is
//! a timer-wheel entry registered and removed per request, plus a clock
//! read: ~700 instructions of a ~18,000-instruction cache hit (callgrind,
//! with hyper's server side). A timeout of seconds needs no such
//! precision, so this timer keeps its deadlines in ticks of an eighth of
//! the timeout (10 ms to 500 ms) in a slab, and one task per timer walks
//! the slab each tick and wakes the connections whose deadline has passed.
//! Registering is a slab slot under an uncontended lock (each worker
//! thread has its own timer).
//!
//! A deadline never fires early: it is rounded up to the next tick and
//! compared with the clock read by the ticking task; it fires at most
//! about two ticks late (a quarter of the timeout).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A timer with ticks fit for a timeout of `timeout` (see the module's
/// documentation). Cheap to clone: clones share one slab and one ticking
/// task.
#[derive(Clone)]
pub struct CoarseTimer {
    wheel: Arc<Wheel>,
}

struct Wheel {
    /// Time zero of the ticks.
    origin: Instant,
    /// The tick in nanoseconds (10 ms to 500 ms: never 0).
    tick_nanos: u64,
    /// Ticks since `origin` as last seen by the ticking task.
    now: AtomicU64,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Slot>,
    /// Indexes of unused entries.
    free: Vec<usize>,
    /// Whether the ticking task runs.
    ticking: bool,
}

struct Slot {
    /// Tick at or after which it fires; `u64::MAX` when unused.
    deadline: u64,
    fired: bool,
    waker: Option<Waker>,
}

impl CoarseTimer {
    /// A timer for timeouts of about `timeout`.
    pub fn new(timeout: Duration) -> CoarseTimer {
        let tick = (timeout / 8).clamp(Duration::from_millis(10), Duration::from_millis(500));
        CoarseTimer {
            wheel: Arc::new(Wheel {
                origin: clock(),
                tick_nanos: u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX),
                now: AtomicU64::new(0),
                slots: Mutex::new(Slots::default()),
            }),
        }
    }
}

impl Wheel {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding it leaves the slab consistent (every
        // change is one assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticks_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        // In u64 nanoseconds (584 years): a 128-bit division is a call.
        let nanos = since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()));
        nanos / self.tick_nanos
    }

    /// Ticks since `origin`, read from the clock, and published.
    fn advance(&self) -> u64 {
        let now = self.ticks_at(clock());
        self.now.fetch_max(now, Ordering::Relaxed);
        now
    }

    /// Wakes every registered sleep whose deadline has passed.
    fn fire(&self, now: u64) {
        let mut due = Vec::new();
        {
            let mut slots = self.slots();
            for slot in slots.entries.iter_mut() {
                if slot.deadline <= now && !slot.fired {
                    slot.fired = true;
                    due.extend(slot.waker.take());
                }
            }
        }
        due.into_iter().for_each(Waker::wake);
    }
}

/// Wakes due sleeps every tick while the timer lives.
async fn tick(wheel: Weak<Wheel>, period: Duration) {
    crate::background::every_while_alive(wheel, period, |wheel| {
        let now = wheel.advance();
        wheel.fire(now);
        std::future::ready(())
    })
    .await;
}

impl CoarseTimer {
    /// A sleep of `duration` from now.
    pub fn sleep(&self, duration: Duration) -> CoarseSleep {
        self.sleep_until(clock() + duration)
    }

    /// A sleep until `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> CoarseSleep {
        // Rounded up: a deadline inside a tick fires at its end.
        let ticks = self.wheel.ticks_at(deadline).saturating_add(1);
        CoarseSleep {
            wheel: self.wheel.clone(),
            deadline: ticks,
            slot: None,
        }
    }
}

/// A deadline on a [`CoarseTimer`]: resolves once it has passed.
pub struct CoarseSleep {
    wheel: Arc<Wheel>,
    deadline: u64,
    /// Its slab entry, once polled before the deadline.
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut slots = this.wheel.slots();
        match this.slot {
            Some(i) => {
                let slot = &mut slots.entries[i];
                if slot.fired {
                    return Poll::Ready(());
                }
                super::remember(&mut slot.waker, cx.waker());
            }
            None => {
                if this.wheel.now.load(Ordering::Relaxed) >= this.deadline {
                    return Poll::Ready(());
                }
                let slot = Slot {
                    deadline: this.deadline,
                    fired: false,
                    waker: Some(cx.waker().clone()),
                };
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.entries[i] = slot;
                        i
                    }
                    None => {
                        slots.entries.push(slot);
                        slots.entries.len() - 1
                    }
                };
                this.slot = Some(i);
            }
        }
        if !slots.ticking {
            // On the runtime polling this (hyper's connections run on
            // one); without one there is nothing to tick on, and the next
            // poll tries again rather than panicking.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                slots.ticking = true;
                let period = Duration::from_nanos(this.wheel.tick_nanos);
                runtime.spawn(tick(Arc::downgrade(&this.wheel), period));
            }
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            let mut slots = self.wheel.slots();
            slots.entries[i] = Slot {
                deadline: u64::MAX,
                fired: true,
                waker: None,
            };
            slots.free.push(i);
        }
    }
}

/// The time, from tokio's clock (the system's, or a test's paused one).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_waker() -> Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        Waker::from(Arc::new(Noop))
    }

    /// A sleep fires, never before its deadline; dropped ones free their
    /// entry for the next.
    #[tokio::test]
    async fn sleeps_fire_never_before_their_deadline() {
        let timer = CoarseTimer::new(Duration::from_millis(800));
        for wait in [300, 130, 1] {
            let start = clock();
            timer.sleep_until(start + Duration::from_millis(wait)).await;
            // Never early; how late depends on this machine's load (two
            // ticks of 100 ms when it is idle).
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(wait), "fired early: {took:?}");
        }
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..3 {
            let mut held = Vec::new();
            for _ in 0..100 {
                let mut s = timer.sleep_until(clock() + Duration::from_secs(60));
                assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
                held.push(s);
            }
        }
        assert!(timer.wheel.slots().entries.len() <= 101);
    }

    /// Dropped before its deadline, a sleep wakes nothing; one whose
    /// deadline passed while its task was elsewhere is ready when polled.
    #[tokio::test]
    async fn dropped_sleeps_stay_quiet_and_passed_ones_are_ready() {
        let timer = CoarseTimer::new(Duration::from_millis(80));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut kept = timer.sleep_until(clock() + Duration::from_millis(80));
        let mut gone = timer.sleep_until(clock() + Duration::from_millis(80));
        assert!(Pin::new(&mut kept).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut gone).poll(&mut cx).is_pending());
        drop(gone);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(Pin::new(&mut kept).poll(&mut cx).is_ready());
        let fired = timer
            .wheel
            .slots()
            .entries
            .iter()
            .filter(|s| s.fired && s.deadline != u64::MAX)
            .count();
        assert_eq!(fired, 1, "only the kept sleep fired");
        let mut late = timer.sleep_until(clock() - Duration::from_millis(50));
        assert!(Pin::new(&mut late).poll(&mut cx).is_ready());
    }

    /// Polled where no tokio runtime runs, a sleep waits (nothing can
    /// tick) instead of panicking, and starts ticking once polled on one.
    #[test]
    fn polled_outside_a_runtime_it_waits_without_a_panic() {
        let timer = CoarseTimer::new(Duration::from_millis(80));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut s = timer.sleep_until(clock() + Duration::from_millis(20));
        assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
        assert!(!timer.wheel.slots().ticking);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        // The same sleep, polled on a runtime, starts the ticking and fires.
        runtime.block_on(s);
        assert!(timer.wheel.slots().ticking);
    }
}
