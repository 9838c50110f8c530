//! Talking to backends: the connection pool, request coalescing, and the
//! shared streaming body of a coalesced fetch.
pub mod broadcast;
pub mod inflight;
pub mod pool;
