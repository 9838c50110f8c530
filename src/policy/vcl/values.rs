//! Conversions between vcl-lite values and lacquer's HTTP types, shared by
//! the client and backend views.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;
use vcl_lite::{Header, Literal, Value, Var};

use crate::http::req_fields::{FieldsRead, ReqFields};
use crate::lifecycle::ConnInfo;

/// A header's value (the first when there are several); `None` when absent
/// or not text.
pub(super) fn header_get<'a>(map: &'a impl FieldsRead, h: &Header) -> Option<Value<'a>> {
    header_str(map, h).map(|v| Value::Str(Cow::Borrowed(v)))
}

/// [`header_get`]'s text, lent (`Context::text`).
pub(super) fn header_str<'a>(map: &'a impl FieldsRead, h: &Header) -> Option<&'a str> {
    header_text(map, header_name(h)?)
}

/// What a policy reads as `req.http.NAME`: the first value, `None` when
/// absent or not text (the native built-in `vcl_recv` reads the same).
pub(super) fn header_text<'a>(map: &'a impl FieldsRead, name: &HeaderName) -> Option<&'a str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

/// The parsed name of a policy's header, made once per compiled policy
/// (kept in the `Header`, `'static`: see `http::static_text`); `None` when
/// the name is no header name (the checker lets only header-name
/// characters through, so never in practice).
pub(super) fn header_name(h: &Header) -> Option<&HeaderName> {
    policy_name(h).map(|p| &p.name)
}

/// A policy's header name as lacquer keeps it with the compiled policy: the
/// parsed name and its bit in a request's summary of names
/// (`ReqFields`), both made once.
pub(super) struct PolicyName {
    pub(super) name: HeaderName,
    pub(super) bit: u64,
}

/// [`PolicyName`] of `h`; `None` as for [`header_name`].
pub(super) fn policy_name(h: &Header) -> Option<&PolicyName> {
    h.host_form(|text| {
        crate::http::static_text::header_name(text).map(|name| PolicyName {
            bit: crate::http::req_fields::name_bit(&name),
            name,
        })
    })?
    .as_ref()
}

/// Where a policy's `set` and `unset` of a header land: a `HeaderMap`, or
/// a request's fields (which keep their summary of the names present).
pub(super) trait Fields {
    /// `name` set to `value` alone.
    fn put(&mut self, name: &PolicyName, value: HeaderValue);
    /// Every value of `name` removed.
    fn drop_all(&mut self, name: &PolicyName);
}

impl Fields for HeaderMap {
    fn put(&mut self, name: &PolicyName, value: HeaderValue) {
        self.insert(name.name.clone(), value);
    }
    fn drop_all(&mut self, name: &PolicyName) {
        self.remove(&name.name);
    }
}

/// A delivered response: a change to a name its stored fields have copies
/// them into its map first (`lifecycle::resp_fields`).
impl Fields for http::Response<crate::body::RespBody> {
    fn put(&mut self, name: &PolicyName, value: HeaderValue) {
        crate::lifecycle::resp_fields::set(self, &name.name, value);
    }
    fn drop_all(&mut self, name: &PolicyName) {
        crate::lifecycle::resp_fields::map_for(self, &name.name).remove(&name.name);
    }
}

impl Fields for ReqFields {
    fn put(&mut self, name: &PolicyName, value: HeaderValue) {
        self.insert_known(name.name.clone(), value, name.bit);
    }
    fn drop_all(&mut self, name: &PolicyName) {
        self.remove_known(&name.name, name.bit);
    }
}

/// Removes every value of a header.
pub(super) fn header_unset(map: &mut impl Fields, h: &Header) {
    if let Some(name) = policy_name(h) {
        map.drop_all(name);
    }
}

/// Sets a header (replacing every value it had). `family` names the
/// variable in errors (`req.http`).
pub(super) fn header_set(
    map: &mut impl Fields,
    h: &Header,
    value: Value<'_>,
    family: &str,
) -> Result<(), String> {
    insert_checked(map, h, header_value(value), family)
}

/// Sets a header to a policy's literal text (`set req.http.X-Device =
/// "mobile";`): the header value is made once per policy and kept with the
/// literal (`'static`: see `http::static_text`), then put in as it is (no
/// allocation, no check, no reference count on each request).
pub(super) fn header_set_literal(
    map: &mut impl Fields,
    h: &Header,
    text: &Literal,
    family: &str,
) -> Result<(), String> {
    let kept = text.host_form(crate::http::static_text::header_value);
    insert_checked(map, h, kept.and_then(Option::as_ref).cloned(), family)
}

/// Puts `value` in as the only value of `h`; `Err` when the name or the
/// value (`None`: bytes a header may not hold) is refused.
fn insert_checked(
    map: &mut impl Fields,
    h: &Header,
    value: Option<HeaderValue>,
    family: &str,
) -> Result<(), String> {
    let name = policy_name(h).ok_or_else(|| format!("{family}.{}: not a header name", h.name()))?;
    let v = value.ok_or_else(|| format!("{family}.{}: not a valid header value", h.name()))?;
    map.put(name, v);
    Ok(())
}

/// A value as a header value; a string the policy built is taken over
/// without a copy, a borrowed one copied once. `None` when it holds bytes
/// a header may not.
fn header_value(value: Value<'_>) -> Option<HeaderValue> {
    let bytes = match value {
        Value::Str(Cow::Owned(s)) => bytes::Bytes::from(s),
        // A policy's literal (`set req.http.X-Device = "mobile"`): one copy.
        Value::Str(Cow::Borrowed(s)) => return HeaderValue::from_bytes(s.as_bytes()).ok(),
        other => bytes::Bytes::from(other.to_string()),
    };
    HeaderValue::from_maybe_shared(bytes).ok()
}

/// A value set to `req.url` / `bereq.url` (`var`), checked as a request
/// target.
pub(super) fn request_target(value: Value<'_>, var: &str) -> Result<String, String> {
    let url = value.into_string();
    match url.parse::<http::Uri>() {
        Ok(_) => Ok(url),
        Err(_) => Err(format!("{var}: {url:?} is not a valid request target")),
    }
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

/// The reason a status set from VCL comes with: as in Varnish, setting
/// `resp.status` or `beresp.status` resets the reason to the standard one
/// (or "Unknown HTTP Status"), so a policy that wants its own sets the
/// reason after the status.
pub(super) fn reason_for_set_status(s: StatusCode) -> &'static str {
    s.canonical_reason().unwrap_or("Unknown HTTP Status")
}

/// The standard reason phrase of a status, as a STRING.
pub(super) fn canonical_reason(s: StatusCode) -> Value<'static> {
    Value::Str(Cow::Borrowed(s.canonical_reason().unwrap_or("")))
}

/// Variables readable everywhere: `client.ip`, `server.hostname`,
/// `server.identity`, `server.ip`, `local.ip`, `remote.ip`. Without a
/// connection (requests lacquer makes itself), `server.ip` and `local.ip`
/// are unset (`0.0.0.0`) and `remote.ip` is the client's.
pub(super) fn common_get<'a>(
    var: &Var,
    client: IpAddr,
    conn: Option<&ConnInfo>,
    hostname: &'a str,
) -> Option<Value<'a>> {
    match var {
        Var::ClientIp => Some(Value::Ip(client)),
        Var::ServerHostname | Var::ServerIdentity => Some(Value::Str(Cow::Borrowed(hostname))),
        Var::ServerIp | Var::LocalIp => conn.map(|c| Value::Ip(c.local.ip())),
        Var::RemoteIp => Some(Value::Ip(conn.map_or(client, |c| c.remote.ip()))),
        _ => None,
    }
}

/// `std.port` of an address variable.
pub(super) fn port_of(var: &Var, client: Option<u16>, conn: Option<&ConnInfo>) -> Option<u16> {
    match var {
        Var::ClientIp => client,
        Var::ServerIp | Var::LocalIp => conn.map(|c| c.local.port()),
        Var::RemoteIp => conn.map(|c| c.remote.port()).or(client),
        _ => None,
    }
}

/// `std.log` / `std.syslog` into lacquer's log (target `vcl`), at the
/// level of the syslog priority (`std.log`: info).
pub(super) fn log(priority: Option<i64>, message: &str, url: &str) {
    match priority {
        Some(0..=3) => tracing::error!(target: "vcl", url, "{message}"),
        Some(4) => tracing::warn!(target: "vcl", url, "{message}"),
        Some(7..) => tracing::debug!(target: "vcl", url, "{message}"),
        _ => tracing::info!(target: "vcl", url, "{message}"),
    }
}

/// `std.collect`: the header's values joined into one (on a request's
/// fields, a change like the policy's own `set`: nothing is folded).
pub(super) fn collect(map: &mut (impl FieldsRead + Fields), h: &Header, separator: &str) {
    let Some(name) = policy_name(h) else {
        return;
    };
    let values: Vec<&str> = map
        .get_all(&name.name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.len() < 2 {
        return;
    }
    let joined = values.join(separator);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        map.put(name, v);
    }
}

/// Every value of a header (those that are text), in order (vmod header).
pub(super) fn header_all(map: &impl FieldsRead, h: &Header) -> Vec<String> {
    let Some(name) = header_name(h) else {
        return Vec::new();
    };
    map.get_all(name)
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// Replaces every value of a header (vmod header); none removes it. All
/// values are checked before the header changes. Values that are not text
/// (which [`header_all`] leaves out) are kept, first.
pub(super) fn header_replace(
    map: &mut HeaderMap,
    h: &Header,
    values: &[String],
    family: &str,
) -> Result<(), String> {
    let name = header_name(h)
        .ok_or_else(|| format!("{family}.{}: not a header name", h.name()))?
        .clone();
    let values = values
        .iter()
        .map(|v| HeaderValue::from_str(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{family}.{}: not a valid header value", h.name()))?;
    let opaque: Vec<HeaderValue> = map
        .get_all(&name)
        .iter()
        .filter(|v| v.to_str().is_err())
        .cloned()
        .collect();
    map.remove(&name);
    for v in opaque.into_iter().chain(values) {
        map.append(name.clone(), v);
    }
    Ok(())
}

/// A vmod proxy function's answer from the connection's PROXY v2 TLVs.
pub(super) fn proxy_field(
    tlvs: &crate::lifecycle::ProxyTlvs,
    field: vcl_lite::ProxyField,
) -> Option<Value<'_>> {
    use crate::lifecycle::{CLIENT_CERT_CONN, CLIENT_CERT_SESS, CLIENT_SSL};
    use vcl_lite::ProxyField as F;
    fn text(s: &Option<String>) -> Option<Value<'_>> {
        s.as_deref().map(|s| Value::Str(Cow::Borrowed(s)))
    }
    let ssl = tlvs.ssl.as_ref();
    let bit = |b: u8| Value::Bool(ssl.is_some_and(|s| s.client & b != 0));
    match field {
        F::Alpn => text(&tlvs.alpn),
        F::Authority => text(&tlvs.authority),
        F::IsSsl => Some(bit(CLIENT_SSL)),
        F::ClientHasCertConn => Some(bit(CLIENT_CERT_CONN)),
        F::ClientHasCertSess => Some(bit(CLIENT_CERT_SESS)),
        F::SslVerifyResult => Some(Value::Int(i64::from(ssl.map_or(0, |s| s.verify)))),
        F::SslVersion => text(&ssl?.version),
        F::ClientCertCn => text(&ssl?.cn),
        F::SslCipher => text(&ssl?.cipher),
        F::CertSign => text(&ssl?.sig_alg),
        F::CertKey => text(&ssl?.key_alg),
    }
}

/// A `SystemTime` as a TIME.
pub(super) fn epoch_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_set_read_and_unset_through_the_kept_name() {
        let mut map = HeaderMap::new();
        let h = Header::new("X-Device");
        header_set(
            &mut map,
            &h,
            Value::Str(Cow::Owned("mobile".into())),
            "req.http",
        )
        .expect("set");
        header_set(
            &mut map,
            &h,
            Value::Str(Cow::Borrowed("tablet")),
            "req.http",
        )
        .expect("set");
        assert_eq!(map.get_all("x-device").iter().count(), 1);
        assert_eq!(
            header_get(&map, &h).and_then(|v| v.as_str().map(str::to_string)),
            Some("tablet".to_string())
        );
        header_set(&mut map, &h, Value::Int(3), "req.http").expect("set");
        assert_eq!(map.get("x-device").map(|v| v.as_bytes()), Some(&b"3"[..]));
        let err = header_set(
            &mut map,
            &h,
            Value::Str(Cow::Owned("a\nb".into())),
            "req.http",
        )
        .expect_err("a line break is no header value");
        assert_eq!(err, "req.http.x-device: not a valid header value");
        // A policy's literal is lent: checked the same way.
        let err = header_set(&mut map, &h, Value::Str(Cow::Borrowed("a\rb")), "req.http")
            .expect_err("a carriage return is no header value");
        assert_eq!(err, "req.http.x-device: not a valid header value");
        assert_eq!(map.get("x-device").map(|v| v.as_bytes()), Some(&b"3"[..]));
        header_unset(&mut map, &h);
        assert!(map.is_empty());
    }

    #[test]
    fn a_literal_is_made_a_header_value_once_and_checked() {
        let mut map = HeaderMap::new();
        let h = Header::new("X-Device");
        let mobile = Literal::new("mobile");
        for _ in 0..2 {
            header_set_literal(&mut map, &h, &mobile, "req.http").expect("set");
            assert_eq!(map.get_all("x-device").iter().count(), 1);
            assert_eq!(
                map.get("x-device").map(|v| v.as_bytes()),
                Some(&b"mobile"[..])
            );
        }
        // The value kept with the literal is the one set.
        let kept = mobile.host_form(|_| -> Option<HeaderValue> { None });
        assert_eq!(
            kept.and_then(Option::as_ref).map(|v| v.as_bytes()),
            Some(&b"mobile"[..])
        );
        let err = header_set_literal(&mut map, &h, &Literal::new("a\rb"), "req.http")
            .expect_err("a carriage return is no header value");
        assert_eq!(err, "req.http.x-device: not a valid header value");
        assert_eq!(
            map.get("x-device").map(|v| v.as_bytes()),
            Some(&b"mobile"[..])
        );
    }

    #[test]
    fn header_values_replaced_keeping_opaque_ones() {
        let mut map = HeaderMap::new();
        map.append("set-cookie", HeaderValue::from_static("a=1"));
        map.append(
            "set-cookie",
            HeaderValue::from_bytes(b"b=\xe9").expect("obs-text"),
        );
        map.append("set-cookie", HeaderValue::from_static("c=3"));
        let h = Header::new("set-cookie");
        assert_eq!(header_all(&map, &h), vec!["a=1", "c=3"]);
        header_replace(&mut map, &h, &["c=3".to_string(), "d=4".to_string()], "x").unwrap();
        let now: Vec<&[u8]> = map
            .get_all("set-cookie")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(now, vec![&b"b=\xe9"[..], b"c=3", b"d=4"]);
        let err = header_replace(&mut map, &h, &["bad\nvalue".to_string()], "resp.http");
        assert_eq!(
            err.unwrap_err(),
            "resp.http.set-cookie: not a valid header value"
        );
        assert_eq!(map.get_all("set-cookie").iter().count(), 3, "unchanged");
        header_replace(&mut map, &h, &[], "x").unwrap();
        assert_eq!(map.get_all("set-cookie").iter().count(), 1);
    }
}
