//! The backend request as the backend hooks see it (`bereq.*`). Built by
//! `pipeline::bereq` from the client's.

use http::{HeaderMap, Method};
use std::net::IpAddr;

/// A backend request as the backend hooks see it (`bereq.*`).
#[derive(Debug, Clone)]
pub struct Bereq {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub url: String,
    /// Headers (with `Host`).
    pub headers: HeaderMap,
    /// Times this fetch was retried.
    pub retries: u32,
    /// A pass: nothing will be stored.
    pub uncacheable: bool,
    /// A background refresh of an object in grace (`bereq.is_bgfetch`): no
    /// client waits for it.
    pub is_bgfetch: bool,
    /// The client's address (`client.ip`).
    pub client: IpAddr,
    /// Its transaction id (`bereq.xid`).
    pub xid: u64,
    /// The client request's `server.ip`, `local.ip` and `remote.ip`.
    pub conn: Option<std::sync::Arc<super::ConnInfo>>,
    /// The proxy, for `ban()` in backend subroutines.
    pub services: Option<std::sync::Weak<dyn super::PolicyServices>>,
    /// `bereq.backend` (from `req.backend_hint`): the backend or director
    /// it is sent to; `None`: the director of the settings picks.
    pub backend: Option<String>,
    /// The backend the last attempt was sent to (`beresp.backend`).
    pub sent_to: Option<String>,
    /// Timeouts the policy set for this fetch (`bereq.*_timeout`).
    pub timeouts: crate::fetch::pool::RequestTimeouts,
    /// Method, URL and headers as first made from the client request, for
    /// `std.rollback(bereq)` (kept only when the policy calls it).
    pub original: Option<Box<(Method, String, HeaderMap)>>,
    /// What the policy's vmods keep for this fetch (its own, as Varnish's
    /// backend tasks: the client request's jar is not seen here); made
    /// when first used.
    pub vmods: Option<Box<vcl_lite::TaskState>>,
}

impl Bereq {
    /// The proxy's services while it runs; `None` for a fetch without
    /// them (an ESI fragment's), or once the proxy is gone.
    pub fn live_services(&self) -> Option<std::sync::Arc<dyn super::PolicyServices>> {
        self.services.as_ref().and_then(std::sync::Weak::upgrade)
    }

    /// Keeps the request as it is now for [`Bereq::roll_back`].
    pub fn keep_original(&mut self) {
        self.original = Some(Box::new((
            self.method.clone(),
            self.url.clone(),
            self.headers.clone(),
        )));
    }

    /// `std.rollback(bereq)`: method, URL and headers back as kept by
    /// [`Bereq::keep_original`]; `false` when nothing was kept.
    pub fn roll_back(&mut self) -> bool {
        let Some(original) = &self.original else {
            return false;
        };
        let (method, url, headers) = &**original;
        self.method = method.clone();
        self.url = url.clone();
        self.headers = headers.clone();
        true
    }
}
