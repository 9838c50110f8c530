//! The background services of a running lacquer — the ban lurker, each
//! backend's health probe and idle-connection reaper, each cluster peer's
//! sender — started together on one runtime when the server starts, and
//! stopped together at shutdown. The parts that need them are built without
//! spawning anything ([`crate::background`]), so a proxy built outside a
//! runtime misses nothing.

use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::background::Background;

/// Background tasks, running until [`Services::stop`] (or until dropped,
/// which aborts them).
pub struct Services {
    tasks: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("running", &self.running())
            .finish()
    }
}

impl Services {
    /// Starts every piece of `work` on `runtime`.
    pub fn start(work: Vec<Background>, runtime: &Handle) -> Services {
        let tasks = work
            .into_iter()
            .map(|b| {
                tracing::debug!(service = %b.name, "background service started");
                (b.name, runtime.spawn(b.work))
            })
            .collect();
        Services {
            tasks: Mutex::new(tasks),
        }
    }

    /// How many tasks have not ended.
    pub fn running(&self) -> usize {
        self.lock().iter().filter(|(_, t)| !t.is_finished()).count()
    }

    /// Stops every task (aborted at its next await: none of them holds
    /// anything that must be finished) and waits for them to end, at most
    /// `bound`. Returns how many had not ended by then (0 normally).
    pub async fn stop(&self, bound: Duration) -> usize {
        let tasks = std::mem::take(&mut *self.lock());
        for (_, t) in &tasks {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + bound;
        let mut left = 0;
        for (name, t) in tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                tracing::warn!(service = %name, "background service did not stop in time");
                left += 1;
            }
        }
        tracing::debug!(left, "background services stopped");
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, JoinHandle<()>)>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for (_, t) in self.lock().iter() {
            t.abort();
        }
    }
}
