//! Settings: TOML → validated, immutable [`Config`].
//!
//! Every key has a default, so an empty file (or no file, with `-a`/`-b` on the
//! command line) is a working configuration. Unknown keys and bad values are
//! refused with the file, line and column of the offending text.

mod cache;
mod compression;
mod esi;
mod units;

pub use cache::{CacheConfig, CacheProfile};
pub use compression::{CompressionConfig, StoreCoding};
pub use esi::{EsiConfig, EsiOnError};

pub use units::{parse_bytes, parse_duration, ByteSize, Seconds};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::invalidate::acl::Acl;

/// An error in the settings, with its position when it comes from a file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A syntax error, unknown key or bad value at a known position.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        /// The path as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that is wrong only in combination with others.
    #[error("{file}: {message}")]
    Invalid {
        /// The path as given (or `command line`).
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration. Built once, then shared read-only (`Arc<Config>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Client-facing listener settings.
    pub server: ServerConfig,
    /// Backends (app servers), spread by the director.
    pub backend: Vec<BackendConfig>,
    /// How requests are spread over the backends.
    pub director: DirectorConfig,
    /// Cache behaviour and storage.
    pub cache: CacheConfig,
    /// PURGE, BAN and surrogate keys.
    pub invalidation: InvalidationConfig,
    /// The admin listener.
    pub admin: AdminConfig,
    /// Peers that receive this node's invalidations.
    pub cluster: ClusterConfig,
    /// The vcl-lite policy.
    pub policy: PolicyConfig,
    /// ESI processing and assembly.
    pub esi: EsiConfig,
    /// Content codings: normalisation, compression on store.
    pub compression: CompressionConfig,
}

/// Where the request policy comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// A vcl-lite file; absent: the built-in policy (`vcl-lite/default.vcl`).
    pub file: Option<std::path::PathBuf>,
}

/// The admin listener: purge, ban, list bans, key purge, counts, and the
/// endpoint peers forward invalidations to. Keep it on loopback or a
/// private network; off loopback, set `secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to listen on; absent turns the admin listener off.
    pub listen: Option<SocketAddr>,
    /// Bearer token every admin request must carry
    /// (`Authorization: Bearer <secret>`), except peers' `/cluster/apply`,
    /// which is signed with `cluster.secret`. Empty (the default): no
    /// authentication; else 16+ characters.
    pub secret: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 6082))),
            secret: String::new(),
        }
    }
}

/// Cluster coherence: where to forward invalidations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Peers' admin listeners, `host:port`.
    pub peers: Vec<String>,
    /// Shared secret: the HMAC key signing forwarded invalidations (both
    /// ways). Empty: `/cluster/apply` is off; else 16+ characters.
    pub secret: String,
    /// Longest pause between two retries to a peer that is down.
    pub retry_max: Seconds,
    /// Invalidations queued per peer while it is down; beyond that, new
    /// ones are dropped for that peer (and logged).
    pub queue_limit: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            peers: Vec::new(),
            secret: String::new(),
            retry_max: Seconds(Duration::from_secs(10)),
            queue_limit: 10_000,
        }
    }
}

/// Invalidation from application code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvalidationConfig {
    /// Clients allowed to PURGE and BAN (CIDR blocks or addresses); others
    /// get 405. Default: loopback only.
    pub purge_acl: Acl,
    /// Request header that makes a PURGE soft when its value is `soft`:
    /// objects are marked stale (grace delivers them while one fetch
    /// refreshes them) instead of removed.
    pub soft_purge_header: String,
    /// Response headers whose space-separated values tag an object with
    /// surrogate keys; a PURGE carrying the first of them purges by key.
    pub surrogate_key_headers: Vec<String>,
    /// Remove the surrogate key headers before delivery (but `xkey` when
    /// the policy imports vmod xkey: the policy decides, as on Varnish).
    pub strip_surrogate_keys: bool,
    /// Most surrogate keys accepted in one purge request (more gets 400).
    pub max_keys_per_purge: usize,
    /// Pause between two walks of the ban lurker.
    pub ban_lurker_sleep: Seconds,
    /// Most bans in force; a ban beyond it is refused with 429.
    pub max_bans: usize,
    /// Most memory charged for the bans in force (expressions plus each
    /// distinct compiled regex once); a ban that would exceed it is refused
    /// with 429 (413 when it alone exceeds it).
    pub ban_memory: ByteSize,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        InvalidationConfig {
            purge_acl: Acl::loopback(),
            soft_purge_header: "x-purge".into(),
            surrogate_key_headers: vec!["surrogate-key".into(), "xkey".into()],
            strip_surrogate_keys: true,
            max_keys_per_purge: 256,
            ban_lurker_sleep: Seconds(Duration::from_secs(1)),
            max_bans: 10_000,
            ban_memory: ByteSize(64 << 20),
        }
    }
}

/// The client-facing side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on (`"127.0.0.1:6081"`).
    pub listen: Vec<SocketAddr>,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: ByteSize,
    /// Most request headers accepted; more gets 431.
    pub max_headers: usize,
    /// Most ranges served for one `Range` request (RFC 9110 §14.2, nginx's
    /// `max_ranges`); a request with more, or with overlapping ranges, gets
    /// the whole 200. 0: ranges are not served (no `Accept-Ranges`).
    pub max_ranges: usize,
    /// Time a client has to send a complete request head. It also runs
    /// while a keep-alive connection waits for its next request, so it is
    /// the idle keep-alive timeout and the slow-client (slowloris) guard.
    pub header_read_timeout: Seconds,
    /// Longest pause in a client's request body (passed to a backend as it
    /// arrives); beyond it the request is answered 408 and the backend
    /// request abandoned.
    pub body_timeout: Seconds,
    /// Largest request body read into memory before `vcl_recv` when the
    /// policy calls `std.cache_req_body` (so a restart or retry can send it
    /// again); larger bodies, and bodies of unknown length, stream.
    pub max_cached_req_body: ByteSize,
    /// A pipe (an upgraded connection: WebSockets) is closed when nothing
    /// moved either way for this long (Varnish's `pipe_timeout`).
    pub pipe_timeout: Seconds,
    /// Most client connections open at once (per instance); beyond that a
    /// new connection gets `503 too many connections` and is closed.
    pub max_connections: usize,
    /// Name used in the `Via` header.
    pub via_name: String,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Send buffer of each client socket (`SO_SNDBUF`; nginx's `listen …
    /// sndbuf=`). 0: the kernel's, which starts small and grows a
    /// socket's buffer as it is used. Larger lets a large answer (a 64 KiB
    /// range) go out in fewer writes, for up to twice this much kernel
    /// memory per connection, and turns the kernel's growing off.
    pub send_buffer: ByteSize,
    /// Expect a PROXY protocol header (v1 or v2, e.g. HAProxy's
    /// `send-proxy-v2`) on every client connection; its address becomes the
    /// client address (ACLs, X-Forwarded-For).
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the sources (CIDR blocks, e.g. the HAProxy
    /// hosts) that may — and must — send a PROXY header. Connections from
    /// anywhere else are closed: a client that could reach lacquer directly
    /// would otherwise claim any address (one inside `purge_acl`, say).
    /// Unset: loopback only, and `lacquer check` warns.
    pub proxy_protocol_from: Option<Acl>,
    /// Path answered by lacquer itself for load-balancer health checks:
    /// 200 while serving, 503 while draining.
    pub health_path: String,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub drain_timeout: Seconds,
    /// Write an access log line per request to standard output (NCSA
    /// combined, plus cache outcome and time to first byte in ms).
    pub access_log: bool,
    /// Access log lines waiting for standard output, at most; beyond,
    /// lines are dropped and counted rather than stalling requests.
    pub access_log_queue: usize,
    /// Host given to requests that name none (HTTP/1.0 without `Host`):
    /// they are forwarded, cached and purged as requests for this host.
    /// Absent (the default): such requests get 400.
    pub default_host: Option<String>,
}

/// One app server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// Name for logs.
    pub name: String,
    /// `host:port` of the app server.
    pub address: String,
    /// Time to establish a TCP connection.
    pub connect_timeout: Seconds,
    /// Time from sending the request to the first byte of the response head.
    pub first_byte_timeout: Seconds,
    /// Longest pause between two body chunks of a response.
    pub between_bytes_timeout: Seconds,
    /// Most connections open to this backend at once (0 = unlimited).
    pub max_connections: usize,
    /// How long an idle pooled connection is kept for reuse.
    pub idle_timeout: Seconds,
    /// Largest response head (status line and fields) read from it; a
    /// larger one is a 502 (Varnish's `http_resp_size`).
    pub max_response_head: ByteSize,
    /// Most response header fields read from it; more is a 502 (Varnish's
    /// `http_max_hdr`).
    pub max_response_headers: usize,
    /// Health probe (Varnish's `.probe`); absent: always healthy.
    pub probe: Option<ProbeConfig>,
}

/// A health probe: a request sent every `interval`; the backend is healthy
/// while at least `threshold` of the last `window` probes succeeded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Path requested (GET) with `Host` set to the backend address.
    pub url: String,
    /// Time between two probes.
    pub interval: Seconds,
    /// Time a probe may take.
    pub timeout: Seconds,
    /// Probes remembered (1 to 64).
    pub window: u32,
    /// Successes among them needed to be healthy.
    pub threshold: u32,
    /// Status a successful probe answers.
    pub expected_status: u16,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            url: "/".into(),
            interval: Seconds(Duration::from_secs(5)),
            timeout: Seconds(Duration::from_secs(2)),
            window: 8,
            threshold: 3,
            expected_status: 200,
        }
    }
}

/// How requests are spread over the backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectorKind {
    /// In turn.
    #[default]
    RoundRobin,
    /// At random.
    Random,
    /// By a hash of the URL (or of `hash_header`): the same key goes to the
    /// same backend while it is healthy.
    Hash,
    /// The first backend only (Varnish's default backend): the backends a
    /// VCL policy declares, until it names another per request.
    First,
}

/// The director in front of the backends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorConfig {
    /// round-robin (default), random or hash.
    pub kind: DirectorKind,
    /// For `hash`: hash this request header instead of the URL.
    pub hash_header: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 6081))],
            max_header_bytes: ByteSize(16 << 10),
            max_headers: 100,
            max_ranges: 16,
            max_cached_req_body: ByteSize(1 << 20),
            header_read_timeout: Seconds(Duration::from_secs(10)),
            body_timeout: Seconds(Duration::from_secs(30)),
            pipe_timeout: Seconds(Duration::from_secs(60)),
            max_connections: 10_000,
            via_name: "lacquer".into(),
            threads: 0,
            send_buffer: ByteSize(0),
            proxy_protocol: false,
            proxy_protocol_from: None,
            health_path: "/healthz".into(),
            drain_timeout: Seconds(Duration::from_secs(30)),
            access_log: false,
            access_log_queue: 8192,
            default_host: None,
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            name: "default".into(),
            address: String::new(),
            connect_timeout: Seconds(Duration::from_millis(3500)),
            first_byte_timeout: Seconds(Duration::from_secs(60)),
            between_bytes_timeout: Seconds(Duration::from_secs(60)),
            max_connections: 0,
            idle_timeout: Seconds(Duration::from_secs(60)),
            max_response_head: ByteSize(64 << 10),
            max_response_headers: 100,
            probe: None,
        }
    }
}

impl Config {
    /// Reads and validates a settings file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::from_toml(&text, &file)
    }

    /// Parses and validates settings text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            ConfigError::At {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// The sources trusted to send a PROXY header (see
    /// [`ServerConfig::proxy_protocol_from`]).
    pub fn proxy_sources(&self) -> Acl {
        self.server
            .proxy_protocol_from
            .clone()
            .unwrap_or_else(Acl::loopback)
    }

    /// Checks values that serde cannot check alone.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_string(),
            message,
        };
        if self.server.listen.is_empty() {
            return Err(invalid(
                "server.listen: at least one address is needed".into(),
            ));
        }
        let via_ok = !self.server.via_name.is_empty()
            && self
                .server
                .via_name
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ');
        if !via_ok {
            return Err(invalid(
                "server.via_name: must be printable ASCII and not empty".into(),
            ));
        }
        if let Some(h) = &self.server.default_host {
            crate::http::headers::normalize_host(h, 80).map_err(|e| {
                invalid(format!(
                    "server.default_host: {e}: {h:?} (expected host[:port])"
                ))
            })?;
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections: must be at least 1".into()));
        }
        if self.server.max_header_bytes.0 < 8192 {
            return Err(invalid(
                "server.max_header_bytes: must be at least 8KiB (8192)".into(),
            ));
        }
        for (i, b) in self.backend.iter().enumerate() {
            check_authority(&b.address)
                .map_err(|m| invalid(format!("backend[{i}] ({}): address {m}", b.name)))?;
            if self.backend[..i].iter().any(|o| o.name == b.name) {
                return Err(invalid(format!(
                    "backend[{i}]: name {:?} is used twice",
                    b.name
                )));
            }
            if b.max_response_head.0 < 1024 || !(1..=10_000).contains(&b.max_response_headers) {
                return Err(invalid(format!(
                    "backend[{i}] ({}): max_response_head must be at least 1KiB and max_response_headers 1 to 10000",
                    b.name
                )));
            }
            if let Some(p) = &b.probe {
                if !(1..=64).contains(&p.window) || p.threshold == 0 || p.threshold > p.window {
                    return Err(invalid(format!(
                        "backend[{i}] ({}): probe needs 1 <= threshold <= window <= 64",
                        b.name
                    )));
                }
                if !p.url.starts_with('/') || p.interval.0.is_zero() {
                    return Err(invalid(format!(
                        "backend[{i}] ({}): probe url must start with / and interval be > 0",
                        b.name
                    )));
                }
            }
        }
        if let Some(h) = &self.director.hash_header {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "director.hash_header: {h:?} is not a header name"
                )));
            }
        }
        self.esi.validate().map_err(invalid)?;
        self.compression.validate().map_err(invalid)?;
        let c = &self.cache;
        if !(0.0..=1.0).contains(&c.heuristic_fraction) {
            return Err(invalid(
                "cache.heuristic_fraction: must be between 0 and 1".into(),
            ));
        }
        if c.storage.0 == 0 {
            return Err(invalid("cache.storage: must be more than 0".into()));
        }
        if c.max_object_size.0 > c.storage.0 {
            return Err(invalid(
                "cache.max_object_size: larger than cache.storage".into(),
            ));
        }
        let inv = &self.invalidation;
        for name in std::iter::once(&inv.soft_purge_header).chain(&inv.surrogate_key_headers) {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(format!(
                    "invalidation: {name:?} is not a valid header name"
                )));
            }
        }
        if inv.max_bans == 0 {
            return Err(invalid("invalidation.max_bans: must be at least 1".into()));
        }
        if inv.ban_memory.0 < 1 << 20 {
            return Err(invalid(
                "invalidation.ban_memory: must be at least 1MiB".into(),
            ));
        }
        let cl = &self.cluster;
        for p in &cl.peers {
            check_authority(p).map_err(|m| invalid(format!("cluster.peers: {m}")))?;
        }
        if !cl.peers.is_empty() && cl.secret.is_empty() {
            return Err(invalid(
                "cluster.secret: needed when cluster.peers are set".into(),
            ));
        }
        // A secret turns POST /cluster/apply on, peers or not.
        check_secret("cluster.secret", &cl.secret).map_err(invalid)?;
        check_secret("admin.secret", &self.admin.secret).map_err(invalid)?;
        if c.max_variants == 0 {
            return Err(invalid("cache.max_variants: must be at least 1".into()));
        }
        Ok(())
    }

    /// Settings that work but are probably a mistake, one sentence each:
    /// `lacquer check` prints them and `lacquer run` logs them at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(addr) = self.admin.listen {
            if !addr.ip().is_loopback() && self.admin.secret.is_empty() {
                out.push(format!(
                    "admin.listen = {addr} is not a loopback address and admin.secret is not set: \
                     anyone who reaches it can purge, ban, reload and read metrics; \
                     set admin.secret (openssl rand -hex 32) or listen on 127.0.0.1"
                ));
            }
        }
        if self.server.proxy_protocol && self.server.proxy_protocol_from.is_none() {
            out.push(
                "server.proxy_protocol is on without server.proxy_protocol_from: only loopback \
                 sources may send a PROXY header; name the HAProxy hosts"
                    .into(),
            );
        }
        out
    }

    /// The backend every request goes to (the first configured).
    pub fn primary_backend(&self) -> Option<&BackendConfig> {
        self.backend.first()
    }
}

/// Fewest characters a secret may have.
pub const MIN_SECRET_LEN: usize = 16;

/// Checks a secret setting named `key`: empty (off), or at least
/// [`MIN_SECRET_LEN`] printable ASCII characters without spaces, and not a
/// placeholder left from an example ("CHANGE-ME…").
fn check_secret(key: &str, secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Ok(());
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{key}: printable ASCII without spaces"));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "{key}: at least {MIN_SECRET_LEN} characters are needed (generate one: openssl rand -hex 32)"
        ));
    }
    let folded: String = secret
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if folded.contains("changeme") {
        return Err(format!(
            "{key}: still the example's placeholder; generate a secret: openssl rand -hex 32"
        ));
    }
    Ok(())
}

/// Checks that `s` is `host:port` with a non-empty host and a numeric port.
pub fn check_authority(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} must be host:port"))?;
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{s:?} has no valid port"))?;
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::from_toml("", "x.toml").unwrap();
        assert_eq!(c.cache.storage, ByteSize(256 << 20));
        assert!(c.cache.default_ttl.is_none());
        assert!(c.backend.is_empty());
    }

    #[test]
    fn full_example_parses() {
        let text = include_str!("../../fixtures/lacquer.toml");
        let c = Config::from_toml(text, "fixtures/lacquer.toml").unwrap();
        assert_eq!(c.primary_backend().unwrap().address, "127.0.0.1:8080");
    }

    #[test]
    fn esi_settings_are_checked() {
        let e = Config::from_toml("[esi]\npaths = [\"(unclosed\"]\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("e.toml: esi.paths: \"(unclosed\""), "{e}");
        let e = Config::from_toml("[esi]\non_error = \"explode\"\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("e.toml:2:12: unknown variant `explode`"),
            "{e}"
        );
        let c = Config::from_toml("[esi]\non_error = \"abort\"\n", "e.toml").unwrap();
        assert_eq!(c.esi.on_error, EsiOnError::Abort);
    }

    #[test]
    fn unknown_key_has_position() {
        let e = Config::from_toml("[cache]\nstorage = \"1MiB\"\n  gracee = \"1s\"\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:3:3: unknown field `gracee`"), "{e}");
    }

    #[test]
    fn bad_value_has_position() {
        let e = Config::from_toml("[cache]\nstorage = \"12 parsecs\"\n", "b.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("b.toml:2:11: unknown size unit"), "{e}");
        let e = Config::from_toml("[[backend]]\nconnect_timeout = \"soon\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2:19: expected a duration"), "{e}");
    }

    #[test]
    fn syntax_error_has_position() {
        let e = Config::from_toml("[server\nlisten = 1\n", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.toml:1:"), "{e}");
    }

    #[test]
    fn cross_field_checks() {
        let e = Config::from_toml("[[backend]]\naddress = \"nohost\"\n", "e.toml").unwrap_err();
        assert!(e.to_string().contains("must be host:port"), "{e}");
        let e = Config::from_toml(
            "[cache]\nstorage = \"1MiB\"\nmax_object_size = \"2MiB\"\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("larger than cache.storage"), "{e}");
        for bad in ["", "u@www.example", "www.example/x", "a:b:c"] {
            let text = format!("[server]\ndefault_host = {bad:?}\n");
            let e = Config::from_toml(&text, "g.toml").unwrap_err();
            assert!(e.to_string().contains("server.default_host"), "{e}");
        }
        let c = Config::from_toml("[server]\ndefault_host = \"www.example\"\n", "h.toml");
        assert_eq!(
            c.unwrap().server.default_host.as_deref(),
            Some("www.example")
        );
    }

    #[test]
    fn secrets_are_long_and_not_placeholders() {
        for (secret, error) in [
            ("short", "at least 16 characters"),
            ("CHANGE-ME-to-a-long-random-string", "placeholder"),
            ("compose-demo-secret-change-me", "placeholder"),
            ("with a space in the middle", "printable ASCII"),
        ] {
            let text = format!("[cluster]\nsecret = {secret:?}\n");
            let e = Config::from_toml(&text, "s.toml").unwrap_err().to_string();
            assert!(e.contains("cluster.secret") && e.contains(error), "{e}");
        }
        let text = "[cluster]\nsecret = \"9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c\"\n";
        assert!(Config::from_toml(text, "s.toml").is_ok());
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_column("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_column("", 10), (1, 1));
    }
}
