//! The ban lurker: walks the cache in the background, removing objects that
//! bans decidable from the object alone (`obj.*`, `req.url`,
//! `req.http.host`) match, then drops the bans every object has been checked
//! past — so lookups stay fast and the ban list stays short.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::bans::BanList;
use crate::cache::Store;

/// What one walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Objects looked at.
    pub checked: usize,
    /// Objects removed.
    pub removed: usize,
    /// Bans dropped afterwards.
    pub pruned: usize,
}

/// One walk over the whole cache. Yields to other tasks every `batch`
/// objects so lookups keep flowing.
pub async fn walk(store: &Store, bans: &BanList, batch: usize) -> Walk {
    let mut out = Walk::default();
    if bans.is_empty() {
        return out;
    }
    let newest = bans.newest();
    let mut min_checked = newest;
    let objects: Vec<_> = store.objects().collect();
    for (i, (key, obj)) in objects.into_iter().enumerate() {
        out.checked += 1;
        if bans.is_banned(&obj, None) {
            if store.remove_object(&key, &obj) {
                out.removed += 1;
            }
        } else {
            min_checked = min_checked.min(obj.ban_checked.load(Ordering::Acquire));
        }
        if batch > 0 && i % batch == batch - 1 {
            tokio::task::yield_now().await;
        }
    }
    out.pruned = bans.prune(min_checked);
    out
}

/// Walks forever, sleeping `period` between walks.
pub async fn run(store: Store, bans: Arc<BanList>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let w = walk(&store, &bans, 1000).await;
        if w.removed > 0 || w.pruned > 0 {
            tracing::debug!(
                checked = w.checked,
                removed = w.removed,
                pruned = w.pruned,
                "ban lurker walk"
            );
        }
    }
}
