//! Reloading settings and policy at run time (SIGHUP, `POST /reload`).
//!
//! The new settings and policy are read and checked completely first; only
//! then are they swapped in, whole. Requests in flight keep the generation
//! they started with. Settings that only take effect at start-up keep their
//! start-up values and are reported as needing a restart.

use std::fmt::Debug;
use std::sync::Arc;

use super::{Proxy, SetupError};
use crate::config::{Config, ConfigError};
use crate::lifecycle::Live;

/// Reads the settings again, as at start-up (the file, then the command
/// line's overrides).
pub type SettingsSource = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Why a reload was refused; what was in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The settings do not read or validate.
    #[error("settings: {0}")]
    Settings(#[from] ConfigError),
    /// The policy (or another part of the settings) does not load.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The settings were read again (a settings source is known).
    pub settings: bool,
    /// The policy file now in force, if any.
    pub policy_file: Option<std::path::PathBuf>,
    /// Changed keys that take effect only after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.settings {
            f.write_str("settings reloaded")?;
        } else {
            f.write_str("settings unchanged (no settings file to read again)")?;
        }
        match &self.policy_file {
            Some(p) => write!(f, "; policy {} reloaded", p.display())?,
            None => f.write_str("; built-in policy")?,
        }
        if !self.needs_restart.is_empty() {
            write!(
                f,
                "\nneeds restart (changed, start-up values kept): {}",
                self.needs_restart.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Whether two settings values are the same (compared by their debug form:
/// the settings types need no `PartialEq`, and this runs only on reload).
impl super::SynthText for Reloaded {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(self.to_string())
    }
}

fn same<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Puts the start-up value back into every restart-only key of `fresh`
/// and names the keys that had changed.
fn keep_restart_only(started: &Config, fresh: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! restart_only {
        ($($name:literal => $($field:ident).+;)*) => {$(
            if !same(&started.$($field).+, &fresh.$($field).+) {
                changed.push($name);
                fresh.$($field).+ = started.$($field).+.clone();
            }
        )*};
    }
    restart_only! {
        "server.listen" => server.listen;
        "server.threads" => server.threads;
        "server.send_buffer" => server.send_buffer;
        "server.max_header_bytes" => server.max_header_bytes;
        "server.max_headers" => server.max_headers;
        "server.header_read_timeout" => server.header_read_timeout;
        "server.max_connections" => server.max_connections;
        "server.proxy_protocol" => server.proxy_protocol;
        "server.proxy_protocol_from" => server.proxy_protocol_from;
        "backend" => backend;
        "director" => director;
        "cache.storage" => cache.storage;
        "cache.max_variants" => cache.max_variants;
        "invalidation.ban_lurker_sleep" => invalidation.ban_lurker_sleep;
        "admin" => admin;
        "cluster" => cluster;
    }
    changed
}

impl Proxy {
    /// Where [`Proxy::reload`] reads the settings from; without one, a
    /// reload recompiles the policy file only.
    pub fn set_settings_source(&self, source: SettingsSource) {
        *self
            .settings_source
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// Reloads the settings (when a source is set) and the policy file
    /// they name: everything is read and checked first, then swapped in
    /// whole; requests in flight finish under the old generation. On error
    /// nothing changes and the error (file:line:column …) is returned.
    /// Restart-only settings keep their start-up values and are listed in
    /// the answer (and logged).
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        // One reload at a time (SIGHUP and the admin API may race).
        let source = self
            .settings_source
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.live();
        let (mut config, settings) = match source.as_ref() {
            Some(read) => (read()?, true),
            None => ((*current.config).clone(), false),
        };
        let needs_restart = keep_restart_only(&self.started, &mut config);
        let policy = Live::load_policy(&config)?;
        let live = Live::new(
            Arc::new(config),
            policy,
            current.clock.clone(),
            current.health.clone(),
        )?;
        let done = Reloaded {
            settings,
            policy_file: live.config.policy.file.clone(),
            needs_restart,
        };
        self.live.store(Arc::new(live));
        if done.needs_restart.is_empty() {
            tracing::info!("{done}");
        } else {
            tracing::warn!("{done}");
        }
        Ok(done)
    }

    /// [`Proxy::reload`] under the name the admin API's `POST /reload`
    /// calls.
    pub fn reload_policy(&self) -> Result<Reloaded, ReloadError> {
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_keep_their_start_up_values() {
        let started = Config::default();
        let mut fresh = Config::default();
        fresh.server.listen = vec!["127.0.0.1:9999".parse().expect("addr")];
        fresh.cache.grace = crate::config::Seconds(std::time::Duration::from_secs(99));
        fresh.cache.storage = crate::config::ByteSize(1 << 20);
        let changed = keep_restart_only(&started, &mut fresh);
        assert_eq!(changed, vec!["server.listen", "cache.storage"]);
        assert_eq!(fresh.server.listen, started.server.listen);
        assert_eq!(fresh.cache.storage.0, started.cache.storage.0);
        assert_eq!(fresh.cache.grace.0.as_secs(), 99, "reloadable: kept");
    }
}
