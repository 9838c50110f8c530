//! synth: the answers lacquer makes itself — `synth(...)` from the policy,
//! and failures — through `vcl_synth`. Failures of every step arrive here
//! as a [`Failure`] ([`Proxy::note_failure`] is where they are logged and
//! counted); the client gets their status and fixed public reason.

use http::header::{HeaderValue, ALLOW};
use http::{Response, StatusCode};
use std::net::SocketAddr;

use super::{Proxy, Task};
use crate::body::RespBody;
use crate::lifecycle::{synth, Failure, FailureKind, Synthetic};
use crate::observe::metrics::ClientErrorKind;
use crate::policy::ClientAction;

/// A failure's answer without `vcl_synth` (refusals before the policy
/// sees the request; a failing `vcl_synth` itself).
pub(super) fn failure_response(f: &Failure) -> Response<RespBody> {
    let mut resp = synth(f.status, f.reason.as_ref());
    if let Some(allow) = f.allow {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

impl Proxy {
    /// A synthetic answer for `ctx`, through `vcl_synth` when the policy
    /// has it. `None`: `vcl_synth` restarted the request (and restarts are
    /// left).
    pub(super) fn synthesize(
        &self,
        ctx: &mut Task,
        status: StatusCode,
        reason: String,
    ) -> Option<Response<RespBody>> {
        if !ctx.live.hooks.synth {
            return Some(synth(status, &reason));
        }
        let live = ctx.live.clone();
        let mut answer = Synthetic::new(status, reason);
        if live.hooks.varnish {
            // Varnish's vcl_synth starts without a Content-Type (its
            // built-in one sets text/html).
            answer.headers.remove(http::header::CONTENT_TYPE);
        }
        match live.policy.synth(ctx, &mut answer) {
            ClientAction::Continue => Some(answer.into_response()),
            ClientAction::Restart if ctx.restarts < super::MAX_RESTARTS => None,
            ClientAction::Fail => {
                let failed = Failure::new(FailureKind::PolicyFailed).because("vcl_synth");
                self.note_failure(&failed, ctx.client, Some(&ctx.url));
                Some(failure_response(&failed))
            }
            _ => Some(answer.with_builtin_body().into_response()),
        }
    }

    /// Where every failure is logged (rate-limited, with its cause) and
    /// the client's own faults counted, once per request it fails.
    pub(super) fn note_failure(&self, f: &Failure, client: SocketAddr, url: Option<&str>) {
        let url = url.unwrap_or("-");
        let client_kind = match f.kind {
            FailureKind::BadRequest | FailureKind::MethodNotAllowed => {
                Some(ClientErrorKind::Refused)
            }
            FailureKind::BodyStalled => Some(ClientErrorKind::BodyTimeout),
            FailureKind::BodyMalformed => Some(ClientErrorKind::MalformedBody),
            _ => None,
        };
        match client_kind {
            Some(kind) => {
                self.metrics.count_client_error(kind);
                crate::log_limited!(10, info, %client, url, status = f.status.as_u16(), kind = f.kind.as_str(), reason = %f.reason, source = %f.source, "request refused");
            }
            None => {
                crate::log_limited!(10, warn, %client, url, status = f.status.as_u16(), kind = f.kind.as_str(), reason = %f.reason, source = %f.source, "request failed");
            }
        }
    }
}
