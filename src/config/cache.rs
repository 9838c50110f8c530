//! `[cache]`: the cache's knobs, and the profile that picks the defaults of
//! the three Varnish-flavoured ones (`default_ttl`, `grace`, `keep`).
//!
//! The file is read into [`CacheFile`], where those three are `Option`s (so
//! the code knows which ones the operator wrote), then resolved into
//! [`CacheConfig`]: a key the operator set wins; an absent one takes the
//! profile's default.

use serde::Deserialize;
use std::time::Duration;

use super::units::{ByteSize, Seconds};
use crate::cache::freshness::FreshnessPolicy;

/// Which defaults `default_ttl`, `grace` and `keep` take when the settings
/// do not set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheProfile {
    /// RFC 9111 (the default): no default TTL, no grace (stale content only
    /// where the origin allows it with `stale-while-revalidate` /
    /// `stale-if-error`), and objects kept one hour past their lifetime so
    /// they can be revalidated (and stand in while the origin is
    /// unreachable).
    #[default]
    Rfc,
    /// Varnish's parameter defaults: `default_ttl` 120 s, `default_grace`
    /// 10 s, `default_keep` 0.
    Varnish,
}

impl CacheProfile {
    /// The profile's `default_ttl`.
    pub fn default_ttl(self) -> Option<Seconds> {
        match self {
            CacheProfile::Rfc => None,
            CacheProfile::Varnish => Some(Seconds(Duration::from_secs(120))),
        }
    }

    /// The profile's `grace`.
    pub fn grace(self) -> Seconds {
        match self {
            CacheProfile::Rfc => Seconds(Duration::ZERO),
            CacheProfile::Varnish => Seconds(Duration::from_secs(10)),
        }
    }

    /// The profile's `keep`.
    pub fn keep(self) -> Seconds {
        match self {
            CacheProfile::Rfc => Seconds(Duration::from_secs(3600)),
            CacheProfile::Varnish => Seconds(Duration::ZERO),
        }
    }

    /// The name as written in the settings.
    pub fn name(self) -> &'static str {
        match self {
            CacheProfile::Rfc => "rfc",
            CacheProfile::Varnish => "varnish",
        }
    }
}

/// Cache behaviour, resolved: every value is the one in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "CacheFile")]
pub struct CacheConfig {
    /// Where `default_ttl`, `grace` and `keep` took their defaults from.
    pub profile: CacheProfile,
    /// Byte budget for everything stored (bodies plus headers).
    pub storage: ByteSize,
    /// TTL for responses with no explicit freshness. Absent (the rfc
    /// profile's default): such responses are stored only where RFC 9111
    /// heuristics allow.
    pub default_ttl: Option<Seconds>,
    /// How long past its TTL an object may be delivered (while one
    /// background fetch refreshes it, or in place of a backend error),
    /// unless the response sets `stale-while-revalidate` /
    /// `stale-if-error`. 0 under the rfc profile.
    pub grace: Seconds,
    /// How long past TTL and grace an object is kept: for conditional
    /// revalidation, and to stand in while the origin gives no answer at all
    /// (RFC 9111 §4.2.4 "disconnected"); never in place of a 5xx.
    pub keep: Seconds,
    /// Responses larger than this are delivered but not stored.
    pub max_object_size: ByteSize,
    /// How long an uncacheable answer makes later requests for its key go to
    /// the backend in parallel instead of waiting on each other.
    pub hit_for_miss: Seconds,
    /// Fraction of `Date` − `Last-Modified` used as heuristic freshness.
    pub heuristic_fraction: f64,
    /// Cap on heuristic freshness.
    pub heuristic_max: Seconds,
    /// Whether a client's `Cache-Control: no-cache` forces a backend fetch
    /// (off by default, as in Varnish: one client must not empty the cache).
    pub honor_client_no_cache: bool,
    /// Whether responses carrying `Set-Cookie` may be stored.
    pub cache_set_cookie: bool,
    /// Most Vary variants kept per URL; the oldest goes first.
    pub max_variants: usize,
    /// Most surrogate keys kept per stored object (the first ones); more
    /// are ignored, logged once and counted in
    /// `lacquer_surrogate_keys_ignored_total`.
    pub max_surrogate_keys: usize,
}

/// `[cache]` as written: the profile-dependent keys are `None` when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CacheFile {
    profile: CacheProfile,
    storage: ByteSize,
    default_ttl: Option<Seconds>,
    grace: Option<Seconds>,
    keep: Option<Seconds>,
    max_object_size: ByteSize,
    hit_for_miss: Seconds,
    heuristic_fraction: f64,
    heuristic_max: Seconds,
    honor_client_no_cache: bool,
    cache_set_cookie: bool,
    max_variants: usize,
    max_surrogate_keys: usize,
}

impl Default for CacheFile {
    fn default() -> Self {
        let c = CacheConfig::default();
        CacheFile {
            profile: c.profile,
            storage: c.storage,
            default_ttl: None,
            grace: None,
            keep: None,
            max_object_size: c.max_object_size,
            hit_for_miss: c.hit_for_miss,
            heuristic_fraction: c.heuristic_fraction,
            heuristic_max: c.heuristic_max,
            honor_client_no_cache: c.honor_client_no_cache,
            cache_set_cookie: c.cache_set_cookie,
            max_variants: c.max_variants,
            max_surrogate_keys: c.max_surrogate_keys,
        }
    }
}

impl From<CacheFile> for CacheConfig {
    fn from(f: CacheFile) -> Self {
        CacheConfig {
            profile: f.profile,
            storage: f.storage,
            default_ttl: f.default_ttl.or_else(|| f.profile.default_ttl()),
            grace: f.grace.unwrap_or_else(|| f.profile.grace()),
            keep: f.keep.unwrap_or_else(|| f.profile.keep()),
            max_object_size: f.max_object_size,
            hit_for_miss: f.hit_for_miss,
            heuristic_fraction: f.heuristic_fraction,
            heuristic_max: f.heuristic_max,
            honor_client_no_cache: f.honor_client_no_cache,
            cache_set_cookie: f.cache_set_cookie,
            max_variants: f.max_variants,
            max_surrogate_keys: f.max_surrogate_keys,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig::for_profile(CacheProfile::default())
    }
}

impl CacheConfig {
    /// The defaults of every key, with `profile`'s `default_ttl`, `grace`
    /// and `keep`.
    pub fn for_profile(profile: CacheProfile) -> Self {
        CacheConfig {
            profile,
            storage: ByteSize(256 << 20),
            default_ttl: profile.default_ttl(),
            grace: profile.grace(),
            keep: profile.keep(),
            max_object_size: ByteSize(64 << 20),
            hit_for_miss: Seconds(Duration::from_secs(120)),
            heuristic_fraction: 0.1,
            heuristic_max: Seconds(Duration::from_secs(86400)),
            honor_client_no_cache: false,
            cache_set_cookie: false,
            max_variants: 32,
            max_surrogate_keys: 1024,
        }
    }

    /// The profile and the three values it decides, for `lacquer check` and
    /// the startup log: `profile rfc: default_ttl off, grace 0s, keep 3600s`.
    pub fn summary(&self) -> String {
        let ttl = self
            .default_ttl
            .map_or_else(|| "off".to_string(), |t| format!("{}s", t.0.as_secs()));
        format!(
            "profile {}: default_ttl {ttl}, grace {}s, keep {}s",
            self.profile.name(),
            self.grace.0.as_secs(),
            self.keep.0.as_secs()
        )
    }

    /// The RFC 9111 knobs as the freshness module wants them.
    pub fn freshness_policy(&self) -> FreshnessPolicy {
        FreshnessPolicy {
            default_ttl: self.default_ttl.map(|s| s.0),
            heuristic_fraction: self.heuristic_fraction,
            heuristic_max: self.heuristic_max.0,
            default_grace: self.grace.0,
            default_keep: self.keep.0,
            cache_set_cookie: self.cache_set_cookie,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn cache(text: &str) -> CacheConfig {
        Config::from_toml(text, "t.toml").unwrap().cache
    }

    #[test]
    fn rfc_is_the_default_profile() {
        for c in [cache(""), cache("[cache]\n"), CacheConfig::default()] {
            assert_eq!(c.profile, CacheProfile::Rfc);
            assert!(c.default_ttl.is_none());
            assert_eq!(c.grace.0, Duration::ZERO);
            assert_eq!(c.keep.0, Duration::from_secs(3600));
        }
    }

    #[test]
    fn summary_names_the_values_in_force() {
        assert_eq!(
            cache("").summary(),
            "profile rfc: default_ttl off, grace 0s, keep 3600s"
        );
        assert_eq!(
            cache("[cache]\nprofile = \"varnish\"\n").summary(),
            "profile varnish: default_ttl 120s, grace 10s, keep 0s"
        );
    }

    #[test]
    fn varnish_profile_sets_varnish_defaults() {
        let c = cache("[cache]\nprofile = \"varnish\"\n");
        assert_eq!(c.profile, CacheProfile::Varnish);
        assert_eq!(c.default_ttl, Some(Seconds(Duration::from_secs(120))));
        assert_eq!(c.grace.0, Duration::from_secs(10));
        assert_eq!(c.keep.0, Duration::ZERO);
    }

    #[test]
    fn explicit_keys_win_over_the_profile() {
        let c = cache("[cache]\nprofile = \"varnish\"\ngrace = \"0s\"\ndefault_ttl = \"5s\"\n");
        assert_eq!(c.grace.0, Duration::ZERO);
        assert_eq!(c.default_ttl, Some(Seconds(Duration::from_secs(5))));
        assert_eq!(c.keep.0, Duration::ZERO, "absent: the profile's");
        let c = cache("[cache]\nkeep = \"0s\"\ngrace = \"3s\"\n");
        assert_eq!(c.profile, CacheProfile::Rfc);
        assert_eq!(c.keep.0, Duration::ZERO);
        assert_eq!(c.grace.0, Duration::from_secs(3));
    }

    #[test]
    fn unknown_profile_and_keys_are_refused_with_a_position() {
        let e = Config::from_toml("[cache]\nprofile = \"squid\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:"), "{e}");
        assert!(e.contains("unknown variant"), "{e}");
        let e = Config::from_toml("[cache]\ngracee = \"1s\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:1: unknown field `gracee`"), "{e}");
    }
}
