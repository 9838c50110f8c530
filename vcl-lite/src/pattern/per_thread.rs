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
//! pool is ~1.6 KiB), so a pattern costs one slot per possible thread
//! (~40 bytes) until then.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Threads that get a copy of their own; beyond, threads share copies
/// (correct, only slower: all but one of the sharers take the pool's slow
/// path).
const SLOTS: usize = 64;

/// Threads numbered in the order they first search, from 0.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot.
    static SLOT: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SLOTS;
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
            copies: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// This thread's copy, made on its first search.
    #[inline]
    pub(crate) fn get(&self) -> &regex::Regex {
        let slot = SLOT.with(|s| *s);
        self.copies[slot].get_or_init(|| self.re.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_searches_with_its_own_copy() {
        let re = PerThread::new(regex::Regex::new(r"^/(admin|cart)(/|$)").unwrap());
        let threads = 8;
        let copies: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let re = &re;
                    s.spawn(move || {
                        for _ in 0..100 {
                            assert!(re.get().is_match("/admin/x"), "thread {i}");
                            assert!(!re.get().is_match("/shop"), "thread {i}");
                            assert_eq!(re.get().find("/cart").map(|m| m.end()), Some(5));
                        }
                        // The same copy on every search of this thread.
                        let mine = std::ptr::from_ref(re.get()) as usize;
                        assert_eq!(mine, std::ptr::from_ref(re.get()) as usize);
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut distinct = copies.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // Threads are numbered as they first search; these eight get
        // numbers within a few of each other (other tests' threads may
        // take some between), so they fall in distinct slots.
        assert_eq!(distinct.len(), threads, "{copies:?}");
        // Copies are made only for the threads that searched.
        let made = re.copies.iter().filter(|c| c.get().is_some()).count();
        assert_eq!(made, threads);
    }
}
