//! A linear regular expression with a copy per thread.
//!
//! `regex::Regex` keeps the scratch space of its searches in a pool whose
//! fast path belongs to the first thread that searched; every other thread
//! takes a cache from the pool and puts it back through a mutex on each
//! search (~440 instructions a search on lacquer's second worker, counted
//! with callgrind). A host runs one policy on several worker threads, so
//! each thread gets a copy of its own: a copy shares the compiled program
//! and has its own pool, owned by the thread that searches with it first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Threads numbered in the order they first search, from 0.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number ([`NEXT_THREAD`] when it first searched).
    static THREAD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// How many copies a pattern keeps: the machine's threads and a few more
/// (a host's main and admin threads), at most 64. Threads beyond share
/// copies, which is correct, only slower.
fn copies() -> usize {
    static COPIES: OnceLock<usize> = OnceLock::new();
    *COPIES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get() + 2)
            .min(64)
    })
}

/// A `regex::Regex` with a copy per thread.
#[derive(Debug, Clone)]
pub(crate) struct PerThread {
    copies: Box<[regex::Regex]>,
}

impl PerThread {
    /// Copies of `re`, one for each of the first threads that search.
    pub(crate) fn new(re: regex::Regex) -> PerThread {
        PerThread {
            copies: (0..copies()).map(|_| re.clone()).collect(),
        }
    }

    /// This thread's copy.
    #[inline]
    pub(crate) fn get(&self) -> &regex::Regex {
        let n = THREAD.with(|t| *t);
        &self.copies[n % self.copies.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_finds_what_the_pattern_finds() {
        let re = PerThread::new(regex::Regex::new(r"^/(admin|cart)(/|$)").unwrap());
        // More threads than copies: shared copies answer alike.
        let threads = 2 * copies() + 1;
        std::thread::scope(|s| {
            for i in 0..threads {
                let re = &re;
                s.spawn(move || {
                    for _ in 0..100 {
                        assert!(re.get().is_match("/admin/x"), "thread {i}");
                        assert!(!re.get().is_match("/shop"), "thread {i}");
                        assert_eq!(re.get().find("/cart").map(|m| m.end()), Some(5));
                    }
                });
            }
        });
    }
}
