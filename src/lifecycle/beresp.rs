//! The backend response as `vcl_backend_response` sees it (`beresp.*`).

use http::{HeaderMap, StatusCode};
use std::time::Duration;

use crate::cache::storable::NoCacheReason;

/// What `vcl_backend_response` sees and may change: the response status
/// and headers, its lifetimes (remaining TTL, grace, keep) and whether it
/// is stored.
///
/// After the policy ran, RFC 9111 decides again on the changed headers (so
/// `unset beresp.http.Set-Cookie` makes a response storable, as in Varnish's
/// built-in VCL); then what the policy set explicitly wins: a TTL makes a
/// response that only lacked freshness information storable — any
/// response, `no-store` and `private` included, when the sub ends with an
/// explicit `return (deliver)` (Varnish reads those only in its built-in
/// vcl_backend_response, which that return skips) — and `uncacheable`
/// forces the verdict either way.
#[derive(Debug)]
pub struct Beresp<'a> {
    /// Status.
    pub status: StatusCode,
    /// Headers as they will be stored and delivered.
    pub headers: &'a mut HeaderMap,
    /// Remaining time to live.
    pub ttl: Duration,
    /// Grace after the TTL.
    pub grace: Duration,
    /// Keep after TTL and grace.
    pub keep: Duration,
    /// The response's age when it arrived.
    pub age: Duration,
    /// Not stored.
    pub uncacheable: bool,
    /// A reason phrase the policy set (`beresp.reason`). It reads back in
    /// the policy; clients get the status's standard phrase.
    pub phrase: Option<String>,
    /// The backend answered a revalidation with 304 (status and headers
    /// are the stored object's, refreshed).
    pub was_304: bool,
    /// Why RFC 9111 would not store it.
    pub reason: Option<NoCacheReason>,
    /// What the policy set: headers or anything else.
    pub changed: bool,
    /// The policy set `ttl`.
    pub set_ttl: bool,
    /// The policy set `grace`.
    pub set_grace: bool,
    /// The policy set `keep`.
    pub set_keep: bool,
    /// The policy set `uncacheable`.
    pub set_uncacheable: bool,
    /// Process the body as ESI (starts as the handshake and the `[esi]`
    /// settings say; the policy may change it).
    pub do_esi: bool,
    /// gzip the body when it is stored whatever its media type, unless it
    /// is coded already (`beresp.do_gzip`; false: `compression.types`
    /// decide).
    pub do_gzip: bool,
    /// brotli the body when it is stored whatever its media type, unless
    /// it is coded already (`beresp.do_brotli`, a lacquer extension; wins
    /// over `do_zstd` and `do_gzip`).
    pub do_brotli: bool,
    /// zstd the body when it is stored whatever its media type, unless it
    /// is coded already (`beresp.do_zstd`, a lacquer extension; wins over
    /// `do_gzip`).
    pub do_zstd: bool,
    /// Store a gzip'd body decoded (`beresp.do_gunzip`; wins over
    /// `do_gzip`, as in Varnish, and over `do_brotli` / `do_zstd`).
    pub do_gunzip: bool,
}
