//! Background work a part of lacquer needs while it serves (the ban lurker,
//! health probes, idle-connection reaping, peer senders), as values: parts
//! are built without spawning anything, and the server starts and stops all
//! of it in one place (`crate::server::services`).

use std::future::Future;
use std::pin::Pin;

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

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
