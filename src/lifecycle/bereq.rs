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
    /// The client's address (`client.ip`).
    pub client: IpAddr,
    /// Its transaction id (`bereq.xid`).
    pub xid: u64,
    /// The client request's `server.ip`, `local.ip` and `remote.ip`.
    pub conn: Option<std::sync::Arc<super::ConnInfo>>,
    /// The proxy, for `ban()` in backend subroutines.
    pub services: Option<std::sync::Weak<dyn super::PolicyServices>>,
    /// What the policy's vmods keep for this fetch (its own, as Varnish's
    /// backend tasks: the client request's jar is not seen here); made
    /// when first used.
    pub vmods: Option<Box<vcl_lite::TaskState>>,
}
