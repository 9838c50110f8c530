//! synth: the answers lacquer makes itself — `synth(...)` from the policy,
//! refusals, backend failures — through `vcl_synth`; and the synthetic
//! backend response of `vcl_backend_error`.

use http::{Response, StatusCode};

use super::{Proxy, RequestCtx};
use crate::body::RespBody;
use crate::lifecycle::{synth, Synthetic};
use crate::policy::ClientAction;

impl Proxy {
    /// A synthetic answer for `ctx`, through `vcl_synth` when the policy
    /// has it. `None`: `vcl_synth` restarted the request (and restarts are
    /// left).
    pub(super) fn synthesize(
        &self,
        ctx: &mut RequestCtx,
        status: StatusCode,
        reason: String,
    ) -> Option<Response<RespBody>> {
        if !ctx.live.hooks.synth {
            return Some(synth(status, &reason));
        }
        let live = ctx.live.clone();
        let mut answer = Synthetic::new(status, reason);
        match live.policy.synth(ctx, &mut answer) {
            ClientAction::Continue => Some(answer.into_response()),
            ClientAction::Restart if ctx.restarts < super::MAX_RESTARTS => None,
            ClientAction::Fail => Some(synth(StatusCode::SERVICE_UNAVAILABLE, "vcl_synth failed")),
            _ => Some(answer.with_builtin_body().into_response()),
        }
    }
}
