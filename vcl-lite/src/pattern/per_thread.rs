//! A linear regular expression with a copy per thread.
//!
//! `regex::Regex` keeps the scratch space of its searches in a pool whose
//! fast path belongs to the first thread that searched; every other thread
//! takes a cache from the pool and puts it back through a mutex on each
//! search (~440 instructions a search on lacquer's second worker, counted
//! with callgrind). A host runs one policy on several worker threads, so
//! each thread searches with a copy of its own: a copy shares the compiled
//! program and has its own pool, owned by the thread that searches with it
//! first. Copies are made on a thread's first search (an idle copy with its
//! pool is ~1.6 KiB), so a pattern costs a slot of ~40 bytes per
//! machine thread until then.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Threads numbered in the order they first search, from 0.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot: its number, in the order threads first search,
    /// modulo [`slots`].
    static SLOT: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % slots();
}

/// Slots per pattern: the machine's threads and two more (a host's main
/// and admin threads), at most 64. Threads beyond share slots, which is
/// correct, only slower (all but the first sharer take the pool's slow
/// path).
fn slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get() + 2)
            .min(64)
    })
}

/// This thread's slot.
#[inline]
fn slot() -> usize {
    SLOT.with(|s| *s)
}

/// A `regex::Regex` with a copy per thread.
#[derive(Clone)]
pub(crate) struct PerThread {
    re: regex::Regex,
    copies: Box<[OnceLock<regex::Regex>]>,
}

impl std::fmt::Debug for PerThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PerThread").field(&self.re.as_str()).finish()
    }
}

impl PerThread {
    /// `re`, to be copied for each thread that searches with it.
    pub(crate) fn new(re: regex::Regex) -> PerThread {
        PerThread {
            re,
            copies: (0..slots()).map(|_| OnceLock::new()).collect(),
        }
    }

    /// This thread's copy, made on its first search.
    #[inline]
    pub(crate) fn get(&self) -> &regex::Regex {
        self.copies[slot()].get_or_init(|| self.re.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_searches_with_its_own_copy() {
        let re = PerThread::new(regex::Regex::new(r"^/(admin|cart)(/|$)").unwrap());
        // More threads than slots: some share one.
        let threads = slots() + 3;
        let seen: Vec<(usize, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let re = &re;
                    s.spawn(move || {
                        for _ in 0..100 {
                            assert!(re.get().is_match("/admin/x"), "thread {i}");
                            assert!(!re.get().is_match("/shop"), "thread {i}");
                            assert_eq!(re.get().find("/cart").map(|m| m.end()), Some(5));
                        }
                        (slot(), std::ptr::from_ref(re.get()) as usize)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // A copy per slot: threads in one slot share it, threads in two
        // slots never do (other tests' threads take numbers too, so which
        // slots these threads get is not known beforehand).
        for (a, pa) in &seen {
            for (b, pb) in &seen {
                assert_eq!(a == b, pa == pb, "{seen:?}");
            }
        }
        let used: std::collections::HashSet<_> = seen.iter().map(|(slot, _)| slot).collect();
        assert!(used.len() > 1, "{seen:?}");
        // Copies are made only for the slots that searched.
        let made = re.copies.iter().filter(|c| c.get().is_some()).count();
        assert_eq!(made, used.len());
    }
}
