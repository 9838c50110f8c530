//! pipe: `return (pipe)` for a request asking to switch protocols
//! (WebSockets): it goes to the backend the director picks on a connection
//! of its own with its `Upgrade`; when the backend answers `101`, the
//! client gets that `101` and bytes flow both ways until either side closes
//! or `server.pipe_timeout` passes without any (`fetch::tunnel`). Any other
//! answer is relayed as a pass. Nothing is stored; `vcl_deliver` does not
//! run (as in Varnish, where a pipe leaves the state machine).
//!
//! `vcl_pipe` runs first, on the head going to the backend (`bereq.http.*`);
//! it may answer with `synth` instead. A pipe of a request that does not
//! switch protocols is a pass (hyper gives a connection away only after a
//! `101`): `vcl_pipe`'s header changes go into that pass, and `vcl_pass`
//! does not run.

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use std::sync::Arc;

use super::{Proxy, Served};
use crate::body::RespBody;
use crate::fetch::tunnel;
use crate::http::headers::{append_forwarded_for, append_via, remove_hop_by_hop};
use crate::lifecycle::{CacheOutcome, Failure, FailureKind, ObjMeta, Task};

impl Proxy {
    /// The pipe step; a request that does not ask to switch protocols is
    /// passed instead.
    pub(super) async fn pipe(self: &Arc<Self>, task: &mut Task) -> Served {
        let Some(upgrade) = task.upgrade.take() else {
            if task.live.hooks.pipe {
                let mut headers = task.headers.to_map();
                let mut url = task.url.clone();
                let live = task.live.clone();
                if let Some(served) =
                    super::client_detour(live.policy.pipe(task, &mut headers, &mut url), "vcl_pipe")
                {
                    return served;
                }
                // Relayed as a pass: what vcl_pipe made of the backend
                // request is what the pass sends.
                task.headers = headers.into();
                task.url = url;
            }
            // Passed, but still a pipe to the policy: the answer leaves the
            // state machine as Varnish's pipe does (no vcl_deliver).
            task.piped = true;
            return match Box::pin(self.pass(task)).await {
                Served::Response(resp, mut meta) => {
                    meta.outcome = CacheOutcome::Pipe;
                    Served::Response(resp, meta)
                }
                other => other,
            };
        };
        let chosen = match &task.backend_hint {
            Some(name) => self.named_backend(&task.live, name, &task.url, &task.headers),
            None => self.director.pick(&task.url, &task.headers),
        };
        let Some(backend) = chosen else {
            return Served::failed(
                FailureKind::BackendUnavailable,
                "no healthy backend for a pipe",
            );
        };
        let Some(mut req) = upgrade_request(task, &upgrade.protocol) else {
            return Served::Failed(
                Failure::new(FailureKind::BadRequest)
                    .telling("invalid request target")
                    .because(format!("pipe to {:?}", task.url)),
            );
        };
        if task.live.hooks.pipe {
            let live = task.live.clone();
            let mut url = task.url.clone();
            if let Some(served) = super::client_detour(
                live.policy.pipe(task, req.headers_mut(), &mut url),
                "vcl_pipe",
            ) {
                return served;
            }
            if url != task.url {
                // Checked as a request target when the policy set it.
                if let Ok(uri) = url.parse() {
                    *req.uri_mut() = uri;
                }
            }
        }
        let resp = match tunnel::open(&backend, req).await {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.count_backend_error();
                backend.note_error(&e);
                crate::log_limited!(10, warn, url = %task.url, error = %e, "pipe: backend failed");
                return Served::Failed(
                    Failure::new(super::bereq::failure_kind(&e)).because(e.to_string()),
                );
            }
        };
        self.metrics.count_backend(resp.status());
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The backend did not switch: its answer, as a pass would relay it.
            let (mut parts, body) = resp.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            let body = RespBody::Backend(backend.unpooled_body(body));
            return Served::Response(
                Response::from_parts(parts, body),
                ObjMeta::uncacheable(CacheOutcome::Pass),
            );
        }
        let mut resp = resp;
        let backend_side = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        // The 101 keeps its Upgrade and Connection; nothing else hop-by-hop.
        let protocol = parts.headers.get(UPGRADE).cloned();
        remove_hop_by_hop(&mut parts.headers);
        if let Some(p) = protocol {
            parts.headers.insert(UPGRADE, p);
        }
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        let idle = task.live.config.server.pipe_timeout.0;
        let url = task.url.clone();
        let (end, report) = tunnel::PipeEnd::new();
        tokio::spawn(async move {
            match tokio::join!(upgrade.connection, backend_side) {
                (Ok(client), Ok(backend)) => {
                    let backend = hyper_util::rt::TokioIo::new(backend);
                    let carried = tunnel::splice(client, backend, idle).await;
                    tracing::debug!(%url, up = carried.up, down = carried.down, "pipe closed");
                    let _ = report.send(carried);
                }
                (Err(e), _) => tracing::debug!(%url, error = %e, "pipe: client side not upgraded"),
                (_, Err(e)) => tracing::debug!(%url, error = %e, "pipe: backend side not upgraded"),
            }
        });
        let mut head = Response::new(RespBody::empty());
        *head.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *head.headers_mut() = parts.headers;
        head.extensions_mut().insert(end);
        Served::Response(head, ObjMeta::uncacheable(CacheOutcome::Pipe))
    }
}

/// The backend request of a pipe: the client's, with its `Upgrade` back.
fn upgrade_request(task: &Task, protocol: &HeaderValue) -> Option<Request<Empty<Bytes>>> {
    let mut headers = task.headers.to_map();
    if !headers.contains_key(HOST) {
        headers.insert(HOST, HeaderValue::from_str(&task.host).ok()?);
    }
    headers.insert(UPGRADE, protocol.clone());
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if !task.live.hooks.varnish {
        // Under a loaded VCL it was added before vcl_recv (`recv.rs`).
        append_forwarded_for(&mut headers, task.client.ip());
    }
    append_via(
        &mut headers,
        task.version,
        &task.live.config.server.via_name,
    );
    let mut req = Request::new(Empty::new());
    *req.method_mut() = task.method.clone();
    *req.uri_mut() = task.url.parse().ok()?;
    *req.headers_mut() = headers;
    Some(req)
}
