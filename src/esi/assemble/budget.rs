//! What an assembled page may hold ahead of its client: the pieces it sends,
//! the charges they carry against `esi.max_buffered`, and the turn that
//! lets the include the client is waiting for go past the budget.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

/// Bytes of an assembled ESI page on their way to the client, holding the
/// share of the page's buffer budget (`esi.max_buffered`) they were charged
/// until the client connection takes them. Bytes the cache holds anyway
/// (literal parts of the page, stored fragments) carry no charge.
#[derive(Debug)]
pub struct Piece {
    /// The bytes.
    pub bytes: Bytes,
    /// Their charge, if any.
    pub charge: Option<Charge>,
}

impl Piece {
    /// Bytes charged to no budget.
    pub fn free(bytes: Bytes) -> Piece {
        Piece {
            bytes,
            charge: None,
        }
    }

    /// The bytes; the charge is released.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Bytes held against a page's buffer budget (a permit per byte), counted
/// in a gauge (`lacquer_esi_buffered_bytes`) until dropped.
#[derive(Debug)]
pub struct Charge {
    permit: tokio::sync::OwnedSemaphorePermit,
    gauge: Arc<AtomicU64>,
}

impl Charge {
    /// A charge of the permits in `permit`, added to `gauge`.
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit, gauge: Arc<AtomicU64>) -> Charge {
        gauge.fetch_add(permit.num_permits() as u64, Ordering::Relaxed);
        Charge { permit, gauge }
    }

    /// Gives back what is held beyond `n` bytes (a reservation made before
    /// the size was known).
    pub fn shrink_to(&mut self, n: usize) {
        let excess = self.permit.num_permits().saturating_sub(n);
        if excess > 0 && self.permit.split(excess).is_some() {
            self.gauge.fetch_sub(excess as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.gauge
            .fetch_sub(self.permit.num_permits() as u64, Ordering::Relaxed);
    }
}

/// What an assembled page may hold ahead of its client: `esi.max_buffered`
/// bytes of fetched fragments that the client has not taken yet (one
/// permit per byte). Bytes inserted from the cache are the cache's and are
/// not charged. Why: a client that does not read would otherwise make the
/// page fetch and hold every include at once (128 includes of 1 MiB: 130
/// MiB resident per such client).
pub(super) struct Budget {
    permits: Arc<Semaphore>,
    total: usize,
    /// `lacquer_esi_buffered_bytes`.
    gauge: Arc<AtomicU64>,
}

impl Budget {
    pub(super) fn new(bytes: u64, gauge: Arc<AtomicU64>) -> Budget {
        let total = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            gauge,
        }
    }

    /// Charges `n` bytes held for the include of `turn`, waiting while the
    /// page holds too much. Once it is the include's turn (the client waits
    /// for it) nothing is charged and nothing waits: the includes before it
    /// have been sent, so waiting could only deadlock.
    pub(super) async fn charge(&self, turn: &Turn, n: usize) -> Option<Charge> {
        if n == 0 || turn.is_now() {
            return None;
        }
        let want = u32::try_from(n).ok().filter(|_| n <= self.total);
        let Some(want) = want else {
            // More than the whole budget: only on its turn.
            turn.wait().await;
            return None;
        };
        tokio::select! {
            biased;
            () = turn.wait() => None,
            permit = self.permits.clone().acquire_many_owned(want) => {
                permit.ok().map(|p| Charge::new(p, self.gauge.clone()))
            }
        }
    }

    /// Lets every include still waiting go on uncharged: nobody will read
    /// what they fetch (the client left, or delivery was aborted), so they
    /// end instead of waiting forever.
    pub(super) fn close(&self) {
        self.permits.close();
    }
}

/// Set when the output reaches an include: the client is waiting for it,
/// so it no longer waits for the page's budget or a concurrency slot.
#[derive(Default)]
pub(super) struct Turn {
    now: AtomicBool,
    notify: Notify,
}

impl Turn {
    pub(super) fn start(&self) {
        self.now.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(super) fn is_now(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }

    pub(super) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_now() {
                return;
            }
            notified.await;
        }
    }
}
