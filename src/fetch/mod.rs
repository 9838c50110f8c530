//! Talking to backends: the connection pool, directors and health probes,
//! request coalescing, and the shared streaming body of a coalesced fetch.
pub mod broadcast;
pub mod director;
pub mod h1;
pub mod inflight;
pub mod oneshot;
pub mod pool;
pub mod probe;
pub mod req_body;
pub mod tunnel;
