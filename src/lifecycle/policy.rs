//! The policy's interface: one method per Varnish subroutine, the actions
//! each may return, and which optional hooks a policy has. The defaults are
//! the built-in behaviour; `crate::policy` implements it (the built-in
//! policy, and a vcl-lite program).
//!
//! Cost: `recv` and `hash` run on every request. The other hooks run only
//! when [`Policy::hooks`] says the policy has them, so a policy without, say,
//! `vcl_deliver` costs nothing on delivery — not even building the values
//! the hook would read.

use http::{Method, Response, StatusCode};
use std::time::Duration;

use super::{Bereq, Beresp, ObjMeta, Synthetic, Task};
use crate::body::RespBody;
use crate::cache::{CacheKey, CachedObject};

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
    /// Start over at `recv` (the request as the policy left it).
    Restart,
    /// Hand the connection to the backend (`return (pipe)`): for a request
    /// asking to switch protocols, a tunnel once the backend answers `101`;
    /// for any other request, a pass (hyper gives a connection away only
    /// after a `101`).
    Pipe,
}

/// What a client-side hook (`hit`, `miss`, `pass`, `purge`, `deliver`,
/// `synth`) decided. Each hook is only ever given the actions its Varnish
/// subroutine allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// No decision (`vcl_*` ended without `return`): the built-in
    /// behaviour goes on.
    Builtin,
    /// `deliver` / `fetch`: go on along the normal path. For `synth`: send
    /// the response as the policy built it.
    Continue,
    /// `pass` (from `hit` or `miss`): fetch without storing.
    Pass,
    /// `miss` / `fetch` from `hit` (Varnish 4 and 5 policies): fetch as on
    /// a miss, the hit object used to revalidate.
    Miss,
    /// `synth(status, reason)`: answer with a synthetic response.
    Synth(StatusCode, String),
    /// `restart`: start over at `recv`.
    Restart,
    /// `fail`: the request fails (a 503).
    Fail,
}

/// What a backend-side hook (`backend_fetch`, `backend_response`,
/// `backend_error`) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAction {
    /// No decision: the built-in behaviour goes on.
    Builtin,
    /// `fetch` / `deliver`.
    Continue,
    /// `retry`: fetch again (a limited number of times).
    Retry,
    /// `abandon`: give the fetch up (the client gets a 503).
    Abandon,
    /// `error(status, reason)`: go to `backend_error` with this status.
    Error(StatusCode, String),
    /// `pass(duration)` from `backend_response`: deliver, store nothing, and
    /// fetch the key without coalescing for this long.
    HitForPass(Duration),
    /// `fail`: like `abandon`.
    Fail,
}

/// Which optional hooks a policy has (`recv` and `hash` always run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `vcl_hit`
    pub hit: bool,
    /// `vcl_miss`
    pub miss: bool,
    /// `vcl_pass`
    pub pass: bool,
    /// `vcl_purge`
    pub purge: bool,
    /// `vcl_deliver`
    pub deliver: bool,
    /// `vcl_synth`
    pub synth: bool,
    /// `vcl_backend_fetch`
    pub backend_fetch: bool,
    /// `vcl_backend_response`
    pub backend_response: bool,
    /// `vcl_backend_error`
    pub backend_error: bool,
    /// `vcl_pipe`
    pub pipe: bool,
    /// The policy calls `std.rollback`: each request keeps a copy of
    /// itself as received ([`super::Task::original`]), each backend request
    /// as first made ([`super::Bereq::original`]).
    pub rollback: bool,
    /// The policy imports vmod xkey: objects are tagged by their `xkey`
    /// header too, whatever `invalidation.surrogate_key_headers` says (as
    /// Varnish's xkey reads it).
    pub xkey: bool,
    /// A loaded VCL with Varnish's built-in VCL behind it: what is stored
    /// is decided as Varnish does (`beresp.uncacheable` and the TTL, which
    /// the built-in `vcl_backend_response` sets from Set-Cookie, no-store,
    /// private, Vary: * …), not by RFC 9111's verdict.
    pub varnish: bool,
    /// The policy calls `std.cache_req_body`: request bodies of a known
    /// length up to `server.max_cached_req_body` are read before `vcl_recv`
    /// ([`super::Task::cached_body`]).
    pub cache_req_body: bool,
}

/// Response headers the making of a response from the cache reads (the
/// media type of a multi-range 206's parts and whether an ESI page is
/// compressed; the coding, which refuses several ranges of a coded body;
/// `no-transform`): never left out of it, whatever `vcl_deliver` removes
/// first ([`Policy::deliver_removes`]).
pub const READ_WHILE_DELIVERING: [http::HeaderName; 3] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_ENCODING,
    http::header::CACHE_CONTROL,
];

/// Decisions taken at each phase.
pub trait Policy: Send + Sync + 'static {
    /// The optional hooks this policy has; the others are never called.
    /// Built-in: none.
    fn hooks(&self) -> Hooks {
        Hooks::default()
    }

    /// The backends the policy declares (VCL `backend` declarations), in
    /// order; the first is the default. None: the settings' backends.
    fn backends(&self) -> Vec<crate::config::BackendConfig> {
        Vec::new()
    }

    /// The backend a fetch goes to when the policy named one
    /// (`req.backend_hint`, `bereq.backend`): a director's name stands for
    /// the backend it chooses now (hash and shard directors by `key`, the
    /// backend request's host and URL); a backend's name for itself.
    /// `None`: the director has no healthy backend. By default the name
    /// itself.
    fn resolve_backend(
        &self,
        name: &str,
        key: &str,
        health: &dyn super::BackendHealth,
    ) -> Option<String> {
        let _ = (key, health);
        Some(name.to_string())
    }

    /// The response headers `vcl_deliver` removes before anything could
    /// see them (`unset resp.http.Server;` at its top): a response made
    /// for it may leave them out, and say so in
    /// [`ObjMeta::removed_early`](super::ObjMeta::removed_early). Never one
    /// of [`READ_WHILE_DELIVERING`]. None by default.
    fn deliver_removes(&self) -> &crate::http::name_set::NameSet {
        crate::http::name_set::NameSet::empty()
    }

    /// `vcl_recv`: cache lookup, pass, or synthetic answer.
    ///
    /// Built-in: PURGE purges, BAN bans, a request asking to switch
    /// protocols (`Upgrade: websocket` …) is piped, GET and HEAD are looked
    /// up, every other method is passed.
    /// Unlike Varnish's built-in VCL, requests carrying `Cookie` or
    /// `Authorization` are looked up too: RFC 9111 storability rules decide
    /// (a response to an `Authorization` request is stored only when it says
    /// `public`, `s-maxage` or `must-revalidate`; `Set-Cookie` responses are
    /// not stored; and without `default_ttl`, nothing without explicit
    /// freshness or a validator-based heuristic is stored).
    fn recv(&self, req: &mut Task) -> RecvAction {
        match req.method.as_str() {
            "PURGE" => return RecvAction::Purge,
            "BAN" => return RecvAction::Ban,
            _ => {}
        }
        if req.upgrade.is_some() {
            return RecvAction::Pipe;
        }
        if req.method == Method::GET || req.method == Method::HEAD {
            RecvAction::Hash
        } else {
            RecvAction::Pass
        }
    }

    /// `vcl_hash`: the key, by default URL then Host. As in Varnish, the
    /// request may be changed here (`set req.http.…`), and the change stays.
    fn hash(&self, req: &mut Task) -> CacheKey {
        CacheKey::for_request(&req.host, &req.url)
    }

    /// `vcl_hit`: a fresh or in-grace object was found. Built-in: deliver
    /// it (an object in grace is refreshed in the background).
    fn hit(&self, _req: &mut Task, _obj: &CachedObject) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_miss`: nothing usable was found (or only a stale object to
    /// revalidate). Built-in: fetch.
    fn miss(&self, _req: &mut Task) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_pass`: the request is about to be passed. Built-in: fetch.
    fn pass(&self, _req: &mut Task) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_purge`: after a PURGE was applied. Built-in: lacquer's answer
    /// (200 with what was purged, 404 when nothing was stored).
    fn purge(&self, _req: &mut Task) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_deliver`: a response is about to go to the client. Built-in:
    /// send it.
    fn deliver(
        &self,
        _req: &mut Task,
        _resp: &mut Response<RespBody>,
        _obj: &ObjMeta,
    ) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_synth`: a synthetic answer is being made. Built-in: lacquer's
    /// plain-text body (status and reason).
    fn synth(&self, _req: &mut Task, _resp: &mut Synthetic) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_pipe`: the request is about to be piped; `bereq` is the head
    /// going to the backend (`bereq.http.*`) and `bereq_url` its target
    /// (`bereq.url`, the request's until the policy sets it; `bereq.method`
    /// is the request's). Only `Continue` (`pipe`), `Synth` and `Fail` are
    /// given. Built-in: pipe.
    fn pipe(
        &self,
        _req: &mut Task,
        _bereq: &mut http::HeaderMap,
        _bereq_url: &mut String,
    ) -> ClientAction {
        ClientAction::Builtin
    }

    /// `vcl_backend_fetch`: a backend request is about to be sent.
    fn backend_fetch(&self, _bereq: &mut Bereq) -> BackendAction {
        BackendAction::Builtin
    }

    /// `vcl_backend_response`: may change a backend response's headers,
    /// status, lifetimes and storability (set `beresp.changed`). Built-in:
    /// nothing to change, RFC 9111 decides.
    fn backend_response(&self, _bereq: &mut Bereq, _beresp: &mut Beresp<'_>) -> BackendAction {
        BackendAction::Builtin
    }

    /// `vcl_backend_error`: the fetch failed. `beresp` starts as a 503
    /// with an empty body. Built-in: lacquer's own error answer (through
    /// `synth`).
    fn backend_error(&self, _bereq: &mut Bereq, _beresp: &mut Synthetic) -> BackendAction {
        BackendAction::Builtin
    }
}
