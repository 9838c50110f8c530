//! The settings and policy in force, swapped whole on reload: each request
//! takes one [`Live`] when it arrives and keeps it to the end, so a reload
//! never mixes old and new rules within a request. Built by
//! `pipeline::live`.

use http::HeaderValue;
use std::sync::Arc;

use super::{Clock, Hooks, Policy};
use crate::cache::freshness::FreshnessPolicy;
use crate::cache::object::KeySpec;
use crate::config::Config;

/// Which backends are healthy, by name, as their probes see them
/// (`std.healthy`). The proxy's backends implement it; the policy reads it
/// through [`Live::health`].
pub trait BackendHealth: Send + Sync {
    /// `None`: no backend by that name.
    fn healthy(&self, name: &str) -> Option<bool>;
}

/// No backends at all (tools and tests that build a [`Live`] without a
/// proxy): every name is unknown.
pub struct NoBackends;

impl BackendHealth for NoBackends {
    fn healthy(&self, _: &str) -> Option<bool> {
        None
    }
}

/// One generation of settings and policy, with what is derived from them.
pub struct Live {
    /// The settings (restart-only keys keep their start-up values).
    pub config: Arc<Config>,
    /// The request policy.
    pub policy: Arc<dyn Policy>,
    /// Which optional policy hooks exist: the pipeline skips the others
    /// without building anything for them.
    pub hooks: Hooks,
    /// RFC 9111 knobs from `[cache]`.
    pub freshness: FreshnessPolicy,
    /// `Via` value added to responses (`server.via_name`).
    pub via: HeaderValue,
    /// Surrogate key headers (`[invalidation]`).
    pub keys: KeySpec,
    /// `esi.paths`, compiled.
    pub esi_paths: regex::RegexSet,
    /// The clock freshness is judged by (the proxy's, shared by every
    /// generation).
    pub clock: Clock,
    /// The proxy's backends' health (shared by every generation).
    pub health: Arc<dyn BackendHealth>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("hooks", &self.hooks)
            .field("policy_file", &self.config.policy.file)
            .finish_non_exhaustive()
    }
}
