//! Client-side HTTP transforms, and the field syntax they and the cache
//! share; none needs I/O.
pub mod coding;
pub mod conditional;
pub mod few_fields;
pub mod gzip;
pub mod headers;
pub mod name_set;
pub mod range;
pub mod req_fields;
pub mod small_numbers;
pub mod static_text;
pub(crate) mod structured;
pub(crate) mod syntax;
#[cfg(test)]
pub(crate) mod test_support;

/// The error type of bodies lacquer sends and receives.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
