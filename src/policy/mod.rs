//! The policy hooks of the request lifecycle, and lacquer's built-in policy.
//!
//! Each method is one Varnish subroutine; the defaults are the built-in
//! behaviour. vcl-lite programs will implement this trait.

pub mod vcl;

use http::{Method, StatusCode};

use crate::cache::CacheKey;
use crate::pipeline::Beresp;
use crate::pipeline::RequestCtx;

/// What `recv` decides for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvAction {
    /// Look the request up in the cache.
    Hash,
    /// Send it to the backend, store nothing.
    Pass,
    /// Invalidate (PURGE): the URL's objects, or by surrogate key. The
    /// purge ACL in the settings is checked before anything changes.
    Purge,
    /// Add the ban in the `X-Ban` header (same ACL as purges).
    Ban,
    /// Answer with a synthetic response.
    Synth(StatusCode, String),
}

/// Decisions taken at each phase.
pub trait Policy: Send + Sync + 'static {
    /// `vcl_recv`: cache lookup, pass, or synthetic answer.
    ///
    /// Built-in: PURGE purges, BAN bans, GET and HEAD are looked up, every other
    /// method is passed.
    /// Unlike Varnish's built-in VCL, requests carrying `Cookie` or
    /// `Authorization` are looked up too: RFC 9111 storability rules decide
    /// (a response to an `Authorization` request is stored only when it says
    /// `public`, `s-maxage` or `must-revalidate`; `Set-Cookie` responses are
    /// not stored; and without `default_ttl`, nothing without explicit
    /// freshness or a validator-based heuristic is stored).
    fn recv(&self, req: &mut RequestCtx) -> RecvAction {
        match req.method.as_str() {
            "PURGE" => return RecvAction::Purge,
            "BAN" => return RecvAction::Ban,
            _ => {}
        }
        if req.method == Method::GET || req.method == Method::HEAD {
            RecvAction::Hash
        } else {
            RecvAction::Pass
        }
    }

    /// `vcl_backend_response`: may change a backend response's headers,
    /// lifetimes and storability (set `beresp.changed`). Built-in: nothing
    /// to change, RFC 9111 decides.
    fn backend_response(&self, _req: &RequestCtx, _beresp: &mut Beresp<'_>) {}

    /// `vcl_hash`: the key, by default URL then Host.
    fn hash(&self, req: &RequestCtx) -> CacheKey {
        CacheKey::for_request(&req.host, &req.url)
    }
}

/// lacquer's built-in policy.
#[derive(Debug, Default, Clone, Copy)]
pub struct Builtin;

impl Policy for Builtin {}
