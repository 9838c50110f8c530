//! The settings and policy in force, swapped whole on reload: each request
//! takes one [`Live`] when it arrives and keeps it to the end, so a reload
//! never mixes old and new rules within a request.

use http::HeaderValue;
use std::sync::Arc;

use super::SetupError;
use crate::cache::object::KeySpec;
use crate::config::Config;
use crate::lifecycle::{Clock, Live};
use crate::policy::{Builtin, Policy};

impl Live {
    /// Derives everything a request needs from `config` and `policy`;
    /// freshness is judged by `clock`, backends' health read from `health`.
    pub fn new(
        config: Arc<Config>,
        policy: Arc<dyn Policy>,
        clock: Clock,
        health: Arc<dyn crate::lifecycle::BackendHealth>,
    ) -> Result<Live, SetupError> {
        let via = HeaderValue::from_str(&format!("1.1 {}", config.server.via_name))
            .map_err(|_| SetupError::BadViaName)?;
        let hooks = policy.hooks();
        let mut key_headers: Vec<http::HeaderName> = config
            .invalidation
            .surrogate_key_headers
            .iter()
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        let xkey = http::HeaderName::from_static("xkey");
        if hooks.xkey && !key_headers.contains(&xkey) {
            key_headers.push(xkey);
        }
        let keys = KeySpec {
            headers: key_headers,
            strip: config.invalidation.strip_surrogate_keys,
            // A policy importing vmod xkey decides about the header, as on
            // Varnish (`unset resp.http.xkey;`).
            keep_xkey: hooks.xkey,
            max_keys: config.cache.max_surrogate_keys,
        };
        let esi_paths = regex::RegexSet::new(&config.esi.paths)?;
        Ok(Live {
            hooks,
            freshness: config.cache.freshness_policy(),
            via,
            keys,
            esi_paths,
            policy,
            config,
            clock,
            health,
        })
    }

    /// The policy of the settings: `policy.file` compiled, else the
    /// built-in one.
    pub fn load_policy(config: &Config) -> Result<Arc<dyn Policy>, SetupError> {
        Ok(match &config.policy.file {
            Some(path) => Arc::new(crate::policy::vcl::VclPolicy::load(path)?),
            None => Arc::new(Builtin),
        })
    }
}

/// The proxy's backends as the policy sees their health (`std.healthy`).
/// Here rather than in `fetch`, which must not depend on `lifecycle`.
pub(super) struct Health(pub(super) Vec<Arc<crate::fetch::pool::Backend>>);

impl crate::lifecycle::BackendHealth for Health {
    fn healthy(&self, name: &str) -> Option<bool> {
        self.0
            .iter()
            .find(|b| b.name() == name)
            .map(|b| b.is_healthy())
    }
}
