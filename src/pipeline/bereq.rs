//! The backend request: built from the client's, given to
//! `vcl_backend_fetch`, sent to the backend the director picks, and on
//! failure given to `vcl_backend_error`, which may retry (at most
//! [`MAX_RETRIES`] times in all) or answer with a synthetic response.

use crate::http::req_fields::FieldsRead;
use http::header::{HeaderValue, CONTENT_LENGTH, HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, Method, Response, StatusCode};
use std::time::SystemTime;

use super::esi::SURROGATE_CAPABILITY;
use super::Proxy;
use crate::body::RespBody;
use crate::cache::CachedObject;
use crate::fetch::h1::{is_wire_target, RequestHead};
use crate::fetch::pool::{BackendBody, FetchError};
use crate::fetch::req_body::{BodyFault, FaultSlot};
use crate::http::conditional::CONDITIONAL_AND_RANGE;
use crate::http::headers::{append_forwarded_for_cached, append_via, remove_named};
use crate::lifecycle::{Bereq, Failure, FailureKind, Fetch, Synthetic, Task};
use crate::policy::BackendAction;

/// `Surrogate-Capability`, named once (a `&str` name is parsed at every use).
const SURROGATE_CAPABILITY_NAME: http::HeaderName =
    http::HeaderName::from_static("surrogate-capability");

/// How many times one fetch may be retried (Varnish's `max_retries`).
pub const MAX_RETRIES: u32 = 4;

impl Bereq {
    /// The request as it goes on the wire, borrowed; `None` when the URL
    /// cannot go on a request line (the policy's setter and the client's
    /// parser only let valid targets through: a last guard).
    fn head(&self) -> Option<RequestHead<'_>> {
        is_wire_target(&self.url).then_some(RequestHead {
            method: &self.method,
            target: &self.url,
            headers: &self.headers,
        })
    }
}

/// What sending a backend request came to.
// Most fetches carry the large variant: boxing it would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Exchange {
    /// The backend answered (sent at this time).
    Answer(Response<BackendBody>, SystemTime),
    /// `vcl_backend_error` answered with this synthetic response.
    Synthetic(Response<RespBody>),
    /// No answer.
    Failed(Failure),
}

/// What follows a backend hook.
#[allow(clippy::large_enum_variant)] // as `Exchange`
pub(super) enum Next {
    /// Go on with the response.
    Go,
    /// Send the request again (`retries` was counted).
    Retry,
    /// Stop here.
    Done(Exchange),
}

/// The answer when the backend request's URL cannot be sent.
fn invalid_target(bereq: &Bereq) -> Exchange {
    Exchange::Failed(
        Failure::new(FailureKind::BadRequest)
            .telling("invalid request target")
            .because(format!("the policy left bereq.url {:?}", bereq.url)),
    )
}

/// What a backend exchange's error is, for the client: a timeout (504),
/// no healthy backend (503), or an unusable answer (502). The error's text
/// names the backend, so it is the failure's source, for the log only.
pub(super) fn failure_kind(e: &FetchError) -> FailureKind {
    match e {
        FetchError::ConnectTimeout(_)
        | FetchError::FirstByteTimeout(_)
        | FetchError::PoolExhausted(_) => FailureKind::BackendTimeout,
        FetchError::NoHealthyBackend => FailureKind::BackendUnavailable,
        FetchError::Connect { .. } | FetchError::Protocol { .. } => FailureKind::BadGateway,
    }
}

impl Proxy {
    /// The backend request for `ctx`. Fetches for the cache drop the
    /// client's conditionals and ranges (the whole body is stored) and add
    /// the stale object's validators instead.
    pub(super) fn backend_request(
        &self,
        ctx: &Task,
        method: Method,
        stale: Option<&CachedObject>,
        for_cache: bool,
    ) -> Bereq {
        // Room for what is added below (Host, Surrogate-Capability,
        // X-Forwarded-For, Via, validators): a clone has none, and the
        // first addition would then reallocate the whole list.
        // (`try_`: a request with more fields than a map's largest size
        // less six, possible only with limits raised far past their
        // defaults, gets a map that grows instead of a panic.)
        let mut headers =
            HeaderMap::try_with_capacity(ctx.headers.size_hint() + 6).unwrap_or_default();
        headers.extend(ctx.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
        if for_cache {
            remove_named(&mut headers, &CONDITIONAL_AND_RANGE);
            if ctx.live.config.compression.enabled {
                let store = ctx.live.config.compression.store;
                crate::http::coding::ask_backend(&mut headers, store.coding());
            }
        }
        if let Some(obj) = stale {
            if let Some(etag) = obj.etag() {
                headers.insert(IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = obj.last_modified() {
                headers.insert(IF_MODIFIED_SINCE, lm.clone());
            }
        }
        // `headers` has the request's names still (the removals above take
        // none of these): asked of the request's fields, whose summary
        // answers an absent name without a lookup.
        if !ctx.headers.contains_key(HOST) && !ctx.host.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&ctx.host) {
                headers.insert(HOST, v);
            }
        }
        // The policy's own (`set req.http.Surrogate-Capability = "abc=ESI/1.0"`,
        // which applications look for by their token) is left as it is.
        if !ctx.headers.contains_key(&SURROGATE_CAPABILITY_NAME) {
            headers.insert(
                SURROGATE_CAPABILITY_NAME,
                HeaderValue::from_static(SURROGATE_CAPABILITY),
            );
        }
        if !ctx.live.hooks.varnish {
            // Under a loaded VCL it was added before vcl_recv (`recv.rs`).
            let cache = ctx.conn.as_deref().map(|c| &c.client_text);
            append_forwarded_for_cached(&mut headers, ctx.client.ip(), cache);
        }
        append_via(&mut headers, ctx.version, &ctx.live.config.server.via_name);
        if (method == Method::GET || method == Method::HEAD)
            && ctx.headers.contains_key(CONTENT_LENGTH)
        {
            headers.remove(CONTENT_LENGTH);
        }
        let mut bereq = Bereq {
            method,
            url: ctx.url.clone(),
            headers,
            retries: 0,
            uncacheable: !for_cache,
            is_bgfetch: ctx.background,
            client: ctx.client.ip(),
            xid: crate::lifecycle::next_xid(),
            conn: ctx.conn.clone(),
            services: ctx.services.clone(),
            backend: ctx.backend_hint.clone(),
            sent_to: None,
            timeouts: Default::default(),
            original: None,
            vmods: None,
        };
        if ctx.live.hooks.rollback {
            bereq.keep_original();
        }
        bereq
    }

    /// `vcl_backend_fetch`, then the request to the backend; a failure goes
    /// to `vcl_backend_error`, which may retry. The body is taken by the
    /// first attempt (and put back when it can be sent again). The fetch's
    /// fault slot is set when the client's streamed body stalled (408) or
    /// was malformed (400): such failures are the client's, not the
    /// backend's.
    pub(super) async fn exchange(&self, f: &mut Fetch) -> Exchange {
        loop {
            let failure = match self.attempt(f).await {
                Ok(done) => return done,
                Err(failure) => failure,
            };
            match self.on_failure(f, failure) {
                Next::Done(done) => return done,
                Next::Go | Next::Retry => continue,
            }
        }
    }

    /// One attempt. `Err`: a failure for `vcl_backend_error`.
    async fn attempt(&self, f: &mut Fetch) -> Result<Exchange, Failure> {
        let Fetch {
            live,
            bereq,
            body,
            fault,
            ..
        } = f;
        if live.hooks.backend_fetch {
            match live.policy.backend_fetch(bereq) {
                BackendAction::Abandon | BackendAction::Fail => {
                    return Ok(Exchange::Failed(
                        Failure::new(FailureKind::FetchFailed)
                            .because("vcl_backend_fetch abandoned the fetch"),
                    ))
                }
                BackendAction::Error(status, reason) => {
                    return Err(Failure::policy_error(status, reason))
                }
                _ => {}
            }
        }
        let Some(this_body) = body.take() else {
            return Ok(Exchange::Failed(
                Failure::new(FailureKind::FetchFailed)
                    .because("cannot retry: the request body was streamed"),
            ));
        };
        *body = this_body.try_clone();
        if bereq.head().is_none() {
            return Ok(invalid_target(bereq));
        }
        let sent = live.clock.now();
        let chosen = match &bereq.backend {
            Some(name) => self.named_backend(live, name, &bereq.url, &bereq.headers),
            None => self.director.pick(&bereq.url, &bereq.headers),
        };
        bereq.sent_to = chosen.as_ref().map(|b| b.name().to_string());
        let result = match chosen {
            Some(backend) => {
                // A resend on a fresh connection (`Backend::send`) is made
                // from the backend request and the body's replayable copy.
                let replayable = &*body;
                let remake = move || replayable.as_ref()?.try_clone();
                let Some(head) = bereq.head() else {
                    return Ok(invalid_target(bereq));
                };
                backend
                    .send(head, bereq.timeouts, this_body, remake)
                    .await
                    .inspect_err(|e| {
                        backend.note_error(e);
                    })
            }
            None => Err(FetchError::NoHealthyBackend),
        };
        let client_fault = || fault.as_deref().and_then(FaultSlot::get);
        match result {
            Ok(resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                // lacquer never asks to upgrade (Upgrade is hop-by-hop).
                self.metrics.count_backend_error();
                crate::log_limited!(10, warn, url = %bereq.url, method = %bereq.method, "backend answered 101 to a request that did not ask to upgrade");
                Err(Failure::new(FailureKind::BadGateway).because("unasked-for 101"))
            }
            Ok(resp) => {
                self.metrics.count_backend(resp.status());
                Ok(Exchange::Answer(resp, sent))
            }
            Err(e) if client_fault().is_some() => {
                let fault = client_fault().unwrap_or(BodyFault::Malformed);
                let kind = match fault {
                    BodyFault::Stalled => FailureKind::BodyStalled,
                    BodyFault::Malformed => FailureKind::BodyMalformed,
                };
                Ok(Exchange::Failed(Failure::new(kind).because(e.to_string())))
            }
            Err(e) => {
                self.metrics.count_backend_error();
                crate::log_limited!(10, warn, url = %bereq.url, method = %bereq.method,
                    kind = e.as_str(), error = %e, "backend fetch failed");
                Err(Failure::new(failure_kind(&e)).because(e.to_string()))
            }
        }
    }

    /// The backend the policy named (`bereq.backend`, a pipe's
    /// `req.backend_hint`): a director's choice, keyed by host and URL for
    /// hash and shard. `None` when it is sick or unknown: the fetch fails
    /// (503), as in Varnish, rather than going elsewhere.
    pub(super) fn named_backend(
        &self,
        live: &crate::lifecycle::Live,
        name: &str,
        url: &str,
        headers: &impl FieldsRead,
    ) -> Option<std::sync::Arc<crate::fetch::pool::Backend>> {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let key = format!("{host}{url}");
        let resolved = live.policy.resolve_backend(name, &key, &*live.health);
        let backend = resolved.as_deref().and_then(|b| self.director.named(b));
        if backend.is_none() {
            crate::log_limited!(
                10,
                warn,
                backend = name,
                resolved = resolved.as_deref().unwrap_or("none"),
                url,
                "the backend the policy named is sick or unknown"
            );
        }
        backend
    }

    /// `vcl_backend_error` for a failed fetch, and what follows: a retry,
    /// its synthetic answer, or the failure.
    pub(super) fn on_failure(&self, f: &mut Fetch, failure: Failure) -> Next {
        let (live, bereq) = (&f.live, &mut f.bereq);
        if !live.hooks.backend_error {
            return Next::Done(Exchange::Failed(failure));
        }
        // As in Varnish, vcl_backend_error starts from `503 Backend fetch
        // failed` whatever went wrong (lacquer's 502 / 504 are its own
        // policy's); `return (error(…))` keeps its status and reason.
        let mut beresp = match failure.kind {
            FailureKind::PolicyError => Synthetic::new(failure.status, failure.reason.to_string()),
            _ => Synthetic::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Backend fetch failed".into(),
            ),
        };
        if live.hooks.varnish {
            beresp.headers.remove(http::header::CONTENT_TYPE);
        }
        match live.policy.backend_error(bereq, &mut beresp) {
            BackendAction::Continue => Next::Done(Exchange::Synthetic(beresp.into_response())),
            BackendAction::Retry if bereq.retries < MAX_RETRIES => {
                bereq.retries += 1;
                Next::Retry
            }
            BackendAction::Retry => Next::Done(Exchange::Failed(
                Failure::new(FailureKind::FetchFailed).because("too many retries"),
            )),
            _ => Next::Done(Exchange::Failed(failure)),
        }
    }

    /// What `vcl_backend_response`'s action leads to.
    pub(super) fn after_backend_response(&self, f: &mut Fetch, action: BackendAction) -> Next {
        match action {
            BackendAction::Retry if f.bereq.retries < MAX_RETRIES => {
                f.bereq.retries += 1;
                Next::Retry
            }
            BackendAction::Retry => self.on_failure(
                f,
                Failure::new(FailureKind::FetchFailed).because("too many retries"),
            ),
            BackendAction::Abandon | BackendAction::Fail => Next::Done(Exchange::Failed(
                Failure::new(FailureKind::FetchFailed)
                    .because("vcl_backend_response abandoned the fetch"),
            )),
            BackendAction::Error(status, reason) => {
                self.on_failure(f, Failure::policy_error(status, reason))
            }
            BackendAction::Builtin | BackendAction::Continue | BackendAction::HitForPass(_) => {
                Next::Go
            }
        }
    }
}
