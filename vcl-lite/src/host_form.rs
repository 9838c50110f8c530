//! A value of the host's choosing kept with a piece of the compiled policy
//! (a header name, a literal text), made the first time the host asks: the
//! host parses or converts it once per policy instead of on every request
//! (lacquer keeps an `http::HeaderName` with each header name and an
//! `http::HeaderValue` with each literal set into a header).

use std::any::Any;
use std::sync::OnceLock;

/// The slot; empty until the host first asks.
#[derive(Default)]
pub(crate) struct HostForm(OnceLock<Box<dyn Any + Send + Sync>>);

impl HostForm {
    /// The host's form, made by `make` on first use. `None` when an earlier
    /// call kept a value of another type.
    pub(crate) fn get<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

impl Clone for HostForm {
    /// An empty slot: the host's form is made again on first use.
    fn clone(&self) -> HostForm {
        HostForm::default()
    }
}
