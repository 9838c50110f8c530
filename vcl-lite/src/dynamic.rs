//! vmod dynamic (varnish-modules' DNS director), as far as an interpreter
//! whose host builds its backends when the policy loads can have it:
//! `new d = dynamic.director(port = "8080", …);` in `vcl_init`, and
//! `d.backend("nginx")` with the host name written in the policy. Each such
//! call becomes a backend of its own (the name resolved when lacquer
//! connects, as the vmod resolves it), named `d(nginx:8080)`, with the
//! director's port and timeouts. Host names computed at run time
//! (`d.backend(req.http.Host)`) are refused with an error saying so.

use crate::ast::{self, ExprKind};
use crate::decl::Backend;
use crate::error::{Error, Span};

/// The parameters of `dynamic.director` that only matter to DNS
/// re-resolution, health and sharing: accepted, without effect.
const ACCEPTED: &[&str] = &[
    "ttl",
    "domain_usage_timeout",
    "first_lookup_timeout",
    "share",
    "probe",
    "whitelist",
    "host_header",
    "proxy_header",
    "ttl_from",
    "retry_after",
    "via",
    "keep",
];

/// A `dynamic.director(…)` made in `vcl_init`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DynamicDirector {
    /// Its name (`new NAME = …`).
    pub(crate) name: String,
    /// `port`, as written (default `http`).
    pub(crate) port: Option<String>,
    pub(crate) connect_timeout: Option<f64>,
    pub(crate) first_byte_timeout: Option<f64>,
    pub(crate) between_bytes_timeout: Option<f64>,
    pub(crate) max_connections: Option<i64>,
}

fn error(src: &str, file: &str, span: Span, message: String, label: String) -> Error {
    Error::new(src, file, span, message, label)
}

/// Reads `dynamic.director(…)`'s named arguments (literals only: they are
/// read when the policy loads).
pub(crate) fn make(
    name: &ast::Ident,
    args: &[ast::Arg],
    src: &str,
    file: &str,
) -> Result<DynamicDirector, Error> {
    let mut d = DynamicDirector {
        name: name.name.clone(),
        port: None,
        connect_timeout: None,
        first_byte_timeout: None,
        between_bytes_timeout: None,
        max_connections: None,
    };
    for arg in args {
        let Some(param) = &arg.name else {
            return Err(error(
                src,
                file,
                arg.value.span,
                "`dynamic.director` takes named arguments".into(),
                "write them as `port = \"8080\"`".into(),
            ));
        };
        let bad = |what: &str| {
            error(
                src,
                file,
                arg.value.span,
                format!("`{}` needs {what} written in the policy", param.name),
                "vcl-lite reads a dynamic director's settings when the policy loads".into(),
            )
        };
        let secs = || match arg.value.kind {
            ExprKind::Duration(s) => Ok(Some(s)),
            _ => Err(bad("a duration such as `10s`")),
        };
        match param.name.as_str() {
            "port" => match &arg.value.kind {
                ExprKind::Str(s) => d.port = Some(s.clone()),
                ExprKind::Int(i) => d.port = Some(i.to_string()),
                _ => return Err(bad("a string")),
            },
            "connect_timeout" => d.connect_timeout = secs()?,
            "first_byte_timeout" => d.first_byte_timeout = secs()?,
            "between_bytes_timeout" => d.between_bytes_timeout = secs()?,
            "max_connections" => match arg.value.kind {
                ExprKind::Int(i) => d.max_connections = Some(i),
                _ => return Err(bad("a number")),
            },
            other if ACCEPTED.contains(&other) => {}
            other => {
                return Err(error(
                    src,
                    file,
                    param.span,
                    format!("`dynamic.director` has no parameter `{other}`"),
                    "its parameters are port, connect_timeout, first_byte_timeout, \
                     between_bytes_timeout, max_connections (and DNS settings, accepted)"
                        .into(),
                ))
            }
        }
    }
    Ok(d)
}

/// `d.backend(host[, port])`: the host and port written in the call, or
/// why they cannot be used.
pub(crate) fn target<'a>(
    d: &'a DynamicDirector,
    call: &ast::Ident,
    args: &'a [ast::Arg],
    src: &str,
    file: &str,
) -> Result<(String, String), Error> {
    let mut host = None;
    let mut port = d.port.clone();
    for (i, arg) in args.iter().enumerate() {
        let param = arg
            .name
            .as_ref()
            .map_or(if i == 0 { "host" } else { "port" }, |n| n.name.as_str());
        let text = match &arg.value.kind {
            ExprKind::Str(s) => s.clone(),
            ExprKind::Int(n) if param == "port" => n.to_string(),
            _ => {
                return Err(error(
                    src,
                    file,
                    arg.value.span,
                    format!("`{}`: the {param} must be written in the policy", call.name),
                    "vcl-lite makes a dynamic director's backends when the policy loads, \
                     so their names cannot come from the request"
                        .into(),
                ))
            }
        };
        match param {
            "host" => host = Some(text),
            "port" => port = Some(text),
            other => {
                return Err(error(
                    src,
                    file,
                    arg.value.span,
                    format!("`{}` has no parameter `{other}`", call.name),
                    "it takes host and port".into(),
                ))
            }
        }
    }
    match host.filter(|h| !h.trim().is_empty()) {
        Some(h) => Ok((h, port.unwrap_or_else(|| "http".to_string()))),
        None => Err(error(
            src,
            file,
            call.span,
            format!("`{}` needs a host name", call.name),
            format!("write `{}(\"app.internal\")`", call.name),
        )),
    }
}

/// The backend `d.backend(host, port)` stands for.
pub(crate) fn backend(d: &DynamicDirector, host: &str, port: &str) -> Backend {
    Backend {
        name: format!("{}({host}:{port})", d.name),
        none: false,
        host: Some(host.to_string()),
        port: Some(port.to_string()),
        path: None,
        host_header: None,
        connect_timeout: d.connect_timeout,
        first_byte_timeout: d.first_byte_timeout,
        between_bytes_timeout: d.between_bytes_timeout,
        max_connections: d.max_connections,
        proxy_header: None,
        probe: None,
    }
}
