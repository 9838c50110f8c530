//! Client-side HTTP transforms that need no I/O.
pub mod conditional;
pub mod gzip;
pub mod headers;
