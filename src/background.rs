//! Background work a part of lacquer needs while it serves (the ban lurker,
//! health probes, idle-connection reaping, peer senders), as values: parts
//! are built without spawning anything, and the server starts and stops all
//! of it in one place (`crate::server::services`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// One piece of background work, not yet started: a name for logs and the
/// future to run until stopped (or until what it serves is gone).
pub struct Background {
    /// What it is, e.g. `probe backend1`.
    pub name: String,
    /// The work.
    pub work: Pin<Box<dyn Future<Output = ()> + Send + 'static>>,
}

impl Background {
    /// `work` under `name`.
    pub fn new(name: impl Into<String>, work: impl Future<Output = ()> + Send + 'static) -> Self {
        Background {
            name: name.into(),
            work: Box::pin(work),
        }
    }
}

/// Runs `each` every `period` (the first time at once; a late tick is
/// delayed, not bunched) for as long as `owner` lives: the loop of the
/// health probes, the idle-connection reaper and the header-read timer.
pub async fn every_while_alive<T, F, Fut>(owner: Weak<T>, period: Duration, mut each: F)
where
    F: FnMut(Arc<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(owner) = owner.upgrade() else {
            return;
        };
        each(owner).await;
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
