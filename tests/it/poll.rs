//! Waiting for something to happen: a test polls what it waits for until
//! a deadline instead of sleeping a fixed time, so it is as quick as the
//! machine allows and still passes on a slow, loaded one.
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen almost at once
/// (an object stored, a process listening, a peer told) before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Between two looks at the condition.
const EVERY: Duration = Duration::from_millis(10);

/// Polls `cond` until it holds or `limit` has passed; whether it held.
pub async fn eventually_within(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `cond` for up to [`DEADLINE`]; whether it held.
pub async fn eventually(cond: impl AsyncFnMut() -> bool) -> bool {
    eventually_within(DEADLINE, cond).await
}

/// Polls `cond` for up to [`DEADLINE`]; panics naming `what` when it never
/// held.
pub async fn wait_until(what: &str, cond: impl AsyncFnMut() -> bool) {
    assert!(
        eventually(cond).await,
        "never happened within {DEADLINE:?}: {what}"
    );
}

/// [`eventually_within`] for tests on plain threads.
pub fn eventually_blocking(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(EVERY);
    }
}

/// [`wait_until`] for tests on plain threads.
pub fn wait_until_blocking(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        eventually_blocking(DEADLINE, cond),
        "never happened within {DEADLINE:?}: {what}"
    );
}
