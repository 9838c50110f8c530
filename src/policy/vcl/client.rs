//! The client subroutines' view (`vcl_recv` to `vcl_synth`): the request,
//! and where the subroutine has them the object (`obj.*`) and the response
//! (`resp.*`).

use crate::http::req_fields::FieldsRead;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, Method, Response, StatusCode, Version};
use std::borrow::Cow;
use std::net::IpAddr;
use vcl_lite::{Context, Value, Var};

use super::values::{
    canonical_reason, common_get, duration, header_all, header_get, header_replace, header_set,
    header_set_literal, header_unset, reason_for_set_status, seconds, status_of, status_value,
};
use crate::body::RespBody;
use crate::cache::CachedObject;
use crate::lifecycle::{ObjMeta, Synthetic, Task};

/// The response a client subroutine works on.
pub(super) enum RespPart<'a> {
    /// `vcl_deliver`: the response about to be sent.
    Delivered(&'a mut Response<RespBody>),
    /// `vcl_synth`: the synthetic answer being made.
    Synth(&'a mut Synthetic),
}

/// What a client subroutine reads and writes.
pub(super) struct ClientView<'a> {
    pub(super) req: &'a mut Task,
    /// `vcl_hit`: the object found (`obj.status`, `obj.http.*`).
    pub(super) obj: Option<&'a CachedObject>,
    /// `vcl_hit`, `vcl_deliver`: `obj.hits`, `obj.age`, …
    pub(super) meta: Option<ObjMeta>,
    pub(super) resp: Option<RespPart<'a>>,
    /// `vcl_hash`: the parts of the key.
    pub(super) hash: crate::cache::KeyParts,
    pub(super) shared: &'a super::Shared,
}

impl<'a> ClientView<'a> {
    /// A view of the request only.
    pub(super) fn of(req: &'a mut Task, shared: &'a super::Shared) -> ClientView<'a> {
        // Fields the policy asks for and the request lacks are then told
        // without the map (made once; a change from outside forgets it).
        req.headers.summarise();
        ClientView {
            req,
            obj: None,
            meta: None,
            resp: None,
            hash: Default::default(),
            shared,
        }
    }

    fn resp_get(&self, var: &Var) -> Option<Value<'_>> {
        match (self.resp.as_ref()?, var) {
            (RespPart::Delivered(r), Var::RespStatus) => Some(status_value(r.status())),
            (RespPart::Synth(s), Var::RespStatus) => Some(status_value(s.status)),
            (RespPart::Delivered(r), Var::RespReason) => {
                Some(Value::Str(Cow::Borrowed(crate::lifecycle::phrase_of(r))))
            }
            (RespPart::Synth(s), Var::RespReason) => Some(Value::Str(Cow::Borrowed(&s.reason))),
            (_, Var::RespProto) => Some(Value::Str(Cow::Owned(format!("{:?}", self.req.version)))),
            (RespPart::Delivered(r), Var::RespHttp(h)) => header_get(&**r, h),
            (RespPart::Synth(s), Var::RespHttp(h)) => header_get(&s.headers, h),
            _ => None,
        }
    }

    /// `resp.http.<h>` as text.
    fn resp_str(&self, h: &vcl_lite::Header) -> Option<&str> {
        match self.resp.as_ref()? {
            RespPart::Delivered(r) => super::values::header_str(&**r, h),
            RespPart::Synth(s) => super::values::header_str(&s.headers, h),
        }
    }

    /// The response's whole map to change (a stored response's fields
    /// copied into it first: `lifecycle::resp_fields`).
    fn resp_headers(&mut self) -> Option<&mut HeaderMap> {
        match self.resp.as_mut()? {
            RespPart::Delivered(r) => {
                crate::lifecycle::resp_fields::into_map(r);
                Some(r.headers_mut())
            }
            RespPart::Synth(s) => Some(&mut s.headers),
        }
    }

    fn obj_get(&self, var: &Var) -> Option<Value<'_>> {
        let meta = self.meta.as_ref();
        match var {
            Var::ObjHits => Some(Value::Int(i64::try_from(meta?.hits).unwrap_or(i64::MAX))),
            Var::ObjAge => Some(duration(meta?.age)),
            Var::ObjTtl => Some(Value::Duration(meta?.ttl)),
            Var::ObjGrace => Some(duration(meta?.grace)),
            Var::ObjKeep => Some(duration(meta?.keep)),
            Var::ObjUncacheable => Some(Value::Bool(meta?.uncacheable)),
            Var::ObjStatus => Some(status_value(self.obj?.status)),
            Var::ObjReason => Some(canonical_reason(self.obj?.status)),
            Var::ObjHttp(h) => self.obj_header(h).map(|v| Value::Str(Cow::Borrowed(v))),
            _ => None,
        }
    }

    /// `obj.http.NAME`'s text.
    fn obj_header(&self, h: &vcl_lite::Header) -> Option<&str> {
        self.obj?
            .header(super::values::header_name(h)?)
            .and_then(|v| v.to_str().ok())
    }
}

/// A `req.*` variable as the policy reads it (`req.http.host` is the
/// request's host key while it has one). Inlined into its two callers:
/// as a call it cost ~500 instructions a hit under production.vcl.
#[inline(always)]
pub(super) fn req_get<'r>(r: &'r Task, var: &Var) -> Option<Value<'r>> {
    match var {
        Var::ReqMethod => Some(Value::Str(Cow::Borrowed(r.method.as_str()))),
        Var::ReqUrl => Some(Value::Str(Cow::Borrowed(&r.url))),
        Var::ReqProto => Some(Value::Str(Cow::Owned(format!("{:?}", r.version)))),
        Var::ReqHttp(h) => req_header(r, h).map(|v| Value::Str(Cow::Borrowed(v))),
        Var::ReqHashAlwaysMiss => Some(Value::Bool(r.always_miss)),
        Var::ReqRestarts => Some(Value::Int(i64::from(r.restarts))),
        Var::ReqEsiLevel => Some(Value::Int(
            r.esi.as_ref().map_or(0, |chain| chain.level() as i64),
        )),
        Var::ReqTtl => r.max_ttl.map(duration),
        Var::ReqGrace => r.max_grace.map(duration),
        _ => None,
    }
}

/// `req.http.NAME` as the policy reads it: `Host` is the request's host
/// key while it has one; a request asking to switch protocols keeps its
/// `Upgrade` and `Connection` aside (hop-by-hop, taken off at intake) and
/// the policy sees them as Varnish shows them (`req.http.Upgrade ~
/// "websocket"`).
#[inline(always)]
fn req_header<'r>(r: &'r Task, h: &vcl_lite::Header) -> Option<&'r str> {
    let super::values::PolicyName { name, bit } = super::values::policy_name(h)?;
    if name == HOST && !r.host.is_empty() {
        return Some(&r.host);
    }
    if let Some(v) = r.headers.first(name, *bit) {
        return v.to_str().ok();
    }
    match &r.upgrade {
        Some(u) if name == UPGRADE => u.protocol.to_str().ok(),
        Some(_) if name == CONNECTION => Some("Upgrade"),
        _ => None,
    }
}

/// The request's text variables (`req.http.*`, `req.url`, `req.method`)
/// as the policy reads them; `None` for other variables.
#[inline(always)]
fn req_text<'r>(r: &'r Task, var: &Var) -> Option<Option<&'r str>> {
    match var {
        Var::ReqHttp(h) => Some(req_header(r, h)),
        Var::ReqUrl => Some(Some(&r.url)),
        Var::ReqMethod => Some(Some(r.method.as_str())),
        _ => None,
    }
}

/// Whether setting `Host` to `text` would change nothing: the request has
/// one `Host` field, its text is `text`, and so is the key's host, which
/// setting it would make `text`'s normal form: `text` itself when it has no
/// capital and no port (a host or not, `normalize_host` or lowercasing).
fn only_host_is(req: &Task, text: &str) -> bool {
    // The key's host first: when it differs (a port stripped), the
    // request's fields are not looked up.
    req.host == text && !text.bytes().any(|b| b == b':' || b.is_ascii_uppercase()) && {
        let mut hosts = req.headers.get_all(HOST);
        hosts
            .next()
            .is_some_and(|h| h.as_bytes() == text.as_bytes())
            && hosts.next().is_none()
    }
}

impl Context for ClientView<'_> {
    fn lends_text(&self) -> bool {
        true
    }

    fn text(&self, var: &Var) -> Option<&str> {
        if let Some(text) = req_text(self.req, var) {
            return text;
        }
        match var {
            Var::RespHttp(h) => self.resp_str(h),
            Var::ObjHttp(h) => self.obj_header(h),
            // Other variables are not asked here (`Var::is_text`).
            _ => self.get(var)?.into_lent_str(),
        }
    }

    fn get(&self, var: &Var) -> Option<Value<'_>> {
        match var {
            Var::ReqMethod
            | Var::ReqUrl
            | Var::ReqProto
            | Var::ReqHttp(_)
            | Var::ReqHashAlwaysMiss
            | Var::ReqRestarts
            | Var::ReqEsiLevel
            | Var::ReqTtl
            | Var::ReqGrace => req_get(self.req, var),
            Var::RespStatus | Var::RespReason | Var::RespProto | Var::RespHttp(_) => {
                self.resp_get(var)
            }
            Var::ClientIp
            | Var::ServerHostname
            | Var::ServerIdentity
            | Var::ServerIp
            | Var::LocalIp
            | Var::RemoteIp => common_get(
                var,
                self.req.client.ip(),
                self.req.conn.as_deref(),
                &self.shared.hostname,
            ),
            Var::ClientIdentity => Some(Value::Str(match &self.req.client_identity {
                Some(id) => Cow::Borrowed(id.as_str()),
                None => Cow::Owned(self.req.client.ip().to_string()),
            })),
            Var::ReqXid => Some(Value::Str(Cow::Owned(self.req.xid.to_string()))),
            Var::ReqIsHitmiss => Some(Value::Bool(self.req.hit_for_miss_until.is_some())),
            // lacquer keeps hit-for-pass (`return (pass(d))`) as a hit-for-miss
            // marker: such requests count as `req.is_hitmiss`.
            Var::ReqIsHitpass => Some(Value::Bool(false)),
            Var::ReqBackendHint => self
                .req
                .backend_hint
                .as_deref()
                .or(self.shared.directors.default_backend())
                .map(|n| Value::Str(Cow::Borrowed(n))),
            _ => self.obj_get(var),
        }
    }

    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        let req = &mut *self.req;
        match var {
            // `set req.url = std.querysort(req.url)` mostly changes nothing.
            Var::ReqUrl if value.as_str() == Some(req.url.as_str()) => {}
            Var::ReqUrl => req.url = super::values::request_target(value, "req.url")?,
            Var::ReqMethod => {
                req.method = Method::from_bytes(value.to_string().as_bytes())
                    .map_err(|_| "req.method: not a valid method".to_string())?;
            }
            Var::ReqProto => {
                req.version = match value.to_string().as_str() {
                    "HTTP/1.0" => Version::HTTP_10,
                    "HTTP/1.1" => Version::HTTP_11,
                    other => {
                        return Err(format!("req.proto: {other:?} is not HTTP/1.0 or HTTP/1.1"))
                    }
                };
            }
            // `set req.http.Host = regsub(std.tolower(req.http.Host), …)`
            // (most policies) on a Host already in that form: nothing to
            // change (one Host field, the key's host made from it).
            Var::ReqHttp(h)
                if h.name() == "host" && value.as_str().is_some_and(|v| only_host_is(req, v)) => {}
            Var::ReqHttp(h) if h.name() == "host" => {
                // Keyed as recv keys a client's Host; a value that is no
                // host is kept as it is, lowercased. Made before the value
                // moves into the field, so it is not copied for this.
                let text = value.into_string();
                let host = crate::http::headers::normalize_host(
                    &text,
                    crate::http::headers::default_port(None),
                )
                .unwrap_or_else(|_| text.to_ascii_lowercase());
                header_set(
                    &mut req.headers,
                    h,
                    Value::Str(Cow::Owned(text)),
                    "req.http",
                )?;
                req.host = host;
            }
            Var::ReqHttp(h) => header_set(&mut req.headers, h, value, "req.http")?,
            Var::ReqHashAlwaysMiss => req.always_miss = matches!(value, Value::Bool(true)),
            Var::ClientIdentity => req.client_identity = Some(value.into_string()),
            Var::ReqTtl => req.max_ttl = seconds(&value),
            Var::ReqGrace => req.max_grace = seconds(&value),
            Var::ReqBackendHint => req.backend_hint = Some(value.into_string()),
            Var::RespStatus => {
                let status: StatusCode = status_of(&value, "resp.status")?;
                let reason = reason_for_set_status(status);
                match self.resp.as_mut() {
                    Some(RespPart::Delivered(r)) => {
                        *r.status_mut() = status;
                        crate::lifecycle::set_phrase(r, reason);
                    }
                    Some(RespPart::Synth(s)) => {
                        s.status = status;
                        s.reason = reason.to_string();
                        s.phrase = Some(reason.to_string());
                    }
                    None => return Err("resp.status cannot be set here".into()),
                }
            }
            Var::RespReason => {
                let text = value.into_string();
                match self.resp.as_mut() {
                    Some(RespPart::Delivered(r)) => crate::lifecycle::set_phrase(r, &text),
                    Some(RespPart::Synth(s)) => {
                        s.phrase = Some(text.clone());
                        s.reason = text;
                    }
                    None => return Err("resp.reason cannot be set here".into()),
                }
            }
            Var::RespHttp(h) => match self.resp.as_mut() {
                Some(RespPart::Delivered(r)) => header_set(&mut **r, h, value, "resp.http")?,
                Some(RespPart::Synth(s)) => header_set(&mut s.headers, h, value, "resp.http")?,
                None => return Err("resp.http cannot be set here".into()),
            },
            Var::RespBody => match self.resp.as_mut() {
                Some(RespPart::Synth(s)) => s.body = value.into_string(),
                _ => return Err("resp.body cannot be set here".into()),
            },
            other => return Err(format!("{other:?} cannot be set here")),
        }
        Ok(())
    }

    fn unset(&mut self, var: &Var) {
        match var {
            Var::ReqHttp(h) => {
                header_unset(&mut self.req.headers, h);
                if h.name() == "host" {
                    self.req.host.clear();
                }
            }
            Var::RespHttp(h) => match self.resp.as_mut() {
                Some(RespPart::Delivered(r)) => header_unset(&mut **r, h),
                Some(RespPart::Synth(s)) => header_unset(&mut s.headers, h),
                None => {}
            },
            _ => {}
        }
    }

    fn client_ip(&self) -> IpAddr {
        self.req.client.ip()
    }

    fn hash_data(&mut self, data: &str) {
        self.hash.push(data);
    }

    fn hash_text_of(&mut self, var: &Var) -> bool {
        let Some(text) = req_text(self.req, var) else {
            return false;
        };
        self.hash.push(text.unwrap_or(""));
        true
    }

    fn synthetic(&mut self, body: &str) {
        if let Some(RespPart::Synth(s)) = self.resp.as_mut() {
            s.body.push_str(body);
        }
    }

    fn now(&self) -> f64 {
        super::values::epoch_seconds(self.req.live.clock.now())
    }

    fn ban(&self, expr: &str) -> Result<(), String> {
        match self.services() {
            Some(proxy) => proxy.ban(Some(self.req), expr),
            None => Err("bans are not available for this request".to_string()),
        }
    }

    fn log(&mut self, priority: Option<i64>, message: &str) {
        super::values::log(priority, message, &self.req.url);
        // Kept for the access log line; a bounded number per request.
        if self.req.vcl_log.len() < MAX_LOGGED {
            self.req.vcl_log.push(message.to_string());
        }
    }

    fn healthy(&self, backend: &str) -> bool {
        // As its probe sees it; a backend lacquer left out (`none`, a Unix
        // socket) is sick. A director is healthy when one of its backends is.
        let health = &*self.req.live.health;
        self.shared
            .directors
            .healthy(backend, &|b: &str| health.healthy(b))
    }

    fn director_backend(&self, director: &str, key: &str) -> Option<String> {
        let health = &*self.req.live.health;
        self.shared
            .directors
            .resolve(director, key, &|b: &str| health.healthy(b))
    }

    fn collect(&mut self, header: &Var, separator: &str) {
        match header {
            Var::ReqHttp(h) => super::values::collect(&mut self.req.headers, h, separator),
            Var::RespHttp(h) => {
                if let Some(headers) = self.resp_headers() {
                    super::values::collect(headers, h, separator);
                }
            }
            _ => {}
        }
    }

    fn cache_req_body(&self, max_bytes: i64) -> bool {
        // The body was read before vcl_recv when it could be (up to
        // `server.max_cached_req_body`); else this says whether the
        // streamed body is within `max_bytes` by its length.
        use http_body::Body as _;
        if let Some(cached) = &self.req.cached_body {
            return i64::try_from(cached.len()).is_ok_and(|len| len <= max_bytes);
        }
        match self.req.body.as_ref() {
            None => true,
            Some(b) if b.is_end_stream() => true,
            Some(b) => b
                .size_hint()
                .exact()
                .is_some_and(|len| i64::try_from(len).is_ok_and(|len| len <= max_bytes)),
        }
    }

    fn port(&self, var: &Var) -> Option<u16> {
        super::values::port_of(var, Some(self.req.client.port()), self.req.conn.as_deref())
    }

    fn task_state(&self) -> Option<&vcl_lite::TaskState> {
        self.req.vmods.as_deref()
    }

    fn task_state_mut(&mut self) -> Option<&mut vcl_lite::TaskState> {
        Some(self.req.vmods.get_or_insert_with(Box::default))
    }

    fn header_values(&self, var: &Var) -> Vec<String> {
        self.header_values_of(var)
    }

    fn set_header_values(&mut self, var: &Var, values: Vec<String>) -> Result<(), String> {
        self.set_header_values_of(var, values)
    }

    fn xkey_purge(&self, keys: &str, soft: bool) -> i64 {
        self.xkey_purge_for(keys, soft)
    }

    fn set_text(&mut self, var: &Var, text: &vcl_lite::Literal) -> Result<(), String> {
        match var {
            // `Host` keys the request too: through `set`.
            Var::ReqHttp(h) if h.name() != "host" => {
                header_set_literal(&mut self.req.headers, h, text, "req.http")
            }
            Var::RespHttp(h) => match self.resp.as_mut() {
                Some(RespPart::Delivered(r)) => header_set_literal(&mut **r, h, text, "resp.http"),
                Some(RespPart::Synth(s)) => {
                    header_set_literal(&mut s.headers, h, text, "resp.http")
                }
                None => Err("resp.http cannot be set here".into()),
            },
            other => self.set(other, Value::Str(Cow::Borrowed(text.text()))),
        }
    }

    fn purge(&self, soft: Option<vcl_lite::SoftPurge>) -> Result<i64, String> {
        self.purge_lookup(soft)
    }

    fn proxy(&self, field: vcl_lite::ProxyField) -> Option<Value<'_>> {
        let tlvs = self.req.conn.as_deref()?.tlvs.as_deref()?;
        super::values::proxy_field(tlvs, field)
    }

    fn rollback(&mut self, part: vcl_lite::HttpPart) -> Result<(), String> {
        match part {
            vcl_lite::HttpPart::Req if self.req.roll_back() => Ok(()),
            vcl_lite::HttpPart::Req => {
                Err("std.rollback(req): the request as received was not kept".to_string())
            }
            vcl_lite::HttpPart::Bereq => {
                Err("std.rollback(bereq) is not available in client subroutines".to_string())
            }
        }
    }
}

/// The vmods' hooks (vmod cookie and var keep their state in the task).
impl ClientView<'_> {
    fn services(&self) -> Option<std::sync::Arc<dyn crate::lifecycle::PolicyServices>> {
        self.req.live_services()
    }

    pub(super) fn header_values_of(&self, var: &Var) -> Vec<String> {
        match var {
            Var::ReqHttp(h)
                if self.req.upgrade.is_some() && !self.req.headers.contains_key(h.name()) =>
            {
                // `Upgrade` / `Connection` are kept aside: as `get` shows them.
                self.get(var)
                    .map(|v| vec![v.to_string()])
                    .unwrap_or_default()
            }
            Var::ReqHttp(h) => header_all(&self.req.headers, h),
            Var::RespHttp(h) => match self.resp.as_ref() {
                Some(RespPart::Delivered(r)) => header_all(&**r, h),
                Some(RespPart::Synth(s)) => header_all(&s.headers, h),
                None => Vec::new(),
            },
            _ => self
                .get(var)
                .map(|v| vec![v.to_string()])
                .unwrap_or_default(),
        }
    }

    pub(super) fn set_header_values_of(
        &mut self,
        var: &Var,
        values: Vec<String>,
    ) -> Result<(), String> {
        match var {
            Var::ReqHttp(h) if h.name() == "host" => {
                // Through `set`/`unset`, which keep the lookup host in step.
                self.unset(var);
                match values.into_iter().next() {
                    Some(first) => self.set(var, Value::Str(Cow::Owned(first))),
                    None => Ok(()),
                }
            }
            Var::ReqHttp(h) => header_replace(self.req.headers.map_mut(), h, &values, "req.http"),
            Var::RespHttp(h) => {
                let headers = self
                    .resp_headers()
                    .ok_or("resp.http cannot be changed here")?;
                header_replace(headers, h, &values, "resp.http")
            }
            other => Err(format!("{other:?} cannot be changed here")),
        }
    }

    pub(super) fn xkey_purge_for(&self, keys: &str, soft: bool) -> i64 {
        let Some(proxy) = self.services() else {
            return 0;
        };
        // A refused purge (too many keys) is logged where it is refused;
        // as in Varnish, it purged nothing.
        proxy
            .purge_keys(Some(self.req), keys, soft)
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }

    pub(super) fn purge_lookup(&self, soft: Option<vcl_lite::SoftPurge>) -> Result<i64, String> {
        let key = self
            .req
            .lookup_key
            .as_ref()
            .ok_or("purge: no lookup for this request")?;
        let proxy = self
            .services()
            .ok_or("purge: not available for this request")?;
        let n = proxy.purge_key(self.req, key, soft);
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// The most `std.log` messages kept per request for the access log.
const MAX_LOGGED: usize = 32;
