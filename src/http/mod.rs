//! Client-side HTTP transforms that need no I/O.
pub mod conditional;
pub mod gzip;
pub mod headers;

/// The error type of bodies lacquer sends and receives.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
