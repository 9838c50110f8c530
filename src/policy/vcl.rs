//! A vcl-lite program as lacquer's policy: each of its subroutines runs
//! where Varnish runs it (see docs/LIFECYCLE.md). As varnishd appends its
//! built-in VCL to every VCL it loads, a subroutine that is not defined or
//! ends without `return` goes on with Varnish's built-in subroutine
//! (`vcl-lite/builtin.vcl`: requests with `Cookie` or `Authorization`
//! passed, unknown methods piped, uncacheable answers made hit-for-miss;
//! its `vcl_recv` runs as Rust, `builtin_recv.rs`),
//! then with lacquer's own behaviour for that step. Without a policy file
//! lacquer runs its RFC 9111-first policy instead (`Builtin`,
//! `vcl-lite/default.vcl`). Only the subroutines the program or the
//! built-in VCL define are ever run: [`Policy::hooks`] tells the pipeline
//! which, so the others cost nothing.
//!
//! A run-time failure (a value lacquer refuses, a computed status out of
//! range) is logged with its place in the file and treated as `fail`: a
//! 503, as in Varnish.

mod backend;
mod builtin_recv;
mod client;
mod declared;
mod directors;
mod pipe;
mod values;

use http::{Response, StatusCode};
use std::path::Path;
use std::time::Duration;
use vcl_lite::{Action, Program, RuntimeError, Sub};

use super::{BackendAction, Builtin, ClientAction, Hooks, Policy, RecvAction};
use crate::body::RespBody;
use crate::cache::{CacheKey, CachedObject};
use crate::lifecycle::{Bereq, Beresp, ObjMeta, Synthetic, Task};
use backend::{BackendView, BerespPart};
use client::{ClientView, RespPart};

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The path.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// It does not compile (each message names file, line and column and
    /// shows the line).
    #[error("{0}")]
    Compile(vcl_lite::Errors),
    /// Its `vcl_init` failed (`return (fail)`): it is not used, as in
    /// Varnish.
    #[error("{0}")]
    Init(RuntimeError),
}

/// A compiled vcl-lite policy.
#[derive(Debug)]
pub struct VclPolicy {
    program: Program,
    shared: Shared,
    /// `program.early_unsets(Sub::Deliver)` as header names.
    deliver_removes: crate::http::name_set::NameSet,
}

/// What every subroutine's view reads besides the request.
#[derive(Debug)]
struct Shared {
    /// `server.hostname` and `server.identity`.
    hostname: String,
    /// The directors made in `vcl_init`, with their state.
    directors: directors::Directors,
}

impl VclPolicy {
    /// Reads and compiles a policy file and the files it includes
    /// (`include "x.vcl";`, relative to the including file).
    pub fn load(path: &Path) -> Result<VclPolicy, PolicyError> {
        let mut read = |p: &Path| std::fs::read_to_string(p);
        match vcl_lite::compile_file(path, &mut read) {
            Ok(program) => VclPolicy::new(program),
            Err(vcl_lite::LoadError::Read { file, source }) => {
                Err(PolicyError::Read { file, source })
            }
            Err(vcl_lite::LoadError::Compile(errors)) => Err(PolicyError::Compile(errors)),
        }
    }

    /// Runs `vcl_init` once, then the policy is ready.
    fn new(mut program: Program) -> Result<VclPolicy, PolicyError> {
        program.init().map_err(PolicyError::Init)?;
        program.limit_early_unsets(|h| {
            !crate::lifecycle::READ_WHILE_DELIVERING
                .iter()
                .any(|read| read.as_str() == h.name())
        });
        let default = declared::backends(program.backends())
            .into_iter()
            .next()
            .map(|b| b.name);
        // All or none: a name left out of the list would be neither left
        // out of the response nor removed by the policy.
        let deliver_removes = program
            .early_unsets(Sub::Deliver)
            .iter()
            .map(|h| values::header_name(h).cloned())
            .collect::<Option<Vec<_>>>()
            .map(crate::http::name_set::NameSet::new)
            .unwrap_or_default();
        Ok(VclPolicy {
            deliver_removes,
            shared: Shared {
                hostname: values::hostname(),
                directors: directors::Directors::new(&program, default),
            },
            program,
        })
    }

    /// The compiled program (its backends, probes, subroutines).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The directors made in `vcl_init` with their backends, one a line
    /// (`rr = round_robin(web1, web2)`), for `lacquer check`.
    pub fn describe_directors(&self) -> Vec<String> {
        self.shared.directors.describe()
    }

    /// Compiles policy text; `file` names it in errors.
    pub fn compile(source: &str, file: &str) -> Result<VclPolicy, PolicyError> {
        let program =
            vcl_lite::compile(source, file).map_err(|e| PolicyError::Compile(e.into()))?;
        VclPolicy::new(program)
    }

    /// Runs `sub`, then, if it did not return, Varnish's built-in `sub`.
    fn run(
        &self,
        sub: Sub,
        ctx: &mut dyn vcl_lite::Context,
    ) -> Result<Option<Action>, RuntimeError> {
        self.run_then_builtin(sub, ctx, false)
    }

    /// [`VclPolicy::run`]; `removed_early`: the response has none of
    /// `deliver_removes`, and `sub` runs without removing them.
    fn run_then_builtin(
        &self,
        sub: Sub,
        ctx: &mut dyn vcl_lite::Context,
        removed_early: bool,
    ) -> Result<Option<Action>, RuntimeError> {
        let ran = if removed_early && !self.deliver_removes.is_empty() {
            self.program.run_after_early_unsets(sub, ctx)
        } else {
            self.program.run(sub, ctx)
        };
        match ran? {
            Some(action) => Ok(Some(action)),
            None => match vcl_lite::builtin_program() {
                Some(builtin) => builtin.run(sub, ctx),
                None => Ok(None),
            },
        }
    }

    fn client(&self, sub: Sub, view: &mut ClientView<'_>) -> ClientAction {
        self.client_after(sub, view, false)
    }

    /// [`VclPolicy::client`], without the early removals when
    /// `removed_early`.
    fn client_after(
        &self,
        sub: Sub,
        view: &mut ClientView<'_>,
        removed_early: bool,
    ) -> ClientAction {
        match self.run_then_builtin(sub, view, removed_early) {
            Ok(None) => ClientAction::Builtin,
            Ok(Some(action)) => client_action(sub, action),
            Err(e) => failed(sub, &e, ClientAction::Fail),
        }
    }

    fn backend(&self, sub: Sub, view: &mut BackendView<'_, '_>) -> BackendAction {
        match self.run(sub, view) {
            Ok(None) => BackendAction::Builtin,
            Ok(Some(action)) => backend_action(sub, action),
            Err(e) => failed(sub, &e, BackendAction::Fail),
        }
    }
}

/// Logs a run-time failure; `fail` is what follows.
fn failed<T>(sub: Sub, e: &RuntimeError, fail: T) -> T {
    tracing::error!(error = %e, "{sub} failed");
    fail
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// The reason given, else the status's standard phrase.
fn reason_or_standard(status: StatusCode, reason: Option<String>) -> String {
    reason.unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string())
}

fn client_action(sub: Sub, action: Action) -> ClientAction {
    match action {
        Action::Fetch if sub == Sub::Hit => ClientAction::Miss,
        Action::Miss => ClientAction::Miss,
        Action::Deliver | Action::Fetch | Action::Hash | Action::Lookup => ClientAction::Continue,
        Action::Pass | Action::Pipe => ClientAction::Pass,
        Action::Restart => ClientAction::Restart,
        Action::Fail => ClientAction::Fail,
        Action::Synth {
            status: code,
            reason,
        } => {
            let s = status(code);
            ClientAction::Synth(s, reason_or_standard(s, reason))
        }
        other => {
            // The checker allows only the subroutine's own actions.
            tracing::warn!(?other, "{sub}: unexpected action; built-in behaviour");
            ClientAction::Builtin
        }
    }
}

fn backend_action(sub: Sub, action: Action) -> BackendAction {
    match action {
        Action::Fetch | Action::Deliver => BackendAction::Continue,
        Action::Retry => BackendAction::Retry,
        Action::Abandon => BackendAction::Abandon,
        Action::Fail => BackendAction::Fail,
        Action::Error {
            status: code,
            reason,
        } => {
            let s = status(code);
            BackendAction::Error(s, reason_or_standard(s, reason))
        }
        Action::HitForPass { ttl } => BackendAction::HitForPass(if ttl.is_finite() {
            Duration::from_secs_f64(ttl.clamp(0.0, 1e10))
        } else {
            Duration::ZERO
        }),
        other => {
            tracing::warn!(?other, "{sub}: unexpected action; built-in behaviour");
            BackendAction::Builtin
        }
    }
}

impl Policy for VclPolicy {
    fn backends(&self) -> Vec<crate::config::BackendConfig> {
        declared::backends(self.program.backends())
    }

    fn resolve_backend(
        &self,
        name: &str,
        key: &str,
        health: &dyn crate::lifecycle::BackendHealth,
    ) -> Option<String> {
        self.shared
            .directors
            .resolve(name, key, &|b: &str| health.healthy(b))
    }

    fn hooks(&self) -> Hooks {
        let builtin = vcl_lite::builtin_program();
        let has = |sub| self.program.defines(sub) || builtin.is_some_and(|b| b.defines(sub));
        Hooks {
            hit: has(Sub::Hit),
            miss: has(Sub::Miss),
            pass: has(Sub::Pass),
            purge: has(Sub::Purge),
            deliver: has(Sub::Deliver),
            synth: has(Sub::Synth),
            backend_fetch: has(Sub::BackendFetch),
            backend_response: has(Sub::BackendResponse),
            backend_error: has(Sub::BackendError),
            pipe: has(Sub::Pipe),
            rollback: self.program.calls("std.rollback"),
            xkey: self.program.imports("xkey"),
            varnish: true,
            cache_req_body: self.program.calls("std.cache_req_body"),
        }
    }

    fn recv(&self, req: &mut Task) -> RecvAction {
        let mut view = ClientView::of(req, &self.shared);
        // Varnish's built-in vcl_recv in Rust (builtin_recv.rs): it runs on
        // every request whose vcl_recv does not return.
        let ran = match self.program.run(Sub::Recv, &mut view) {
            Ok(None) => Ok(builtin_recv::run(&mut view)),
            other => other,
        };
        match ran {
            // Varnish's built-in vcl_recv ends with `return (hash)`.
            Ok(None) => RecvAction::Hash,
            Ok(Some(action)) => match action {
                Action::Hash | Action::Lookup => RecvAction::Hash,
                Action::Pass => RecvAction::Pass,
                Action::Pipe => RecvAction::Pipe,
                Action::Purge => RecvAction::Purge,
                Action::Ban => RecvAction::Ban,
                Action::Restart => RecvAction::Restart,
                Action::Synth {
                    status: code,
                    reason,
                } => {
                    let s = status(code);
                    RecvAction::Synth(s, reason_or_standard(s, reason))
                }
                other => {
                    if other != Action::Fail {
                        tracing::warn!(?other, "vcl_recv: unexpected action; failing");
                    }
                    RecvAction::Synth(StatusCode::SERVICE_UNAVAILABLE, "vcl_recv failed".into())
                }
            },
            Err(e) => failed(
                Sub::Recv,
                &e,
                RecvAction::Synth(StatusCode::SERVICE_UNAVAILABLE, "vcl_recv failed".into()),
            ),
        }
    }

    fn hash(&self, req: &mut Task) -> CacheKey {
        if !self.program.defines(Sub::Hash) {
            return Builtin.hash(req);
        }
        let mut view = ClientView::of(req, &self.shared);
        let action = self.program.run(Sub::Hash, &mut view);
        let mut parts = std::mem::take(&mut view.hash);
        drop(view);
        match action {
            Ok(Some(Action::Lookup)) => {}
            Ok(_) => {
                // No return: the built-in vcl_hash adds URL and Host, as in Varnish.
                parts.push(&req.url);
                parts.push(&req.host);
            }
            Err(e) => return failed(Sub::Hash, &e, Builtin.hash(req)),
        }
        parts.finish()
    }

    fn hit(&self, req: &mut Task, obj: &CachedObject) -> ClientAction {
        let now = req.live.clock.now();
        let mut view = ClientView::of(req, &self.shared);
        view.obj = Some(obj);
        // This delivery counts: obj.hits is 1 on the first hit.
        view.meta = Some(ObjMeta::of(
            &obj.freshness,
            obj.hits() + 1,
            now,
            crate::lifecycle::CacheOutcome::Hit,
        ));
        self.client(Sub::Hit, &mut view)
    }

    fn miss(&self, req: &mut Task) -> ClientAction {
        self.client(Sub::Miss, &mut ClientView::of(req, &self.shared))
    }

    fn pass(&self, req: &mut Task) -> ClientAction {
        self.client(Sub::Pass, &mut ClientView::of(req, &self.shared))
    }

    fn purge(&self, req: &mut Task) -> ClientAction {
        self.client(Sub::Purge, &mut ClientView::of(req, &self.shared))
    }

    fn deliver(
        &self,
        req: &mut Task,
        resp: &mut Response<RespBody>,
        obj: &ObjMeta,
    ) -> ClientAction {
        let mut view = ClientView::of(req, &self.shared);
        view.meta = Some(*obj);
        view.resp = Some(RespPart::Delivered(resp));
        self.client_after(Sub::Deliver, &mut view, obj.removed_early)
    }

    fn deliver_removes(&self) -> &crate::http::name_set::NameSet {
        &self.deliver_removes
    }

    fn synth(&self, req: &mut Task, resp: &mut Synthetic) -> ClientAction {
        let mut view = ClientView::of(req, &self.shared);
        view.resp = Some(RespPart::Synth(resp));
        match self.client(Sub::Synth, &mut view) {
            // The built-in vcl_synth wrote Varnish's error page and ends
            // with `return (deliver)`.
            ClientAction::Builtin => ClientAction::Continue,
            other => other,
        }
    }

    fn pipe(
        &self,
        req: &mut Task,
        bereq: &mut http::HeaderMap,
        bereq_url: &mut String,
    ) -> ClientAction {
        let mut view = pipe::PipeView {
            client: ClientView::of(req, &self.shared),
            bereq,
            url: bereq_url,
        };
        match self.run(Sub::Pipe, &mut view) {
            Ok(None) | Ok(Some(Action::Pipe)) => ClientAction::Continue,
            Ok(Some(action)) => client_action(Sub::Pipe, action),
            Err(e) => failed(Sub::Pipe, &e, ClientAction::Fail),
        }
    }

    fn backend_fetch(&self, bereq: &mut Bereq) -> BackendAction {
        let mut view = BackendView {
            bereq,
            beresp: None,
            shared: &self.shared,
        };
        self.backend(Sub::BackendFetch, &mut view)
    }

    fn backend_response(&self, bereq: &mut Bereq, beresp: &mut Beresp<'_>) -> BackendAction {
        let mut view = BackendView {
            bereq,
            beresp: Some(BerespPart::Fetched(beresp)),
            shared: &self.shared,
        };
        self.backend(Sub::BackendResponse, &mut view)
    }

    fn backend_error(&self, bereq: &mut Bereq, beresp: &mut Synthetic) -> BackendAction {
        let mut view = BackendView {
            bereq,
            beresp: Some(BerespPart::Error(beresp)),
            shared: &self.shared,
        };
        match self.backend(Sub::BackendError, &mut view) {
            // The built-in vcl_backend_error wrote Varnish's error page and
            // ends with `return (deliver)`.
            BackendAction::Builtin => BackendAction::Continue,
            other => other,
        }
    }
}
