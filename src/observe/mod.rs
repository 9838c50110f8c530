//! Observability: counters exported in Prometheus text format on the admin
//! listener, and the access log.
pub mod access_log;
pub mod log_limit;
pub mod metrics;
