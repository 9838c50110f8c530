//! File descriptors: what accept loops do when they run out, and the
//! start-up check of `RLIMIT_NOFILE` against `server.max_connections`.
//!
//! When the process has no descriptor left, `accept` fails at once with
//! `EMFILE` and the pending connection stays in the backlog, so the listener
//! stays readable: retrying at once spins a core, and logging every failure
//! floods the log. [`AcceptBackoff`] waits 5 ms doubling up to 1 s between
//! tries (reset by a successful accept) and logs at most one line per 10 s
//! for the whole process.

use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// First pause after a failed accept.
const FIRST_DELAY: Duration = Duration::from_millis(5);
/// Longest pause between two tries.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one log line about failed accepts per this period.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Descriptors kept aside for listeners, the runtimes, the admin API,
/// peers and probes.
const SPARE_DESCRIPTORS: u64 = 64;

/// Paces one accept loop after accept failures.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    addr: Option<SocketAddr>,
    delay: Duration,
}

impl AcceptBackoff {
    /// Backoff for the accept loop of `listener` (named `kind` in logs).
    pub fn new(kind: &'static str, listener: &TcpListener) -> AcceptBackoff {
        AcceptBackoff {
            listener: kind,
            addr: listener.local_addr().ok(),
            delay: FIRST_DELAY,
        }
    }

    /// A connection was accepted: the next failure starts a new backoff.
    pub fn accepted(&mut self) {
        self.delay = FIRST_DELAY;
    }

    /// Handles a failed accept: returns at once when only that connection
    /// failed (the client gave up), else after the backoff delay.
    pub async fn failed(&mut self, error: &io::Error) {
        if is_per_connection(error) {
            tracing::debug!(listener = self.listener, error = %error, "a connection ended before it was accepted");
            return;
        }
        let delay = self.delay;
        self.delay = (delay * 2).min(MAX_DELAY);
        report(self.listener, self.addr, error, delay);
        tokio::time::sleep(delay).await;
    }
}

/// Errors that concern one connection only, not the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// When the last line about failed accepts was logged, and how many
/// failures were not logged since.
struct Report {
    last: Option<Instant>,
    suppressed: u64,
}

static REPORT: Mutex<Report> = Mutex::new(Report {
    last: None,
    suppressed: 0,
});

/// Logs a failed accept, at most once per [`REPORT_EVERY`] process-wide.
fn report(listener: &str, addr: Option<SocketAddr>, error: &io::Error, retry_in: Duration) {
    let now = Instant::now();
    let suppressed = {
        let mut r = REPORT.lock().unwrap_or_else(PoisonError::into_inner);
        if r.last.is_some_and(|t| now.duration_since(t) < REPORT_EVERY) {
            r.suppressed += 1;
            return;
        }
        r.last = Some(now);
        std::mem::take(&mut r.suppressed)
    };
    let addr = addr.map_or_else(|| "?".to_string(), |a| a.to_string());
    let retry_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
    if is_out_of_descriptors(error) {
        tracing::warn!(
            listener, %addr, error = %error, retry_ms, unlogged_failures = suppressed,
            "cannot accept connections: out of file descriptors; backing off (raise RLIMIT_NOFILE or lower server.max_connections)"
        );
    } else {
        tracing::warn!(
            listener, %addr, error = %error, retry_ms, unlogged_failures = suppressed,
            "cannot accept connections; backing off"
        );
    }
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Descriptors `max_connections` client connections may need: one per
/// client connection, one per backend connection serving it, and some spare.
pub fn descriptors_needed(max_connections: usize) -> u64 {
    u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(2)
        .saturating_add(SPARE_DESCRIPTORS)
}

/// What the start-up check of `RLIMIT_NOFILE` found (and did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdLimit {
    /// The soft limit was already enough.
    Enough {
        /// The soft limit.
        soft: u64,
    },
    /// The soft limit was raised to what is needed.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The hard limit is below what is needed; the soft limit is now the
    /// hard limit.
    TooLow {
        /// The soft limit now.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
}

/// Why the descriptor limit could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `getrlimit` failed.
    #[error("cannot read RLIMIT_NOFILE: {0}")]
    Read(io::Error),
    /// `setrlimit` failed.
    #[error("cannot raise the soft RLIMIT_NOFILE from {from} to {to}: {source}")]
    Raise {
        /// The soft limit in force.
        from: u64,
        /// The soft limit wanted.
        to: u64,
        /// The error.
        source: io::Error,
    },
}

/// Makes the soft `RLIMIT_NOFILE` at least `needed` when the hard limit
/// allows, else as high as the hard limit. Touches nothing when the soft
/// limit is already enough.
pub fn ensure_fd_limit(needed: u64) -> Result<FdLimit, FdLimitError> {
    use rlimit::{Resource, INFINITY};
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).map_err(FdLimitError::Read)?;
    if soft == INFINITY || soft >= needed {
        return Ok(FdLimit::Enough { soft });
    }
    let target = if hard == INFINITY {
        needed
    } else {
        needed.min(hard)
    };
    if target > soft {
        rlimit::setrlimit(Resource::NOFILE, target, hard).map_err(|source| {
            FdLimitError::Raise {
                from: soft,
                to: target,
                source,
            }
        })?;
    }
    if target >= needed {
        Ok(FdLimit::Raised {
            from: soft,
            to: target,
        })
    } else {
        Ok(FdLimit::TooLow { soft: target, hard })
    }
}

/// The start-up check: raises the soft `RLIMIT_NOFILE` for
/// `max_connections` when needed and logs what it did, with a warning when
/// the limit stays too low.
pub fn prepare_fd_limit(max_connections: usize) {
    let needed = descriptors_needed(max_connections);
    match ensure_fd_limit(needed) {
        Ok(FdLimit::Enough { soft }) => {
            tracing::debug!(soft, needed, "RLIMIT_NOFILE is enough");
        }
        Ok(FdLimit::Raised { from, to }) => tracing::info!(
            "raised the soft RLIMIT_NOFILE from {from} to {to} for server.max_connections = {max_connections}"
        ),
        Ok(FdLimit::TooLow { soft, hard }) => tracing::warn!(
            "RLIMIT_NOFILE allows {soft} file descriptors (hard limit {hard}); server.max_connections = {max_connections} needs about {needed}: raise the hard limit (systemd LimitNOFILE=, ulimit -Hn) or lower server.max_connections"
        ),
        Err(e) => tracing::warn!(
            "{e}; server.max_connections = {max_connections} needs about {needed} file descriptors"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_per_connection_and_some_spare() {
        assert_eq!(descriptors_needed(1000), 2064);
        assert_eq!(descriptors_needed(usize::MAX), u64::MAX);
    }

    #[test]
    fn per_connection_errors_do_not_back_off() {
        assert!(is_per_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(!is_per_connection(&emfile));
        assert!(is_out_of_descriptors(&emfile));
    }
}
