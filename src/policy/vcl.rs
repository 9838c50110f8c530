//! A vcl-lite program as lacquer's policy: `vcl_recv` and `vcl_hash` run on
//! every request, `vcl_backend_response` on every response fetched to store; a subroutine that returns nothing falls through to the
//! built-in policy, as in Varnish.
//!
//! TODO(next session, issue 5): vcl_hit/miss/pass, vcl_backend_fetch,
//! beresp.do_esi (with ESI assembly), retry/abandon, vcl_deliver, vcl_synth; reloading the settings too (the policy reloads
//! on SIGHUP and `POST /reload`); see vcl-lite/TODO.md.

use http::{HeaderName, HeaderValue, Method, StatusCode};
use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use vcl_lite::{Action, Context, Program, Sub, Value, Var};

use super::{Builtin, Policy, RecvAction};
use crate::cache::CacheKey;
use crate::pipeline::{Beresp, RequestCtx};

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
    /// It does not compile (the message names file, line and column and
    /// shows the line).
    #[error("{0}")]
    Compile(vcl_lite::Error),
}

/// A compiled vcl-lite policy.
#[derive(Debug)]
pub struct VclPolicy {
    program: Program,
}

impl VclPolicy {
    /// Reads and compiles a policy file.
    pub fn load(path: &Path) -> Result<VclPolicy, PolicyError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            file: file.clone(),
            source,
        })?;
        VclPolicy::compile(&source, &file)
    }

    /// Compiles policy text; `file` names it in errors.
    pub fn compile(source: &str, file: &str) -> Result<VclPolicy, PolicyError> {
        vcl_lite::compile(source, file)
            .map(|program| VclPolicy { program })
            .map_err(PolicyError::Compile)
    }
}

/// The request as vcl_recv / vcl_hash see it.
struct ReqView<'a> {
    req: &'a mut RequestCtx,
    hash: Vec<String>,
}

impl Context for ReqView<'_> {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        let r = &*self.req;
        match var {
            Var::ReqMethod => Some(Value::Str(Cow::Borrowed(r.method.as_str()))),
            Var::ReqUrl => Some(Value::Str(Cow::Borrowed(&r.url))),
            Var::ReqProto => Some(Value::Str(Cow::Owned(format!("{:?}", r.version)))),
            Var::ReqHttp(h) if h.name() == "host" && !r.host.is_empty() => {
                Some(Value::Str(Cow::Borrowed(&r.host)))
            }
            Var::ReqHttp(h) => r
                .headers
                .get(h.name())
                .and_then(|v| v.to_str().ok())
                .map(|v| Value::Str(Cow::Borrowed(v))),
            Var::ReqHashAlwaysMiss => Some(Value::Bool(r.always_miss)),
            Var::ReqRestarts => Some(Value::Int(0)),
            Var::ClientIp => Some(Value::Ip(r.client.ip())),
            _ => None,
        }
    }

    fn set(&mut self, var: &Var, value: Value<'static>) -> Result<(), String> {
        let text = || -> Result<String, String> {
            Ok(match &value {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Duration(d) => format!("{d}"),
                Value::Ip(ip) => ip.to_string(),
            })
        };
        match var {
            Var::ReqUrl => {
                let url: String = text()?;
                url.parse::<http::Uri>()
                    .map_err(|_| format!("req.url: {url:?} is not a valid request target"))?;
                self.req.url = url;
            }
            Var::ReqMethod => {
                self.req.method = Method::from_bytes(text()?.as_bytes())
                    .map_err(|_| "req.method: not a valid method".to_string())?;
            }
            Var::ReqHttp(h) => {
                let name = HeaderName::from_bytes(h.name().as_bytes())
                    .map_err(|_| format!("{}: not a header name", h.name()))?;
                let v = HeaderValue::from_str(&text()?)
                    .map_err(|_| format!("req.http.{}: not a valid header value", h.name()))?;
                if name == http::header::HOST {
                    if let Ok(host) = v.to_str() {
                        self.req.host = host.to_ascii_lowercase();
                    }
                }
                self.req.headers.insert(name, v);
            }
            Var::ReqHashAlwaysMiss => {
                self.req.always_miss = matches!(value, Value::Bool(true));
            }
            other => return Err(format!("{other:?} cannot be set here")),
        }
        Ok(())
    }

    fn unset(&mut self, var: &Var) {
        if let Var::ReqHttp(h) = var {
            self.req.headers.remove(h.name());
        }
    }

    fn client_ip(&self) -> IpAddr {
        self.req.client.ip()
    }

    fn hash_data(&mut self, data: &str) {
        self.hash.push(data.to_string());
    }

    fn synthetic(&mut self, _body: &str) {}
}

impl Policy for VclPolicy {
    fn recv(&self, req: &mut RequestCtx) -> RecvAction {
        if !self.program.defines(Sub::Recv) {
            return Builtin.recv(req);
        }
        let mut view = ReqView {
            req,
            hash: Vec::new(),
        };
        match self.program.run(Sub::Recv, &mut view) {
            Ok(None) => Builtin.recv(req),
            Ok(Some(action)) => match action {
                Action::Hash | Action::Lookup => RecvAction::Hash,
                Action::Pass | Action::Pipe => RecvAction::Pass,
                Action::Purge => RecvAction::Purge,
                Action::Ban => RecvAction::Ban,
                Action::Synth { status, reason } => RecvAction::Synth(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    reason.unwrap_or_default(),
                ),
                other => {
                    tracing::warn!(?other, "vcl_recv action not supported yet; passing");
                    RecvAction::Pass
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "vcl_recv failed");
                RecvAction::Synth(StatusCode::SERVICE_UNAVAILABLE, "policy error".into())
            }
        }
    }

    fn backend_response(&self, req: &RequestCtx, beresp: &mut Beresp<'_>) {
        if !self.program.defines(Sub::BackendResponse) {
            return;
        }
        let mut view = BerespView { req, beresp };
        match self.program.run(Sub::BackendResponse, &mut view) {
            Ok(None | Some(Action::Deliver)) => {}
            Ok(Some(Action::Pass | Action::HitForPass { .. })) => {
                uncacheable(view.beresp);
            }
            Ok(Some(other)) => {
                tracing::warn!(
                    ?other,
                    "vcl_backend_response action not supported yet; not stored"
                );
                uncacheable(view.beresp);
            }
            Err(e) => {
                tracing::error!(error = %e, "vcl_backend_response failed; not stored");
                uncacheable(view.beresp);
            }
        }
    }

    fn hash(&self, req: &RequestCtx) -> CacheKey {
        if !self.program.defines(Sub::Hash) {
            return Builtin.hash(req);
        }
        // vcl_hash cannot change the request: run it on a copy of the parts
        // it can read.
        let mut copy = req.detached();
        copy.method = req.method.clone();
        let mut view = ReqView {
            req: &mut copy,
            hash: Vec::new(),
        };
        let action = self.program.run(Sub::Hash, &mut view);
        let mut parts = std::mem::take(&mut view.hash);
        match action {
            Ok(Some(Action::Lookup)) => {}
            Ok(_) => {
                // No return: the built-in vcl_hash adds URL and Host, as in Varnish.
                parts.push(req.url.clone());
                parts.push(req.host.clone());
            }
            Err(e) => {
                tracing::error!(error = %e, "vcl_hash failed; using the built-in key");
                return Builtin.hash(req);
            }
        }
        CacheKey::from_parts(parts.iter().map(String::as_str))
    }
}

fn uncacheable(b: &mut Beresp<'_>) {
    b.uncacheable = true;
    b.set_uncacheable = true;
    b.changed = true;
}

/// A backend response as vcl_backend_response sees it.
struct BerespView<'a, 'b> {
    req: &'a RequestCtx,
    beresp: &'a mut Beresp<'b>,
}

fn seconds(v: &Value<'_>) -> Option<std::time::Duration> {
    match v {
        Value::Duration(s) if s.is_finite() => {
            Some(std::time::Duration::from_secs_f64(s.clamp(0.0, 1e10)))
        }
        Value::Int(i) => Some(std::time::Duration::from_secs((*i).max(0) as u64)),
        _ => None,
    }
}

impl Context for BerespView<'_, '_> {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        let b = &*self.beresp;
        match var {
            Var::BerespStatus => Some(Value::Int(i64::from(b.status.as_u16()))),
            Var::BerespHttp(h) => b
                .headers
                .get(h.name())
                .and_then(|v| v.to_str().ok())
                .map(|v| Value::Str(Cow::Borrowed(v))),
            Var::BerespTtl => Some(Value::Duration(b.ttl.as_secs_f64())),
            Var::BerespGrace => Some(Value::Duration(b.grace.as_secs_f64())),
            Var::BerespKeep => Some(Value::Duration(b.keep.as_secs_f64())),
            Var::BerespUncacheable => Some(Value::Bool(b.uncacheable)),
            Var::BerespDoEsi => Some(Value::Bool(b.do_esi)),
            Var::BereqUrl => Some(Value::Str(Cow::Borrowed(&self.req.url))),
            Var::BereqMethod => Some(Value::Str(Cow::Borrowed("GET"))),
            Var::BereqHttp(h) if h.name() == "host" => {
                Some(Value::Str(Cow::Borrowed(&self.req.host)))
            }
            Var::BereqHttp(h) => self
                .req
                .headers
                .get(h.name())
                .and_then(|v| v.to_str().ok())
                .map(|v| Value::Str(Cow::Borrowed(v))),
            Var::ClientIp => Some(Value::Ip(self.req.client.ip())),
            _ => None,
        }
    }

    fn set(&mut self, var: &Var, value: Value<'static>) -> Result<(), String> {
        let b = &mut *self.beresp;
        match var {
            Var::BerespTtl => {
                b.ttl = seconds(&value).ok_or("beresp.ttl needs a duration")?;
                b.set_ttl = true;
            }
            Var::BerespGrace => {
                b.grace = seconds(&value).ok_or("beresp.grace needs a duration")?;
                b.set_grace = true;
            }
            Var::BerespKeep => {
                b.keep = seconds(&value).ok_or("beresp.keep needs a duration")?;
                b.set_keep = true;
            }
            Var::BerespUncacheable => {
                b.uncacheable = matches!(value, Value::Bool(true));
                b.set_uncacheable = true;
            }
            Var::BerespHttp(h) => {
                let name = HeaderName::from_bytes(h.name().as_bytes())
                    .map_err(|_| format!("{}: not a header name", h.name()))?;
                let text = match &value {
                    Value::Str(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                let v = HeaderValue::from_str(&text)
                    .map_err(|_| format!("beresp.http.{}: not a valid header value", h.name()))?;
                b.headers.insert(name, v);
            }
            Var::BerespDoEsi => {
                b.do_esi = matches!(value, Value::Bool(true));
                // Not a change RFC 9111 needs to look at again.
                return Ok(());
            }
            other => return Err(format!("{other:?} cannot be set here")),
        }
        b.changed = true;
        Ok(())
    }

    fn unset(&mut self, var: &Var) {
        if let Var::BerespHttp(h) = var {
            self.beresp.headers.remove(h.name());
            self.beresp.changed = true;
        }
    }

    fn client_ip(&self) -> IpAddr {
        self.req.client.ip()
    }

    fn hash_data(&mut self, _data: &str) {}

    fn synthetic(&mut self, _body: &str) {}
}
