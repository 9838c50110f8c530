//! Conversions between vcl-lite values and lacquer's HTTP types, shared by
//! the client and backend views.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;
use vcl_lite::{Header, Value, Var};

/// A header's value (the first when there are several); `None` when absent
/// or not text.
pub(super) fn header_get<'a>(map: &'a HeaderMap, h: &Header) -> Option<Value<'a>> {
    map.get(h.name())
        .and_then(|v| v.to_str().ok())
        .map(|v| Value::Str(Cow::Borrowed(v)))
}

/// Sets a header (replacing every value it had). `family` names the
/// variable in errors (`req.http`).
pub(super) fn header_set(
    map: &mut HeaderMap,
    h: &Header,
    value: &Value<'_>,
    family: &str,
) -> Result<(), String> {
    let name = HeaderName::from_bytes(h.name().as_bytes())
        .map_err(|_| format!("{family}.{}: not a header name", h.name()))?;
    let v = HeaderValue::from_str(&value.to_string())
        .map_err(|_| format!("{family}.{}: not a valid header value", h.name()))?;
    map.insert(name, v);
    Ok(())
}

/// A DURATION as a non-negative `Duration` (negative counts as zero).
pub(super) fn seconds(v: &Value<'_>) -> Option<Duration> {
    match v {
        Value::Duration(s) if s.is_finite() => Some(Duration::from_secs_f64(s.clamp(0.0, 1e10))),
        Value::Int(i) => Some(Duration::from_secs((*i).max(0).unsigned_abs())),
        _ => None,
    }
}

/// A `Duration` as a DURATION.
pub(super) fn duration(d: Duration) -> Value<'static> {
    Value::Duration(d.as_secs_f64())
}

/// A status as an INT.
pub(super) fn status_value(s: StatusCode) -> Value<'static> {
    Value::Int(i64::from(s.as_u16()))
}

/// An INT as a status (100 to 999).
pub(super) fn status_of(v: &Value<'_>, var: &str) -> Result<StatusCode, String> {
    match v {
        Value::Int(i) => u16::try_from(*i)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| format!("{var}: {i} is not a status between 100 and 999")),
        other => Err(format!("{var}: {other} is not a status")),
    }
}

/// The standard reason phrase of a status, as a STRING.
pub(super) fn canonical_reason(s: StatusCode) -> Value<'static> {
    Value::Str(Cow::Borrowed(s.canonical_reason().unwrap_or("")))
}

/// Variables readable everywhere: `client.ip`, `server.hostname`,
/// `server.identity`.
pub(super) fn common_get<'a>(var: &Var, client: IpAddr, hostname: &'a str) -> Option<Value<'a>> {
    match var {
        Var::ClientIp => Some(Value::Ip(client)),
        Var::ServerHostname | Var::ServerIdentity => Some(Value::Str(Cow::Borrowed(hostname))),
        _ => None,
    }
}

/// This machine's host name (read once, when a policy is compiled).
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
