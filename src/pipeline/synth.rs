//! synth: the answers lacquer makes itself — `synth(...)` from the policy,
//! refusals, backend failures — through `vcl_synth`; and the synthetic
//! backend response of `vcl_backend_error`.

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

use super::deliver::{synth, synth_body};
use super::{Proxy, RequestCtx};
use crate::body::RespBody;
use crate::policy::ClientAction;

/// A synthetic response being made: `resp.*` in `vcl_synth`, `beresp.*` in
/// `vcl_backend_error`.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Status.
    pub status: StatusCode,
    /// The reason as the policy reads it (`synth(status, reason)`'s, or
    /// lacquer's explanation).
    pub reason: String,
    /// A reason phrase the policy set: sent on the status line instead of
    /// the standard one.
    pub phrase: Option<String>,
    /// Headers (`Content-Type: text/plain; charset=utf-8` to begin with).
    pub headers: HeaderMap,
    /// The body written with `synthetic(...)`.
    pub body: String,
}

impl Synthetic {
    /// An empty answer with this status and reason.
    pub fn new(status: StatusCode, reason: String) -> Synthetic {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Synthetic {
            status,
            reason,
            phrase: None,
            headers,
            body: String::new(),
        }
    }

    /// lacquer's own body (status, reason) in place of the policy's.
    pub fn with_builtin_body(mut self) -> Synthetic {
        self.body = synth_body(self.status, &self.reason);
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        self
    }

    /// The response as it goes out.
    pub fn into_response(self) -> Response<RespBody> {
        let len = self.body.len();
        let mut resp = Response::new(RespBody::full(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        if let Some(phrase) = self.phrase {
            set_phrase(&mut resp, &phrase);
        }
        resp
    }
}

/// Sends `phrase` on the status line (ignored when it is not a valid
/// reason phrase).
pub(crate) fn set_phrase<B>(resp: &mut Response<B>, phrase: &str) {
    if let Ok(p) = hyper::ext::ReasonPhrase::try_from(phrase.as_bytes().to_vec()) {
        resp.extensions_mut().insert(p);
    }
}

/// The reason phrase a response will be sent with.
pub(crate) fn phrase_of<B>(resp: &Response<B>) -> &str {
    resp.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|p| std::str::from_utf8(p.as_bytes()).ok())
        .or_else(|| resp.status().canonical_reason())
        .unwrap_or("")
}

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
