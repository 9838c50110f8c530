//! Health probes (Varnish's `.probe`): a GET every `interval`; a backend is
//! healthy while at least `threshold` of the last `window` probes answered
//! the expected status within `timeout`. Directors skip sick backends.

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use std::sync::Arc;

use super::pool::Backend;
use crate::config::ProbeConfig;

/// Probes `backend` until stopped (a background service the server starts,
/// see `Director::background`) or until the backend is dropped.
pub async fn run(backend: std::sync::Weak<Backend>, cfg: ProbeConfig) {
    let cfg = &cfg;
    crate::background::every_while_alive(backend, cfg.interval.0, |b| async move {
        let ok = matches!(
            tokio::time::timeout(cfg.timeout.0, probe_once(&b, cfg)).await,
            Ok(Ok(status)) if status == cfg.expected_status
        );
        b.record_probe(ok, cfg.window, cfg.threshold);
    })
    .await;
}

/// One probe on a fresh connection (so it tests connecting too).
async fn probe_once(backend: &Arc<Backend>, cfg: &ProbeConfig) -> Result<u16, String> {
    let req = Request::get(cfg.url.as_str())
        .header("host", backend.address())
        .header("user-agent", "lacquer-probe")
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = super::oneshot::request(backend.address(), req).await?;
    Ok(resp.status().as_u16())
}
