//! The shared cache: keys, immutable objects, the byte-bounded store, and the
//! RFC 9111 rules that decide what is stored and for how long.
pub mod directives;
pub mod fields;
pub mod freshness;
pub mod key;
pub mod merge_304;
pub mod object;
pub mod storable;
pub mod store;
pub mod tags;
#[cfg(test)]
mod test_support;
pub mod vary;

pub use key::{CacheKey, KeyParts};
pub use object::CachedObject;
pub use store::{Found, Store};
