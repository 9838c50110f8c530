//! Counters, shared by every worker thread (relaxed atomics: each is one
//! uncontended-in-practice add per event), rendered in Prometheus text
//! format at `GET /metrics` on the admin listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

use crate::lifecycle::CacheOutcome;

/// What removed or marked stored objects, for the invalidations counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationKind {
    /// A PURGE of a URL (client, admin API or peer).
    Purge,
    /// A purge by surrogate key.
    KeyPurge,
    /// A ban added.
    Ban,
    /// A successful POST, PUT, DELETE or PATCH that removed stored objects
    /// (RFC 9111 §4.4).
    UnsafeMethod,
}

const INVALIDATION_KINDS: [(InvalidationKind, &str); 4] = [
    (InvalidationKind::Purge, "purge"),
    (InvalidationKind::KeyPurge, "key_purge"),
    (InvalidationKind::Ban, "ban"),
    (InvalidationKind::UnsafeMethod, "unsafe_method"),
];

/// A request lacquer answered with an error that is the client's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// Refused at recv (no or a bad Host, userinfo, CONNECT, ...).
    Refused,
    /// A request body hyper could not decode (bad chunked framing) or that
    /// ended early: 400.
    MalformedBody,
    /// A request body that stalled beyond `server.body_timeout`: 408.
    BodyTimeout,
}

const CLIENT_ERROR_KINDS: [(ClientErrorKind, &str); 3] = [
    (ClientErrorKind::Refused, "refused"),
    (ClientErrorKind::MalformedBody, "malformed_body"),
    (ClientErrorKind::BodyTimeout, "body_timeout"),
];

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; CacheOutcome::ALL.len()],
    backend_status: [AtomicU64; 5], // 1xx..5xx
    backend_errors: AtomicU64,
    client_errors: [AtomicU64; 3],
    coalesced: AtomicU64,
    invalidations: [AtomicU64; 4],
    esi_includes: AtomicU64,
    esi_errors: AtomicU64,
    esi_decodes: AtomicU64,
    esi_decoding: AtomicU64,
    /// Stored bodies decoded for clients that do not accept their coding.
    body_decodes: AtomicU64,
    /// Bodies compressed when stored.
    store_compressions: AtomicU64,
    /// Shared with the pieces of assembled pages that hold a charge (see
    /// `pipeline::esi`), which outlive any borrow of the metrics.
    esi_buffered: std::sync::Arc<AtomicU64>,
}

/// A gzip decode of an ESI page or fragment in progress (see
/// [`Metrics::decoding`]); counted as done when dropped.
#[derive(Debug)]
pub struct Decoding<'a>(&'a Metrics);

impl Drop for Decoding<'_> {
    fn drop(&mut self) {
        self.0.esi_decoding.fetch_sub(1, Ordering::Relaxed);
        add(&self.0.esi_decodes);
    }
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a client request by how it was served.
    pub fn count_served(&self, outcome: CacheOutcome) {
        add(&self.requests[outcome.index()]);
    }

    /// Counts a backend answer by status class.
    pub fn count_backend(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        add(&self.backend_status[class]);
    }

    /// Counts a failed backend exchange (connect, timeout, garbage).
    pub fn count_backend_error(&self) {
        add(&self.backend_errors);
    }

    /// Counts a request answered with an error of the client's making.
    pub fn count_client_error(&self, kind: ClientErrorKind) {
        add(&self.client_errors[kind as usize]);
    }

    /// Counts a request that waited on another's fetch.
    pub fn count_coalesced(&self) {
        add(&self.coalesced);
    }

    /// Counts an applied invalidation.
    pub fn count_invalidation(&self, kind: InvalidationKind) {
        add(&self.invalidations[kind as usize]);
    }

    /// Counts an ESI include met while assembling a page.
    pub fn count_esi_include(&self) {
        add(&self.esi_includes);
    }

    /// Counts ESI errors: malformed markup removed, includes failed,
    /// refused, looping or too deep.
    pub fn count_esi_errors(&self, n: u64) {
        self.esi_errors.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a gzip decode of an ESI page or fragment body from now until
    /// the guard is dropped (`lacquer_esi_decoding`), then as done
    /// (`lacquer_esi_decodes_total`).
    pub fn decoding(&self) -> Decoding<'_> {
        add(&self.esi_decoding);
        Decoding(self)
    }

    /// Counts a stored body decoded for clients that do not accept its
    /// coding (`lacquer_body_decodes_total`).
    pub fn count_body_decode(&self) {
        add(&self.body_decodes);
    }

    /// Counts a body compressed when stored
    /// (`lacquer_store_compressions_total`).
    pub fn count_store_compression(&self) {
        add(&self.store_compressions);
    }

    /// The gauge of bytes assembled ESI pages hold for their clients
    /// (`lacquer_esi_buffered_bytes`), for the charges to update.
    pub fn esi_buffered(&self) -> std::sync::Arc<AtomicU64> {
        self.esi_buffered.clone()
    }

    /// The Prometheus text exposition, with the store's and ban list's
    /// gauges given by the caller.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP lacquer_requests_total Client requests by how they were served."
        );
        let _ = writeln!(out, "# TYPE lacquer_requests_total counter");
        for o in CacheOutcome::ALL {
            let name = o.as_str().to_ascii_lowercase();
            let _ = writeln!(
                out,
                "lacquer_requests_total{{outcome=\"{name}\"}} {}",
                get(&self.requests[o.index()])
            );
        }
        let _ = writeln!(
            out,
            "# HELP lacquer_backend_responses_total Backend responses by status class."
        );
        let _ = writeln!(out, "# TYPE lacquer_backend_responses_total counter");
        for (i, c) in self.backend_status.iter().enumerate() {
            let _ = writeln!(
                out,
                "lacquer_backend_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
        let labelled = [
            (
                "lacquer_invalidations_total",
                "Invalidations applied, by kind (purges, key purges and bans from clients, admin or peers; unsafe methods that removed objects).",
                &INVALIDATION_KINDS.map(|(k, n)| (n, get(&self.invalidations[k as usize])))[..],
            ),
            (
                "lacquer_client_errors_total",
                "Requests answered with an error of the client's making, by kind.",
                &CLIENT_ERROR_KINDS.map(|(k, n)| (n, get(&self.client_errors[k as usize])))[..],
            ),
        ];
        for (name, help, values) in labelled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, v) in values {
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
            }
        }
        let counters = [
            (
                "lacquer_backend_errors_total",
                "Backend exchanges that failed (connect, timeout, protocol).",
                get(&self.backend_errors),
            ),
            (
                "lacquer_coalesced_total",
                "Requests that waited on another request's fetch.",
                get(&self.coalesced),
            ),
            (
                "lacquer_esi_includes_total",
                "ESI includes met while assembling pages (from cache or fetched).",
                get(&self.esi_includes),
            ),
            (
                "lacquer_esi_errors_total",
                "ESI errors: malformed markup removed, includes failed, refused, looping or too deep.",
                get(&self.esi_errors),
            ),
            (
                "lacquer_access_log_dropped_total",
                "Access log lines dropped because standard output did not keep up.",
                super::access_log::dropped(),
            ),
            (
                "lacquer_esi_decodes_total",
                "Gzip'd ESI pages and fragments decoded (a stored fragment once, not at every hit).",
                get(&self.esi_decodes),
            ),
            (
                "lacquer_body_decodes_total",
                "Stored bodies decoded for clients that do not accept their coding (once per object).",
                get(&self.body_decodes),
            ),
            (
                "lacquer_store_compressions_total",
                "Bodies compressed when stored (compression.types, beresp.do_gzip, do_brotli, do_zstd).",
                get(&self.store_compressions),
            ),
            (
                "lacquer_evictions_total",
                "Objects evicted for space.",
                gauges.evictions,
            ),
            (
                "lacquer_surrogate_keys_ignored_total",
                "Surrogate keys ignored on stored objects, beyond cache.max_surrogate_keys.",
                gauges.ignored_surrogate_keys,
            ),
            (
                "lacquer_expirations_total",
                "Entries removed after their TTL, grace and keep.",
                gauges.expirations,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let gauges = [
            (
                "lacquer_keys",
                "Keys stored (URLs with objects, and hit-for-miss markers).",
                gauges.objects,
            ),
            (
                "lacquer_stored_bytes",
                "Bytes charged against the storage budget.",
                gauges.bytes,
            ),
            (
                "lacquer_surrogate_keys",
                "Distinct surrogate keys indexed for purges by key.",
                gauges.surrogate_keys,
            ),
            ("lacquer_bans", "Bans in force.", gauges.bans),
            (
                "lacquer_ban_bytes",
                "Bytes charged for the bans in force against invalidation.ban_memory.",
                gauges.ban_bytes,
            ),
            (
                "lacquer_esi_decoding",
                "Gzip decodes of ESI pages and fragments in progress.",
                get(&self.esi_decoding),
            ),
            (
                "lacquer_esi_buffered_bytes",
                "Fragment bytes assembled ESI pages hold until their clients read them (see esi.max_buffered).",
                get(&self.esi_buffered),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

/// Values read from the store and ban list at render time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Keys stored.
    pub objects: u64,
    /// Bytes charged.
    pub bytes: u64,
    /// Distinct surrogate keys indexed.
    pub surrogate_keys: u64,
    /// Surrogate keys ignored so far (beyond the per-object cap).
    pub ignored_surrogate_keys: u64,
    /// Bans in force.
    pub bans: u64,
    /// Bytes charged for the bans in force.
    pub ban_bytes: u64,
    /// Evictions for space so far.
    pub evictions: u64,
    /// Expirations so far.
    pub expirations: u64,
}
