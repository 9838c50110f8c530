//! The backend subroutines' view: the backend request (`bereq.*`), and the
//! backend response (`beresp.*`) — fetched in `vcl_backend_response`,
//! synthetic in `vcl_backend_error`.

use http::{HeaderMap, Method};
use std::borrow::Cow;
use std::net::IpAddr;
use vcl_lite::{Context, Value, Var};

use super::values::{
    canonical_reason, common_get, duration, header_all, header_get, header_replace, header_set,
    header_str, header_unset, reason_for_set_status, seconds, status_of, status_value,
};
use crate::lifecycle::{Bereq, Beresp, Synthetic};

/// The backend response a backend subroutine works on.
pub(super) enum BerespPart<'a, 'b> {
    /// `vcl_backend_response`: what the backend sent.
    Fetched(&'a mut Beresp<'b>),
    /// `vcl_backend_error`: the synthetic answer being made.
    Error(&'a mut Synthetic),
}

/// What a backend subroutine reads and writes.
pub(super) struct BackendView<'a, 'b> {
    pub(super) bereq: &'a mut Bereq,
    pub(super) beresp: Option<BerespPart<'a, 'b>>,
    pub(super) shared: &'a super::Shared,
}

impl BackendView<'_, '_> {
    /// A backend's health as the probes see it. A fetch without the
    /// proxy's services (an ESI fragment's) cannot ask: it counts backends
    /// healthy, as before probes were read here.
    fn health(&self) -> impl Fn(&str) -> Option<bool> {
        let proxy = self.bereq.live_services();
        move |b: &str| Some(proxy.as_ref().is_none_or(|p| p.healthy(b).unwrap_or(false)))
    }

    fn bereq_get(&self, var: &Var) -> Option<Value<'_>> {
        let b = &*self.bereq;
        match var {
            Var::BereqMethod => Some(Value::Str(Cow::Borrowed(b.method.as_str()))),
            Var::BereqUrl => Some(Value::Str(Cow::Borrowed(&b.url))),
            Var::BereqProto => Some(Value::Str(Cow::Borrowed("HTTP/1.1"))),
            Var::BereqHttp(h) => header_get(&b.headers, h),
            Var::BereqRetries => Some(Value::Int(i64::from(b.retries))),
            Var::BereqUncacheable => Some(Value::Bool(b.uncacheable)),
            Var::BereqIsBgfetch => Some(Value::Bool(b.is_bgfetch)),
            Var::BereqConnectTimeout => b.timeouts.connect.map(duration),
            Var::BereqFirstByteTimeout => b.timeouts.first_byte.map(duration),
            Var::BereqBetweenBytesTimeout => b.timeouts.between_bytes.map(duration),
            Var::BereqBackend => b
                .backend
                .as_deref()
                .or(self.shared.directors.default_backend())
                .map(|n| Value::Str(Cow::Borrowed(n))),
            _ => None,
        }
    }

    fn beresp_get(&self, var: &Var) -> Option<Value<'_>> {
        match (self.beresp.as_ref()?, var) {
            (BerespPart::Fetched(b), Var::BerespStatus) => Some(status_value(b.status)),
            (BerespPart::Error(s), Var::BerespStatus) => Some(status_value(s.status)),
            (BerespPart::Fetched(b), Var::BerespReason) => match &b.phrase {
                Some(p) => Some(Value::Str(Cow::Borrowed(p))),
                None => Some(canonical_reason(b.status)),
            },
            (BerespPart::Fetched(_), Var::BerespDoStream) => Some(Value::Bool(true)),
            (BerespPart::Error(s), Var::BerespReason) => Some(Value::Str(Cow::Borrowed(&s.reason))),
            (_, Var::BerespProto) => Some(Value::Str(Cow::Borrowed("HTTP/1.1"))),
            (_, Var::BerespHttp(h)) => header_get(self.beresp_map()?, h),
            (BerespPart::Fetched(b), Var::BerespTtl) => Some(duration(b.ttl)),
            (BerespPart::Fetched(b), Var::BerespGrace) => Some(duration(b.grace)),
            (BerespPart::Fetched(b), Var::BerespKeep) => Some(duration(b.keep)),
            (BerespPart::Fetched(b), Var::BerespAge) => Some(duration(b.age)),
            (BerespPart::Fetched(b), Var::BerespUncacheable) => Some(Value::Bool(b.uncacheable)),
            (BerespPart::Fetched(b), Var::BerespDoEsi) => Some(Value::Bool(b.do_esi)),
            (BerespPart::Fetched(b), Var::BerespDoGzip) => Some(Value::Bool(b.do_gzip)),
            (BerespPart::Fetched(b), Var::BerespDoBrotli) => Some(Value::Bool(b.do_brotli)),
            (BerespPart::Fetched(b), Var::BerespDoZstd) => Some(Value::Bool(b.do_zstd)),
            (BerespPart::Fetched(b), Var::BerespDoGunzip) => Some(Value::Bool(b.do_gunzip)),
            (BerespPart::Fetched(b), Var::BerespWas304) => Some(Value::Bool(b.was_304)),
            (_, Var::BerespBackend) => self
                .bereq
                .sent_to
                .as_deref()
                .map(|n| Value::Str(Cow::Borrowed(n))),
            _ => None,
        }
    }

    fn beresp_map(&self) -> Option<&HeaderMap> {
        match self.beresp.as_ref()? {
            BerespPart::Fetched(b) => Some(&*b.headers),
            BerespPart::Error(s) => Some(&s.headers),
        }
    }

    fn beresp_headers(&mut self) -> Option<&mut HeaderMap> {
        match self.beresp.as_mut()? {
            BerespPart::Fetched(b) => {
                b.changed = true;
                Some(&mut *b.headers)
            }
            BerespPart::Error(s) => Some(&mut s.headers),
        }
    }

    fn set_fetched(b: &mut Beresp<'_>, var: &Var, value: &Value<'_>) -> Result<(), String> {
        match var {
            Var::BerespStatus => {
                b.status = status_of(value, "beresp.status")?;
                b.phrase = None;
            }
            Var::BerespReason => b.phrase = Some(value.to_string()),
            // Accepted for Varnish VCL: lacquer always streams and has one
            // store.
            Var::BerespDoStream | Var::BerespStorageHint => return Ok(()),
            Var::BerespTtl => {
                b.ttl = seconds(value).ok_or("beresp.ttl needs a duration")?;
                b.set_ttl = true;
            }
            Var::BerespGrace => {
                b.grace = seconds(value).ok_or("beresp.grace needs a duration")?;
                b.set_grace = true;
            }
            Var::BerespKeep => {
                b.keep = seconds(value).ok_or("beresp.keep needs a duration")?;
                b.set_keep = true;
            }
            Var::BerespUncacheable => {
                b.uncacheable = matches!(value, Value::Bool(true));
                b.set_uncacheable = true;
            }
            Var::BerespDoEsi
            | Var::BerespDoGzip
            | Var::BerespDoBrotli
            | Var::BerespDoZstd
            | Var::BerespDoGunzip => {
                let flag = match var {
                    Var::BerespDoEsi => &mut b.do_esi,
                    Var::BerespDoGzip => &mut b.do_gzip,
                    Var::BerespDoBrotli => &mut b.do_brotli,
                    Var::BerespDoZstd => &mut b.do_zstd,
                    _ => &mut b.do_gunzip,
                };
                *flag = matches!(value, Value::Bool(true));
                // How the body is processed and stored: not a change RFC
                // 9111 needs to look at again.
                return Ok(());
            }
            other => return Err(format!("{other:?} cannot be set here")),
        }
        b.changed = true;
        Ok(())
    }
}

impl Context for BackendView<'_, '_> {
    fn lends_text(&self) -> bool {
        true
    }

    fn text(&self, var: &Var) -> Option<&str> {
        match var {
            Var::BereqHttp(h) => header_str(&self.bereq.headers, h),
            Var::BereqUrl => Some(&self.bereq.url),
            Var::BereqMethod => Some(self.bereq.method.as_str()),
            Var::BerespHttp(h) => header_str(self.beresp_map()?, h),
            // Not asked in backend subroutines; answered as `get` would.
            _ => self.get(var)?.into_lent_str(),
        }
    }

    fn get(&self, var: &Var) -> Option<Value<'_>> {
        match var {
            Var::BereqMethod
            | Var::BereqUrl
            | Var::BereqProto
            | Var::BereqHttp(_)
            | Var::BereqRetries
            | Var::BereqBackend
            | Var::BereqUncacheable
            | Var::BereqIsBgfetch
            | Var::BereqConnectTimeout
            | Var::BereqFirstByteTimeout
            | Var::BereqBetweenBytesTimeout => self.bereq_get(var),
            Var::ClientIp
            | Var::ServerHostname
            | Var::ServerIdentity
            | Var::ServerIp
            | Var::LocalIp
            | Var::RemoteIp => common_get(
                var,
                self.bereq.client,
                self.bereq.conn.as_deref(),
                &self.shared.hostname,
            ),
            Var::ClientIdentity => Some(Value::Str(Cow::Owned(self.bereq.client.to_string()))),
            Var::BereqXid => Some(Value::Str(Cow::Owned(self.bereq.xid.to_string()))),
            _ => self.beresp_get(var),
        }
    }

    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        match var {
            Var::BereqUrl => self.bereq.url = super::values::request_target(value, "bereq.url")?,
            Var::BereqMethod => {
                self.bereq.method = Method::from_bytes(value.to_string().as_bytes())
                    .map_err(|_| "bereq.method: not a valid method".to_string())?;
            }
            Var::BereqHttp(h) => header_set(&mut self.bereq.headers, h, value, "bereq.http")?,
            // 0s (or less) means "none" to a timer: taken as the backend's.
            Var::BereqConnectTimeout => {
                self.bereq.timeouts.connect = seconds(&value).filter(|d| !d.is_zero())
            }
            Var::BereqFirstByteTimeout => {
                self.bereq.timeouts.first_byte = seconds(&value).filter(|d| !d.is_zero())
            }
            Var::BereqBetweenBytesTimeout => {
                self.bereq.timeouts.between_bytes = seconds(&value).filter(|d| !d.is_zero())
            }
            Var::BereqBackend => self.bereq.backend = Some(value.into_string()),
            Var::BerespHttp(h) => {
                let headers = self
                    .beresp_headers()
                    .ok_or("beresp.http cannot be set here")?;
                header_set(headers, h, value, "beresp.http")?;
            }
            _ => match self.beresp.as_mut() {
                Some(BerespPart::Fetched(b)) => Self::set_fetched(b, var, &value)?,
                Some(BerespPart::Error(s)) => match var {
                    Var::BerespStatus => {
                        s.status = status_of(&value, "beresp.status")?;
                        let reason = reason_for_set_status(s.status);
                        s.reason = reason.to_string();
                        s.phrase = Some(reason.to_string());
                    }
                    Var::BerespReason => {
                        let text = value.into_string();
                        s.phrase = Some(text.clone());
                        s.reason = text;
                    }
                    Var::BerespBody => s.body = value.into_string(),
                    other => return Err(format!("{other:?} cannot be set here")),
                },
                None => return Err(format!("{var:?} cannot be set here")),
            },
        }
        Ok(())
    }

    fn unset(&mut self, var: &Var) {
        match var {
            Var::BereqHttp(h) => {
                header_unset(&mut self.bereq.headers, h);
            }
            Var::BerespHttp(h) => {
                if let Some(headers) = self.beresp_headers() {
                    header_unset(headers, h);
                }
            }
            _ => {}
        }
    }

    fn client_ip(&self) -> IpAddr {
        self.bereq.client
    }

    fn hash_data(&mut self, _data: &str) {}

    fn synthetic(&mut self, body: &str) {
        if let Some(BerespPart::Error(s)) = self.beresp.as_mut() {
            s.body.push_str(body);
        }
    }

    fn log(&mut self, priority: Option<i64>, message: &str) {
        // A fetch may serve several clients: its messages go to lacquer's
        // log only, not to an access log line.
        super::values::log(priority, message, &self.bereq.url);
    }

    fn rollback(&mut self, part: vcl_lite::HttpPart) -> Result<(), String> {
        match part {
            vcl_lite::HttpPart::Bereq if self.bereq.roll_back() => Ok(()),
            vcl_lite::HttpPart::Bereq => {
                Err("std.rollback(bereq): the backend request as made was not kept".to_string())
            }
            vcl_lite::HttpPart::Req => {
                Err("std.rollback(req) is not available in backend subroutines".to_string())
            }
        }
    }

    fn ban(&self, expr: &str) -> Result<(), String> {
        match self.bereq.live_services() {
            Some(proxy) => proxy.ban(None, expr),
            None => Err("bans are not available for this fetch".to_string()),
        }
    }

    fn healthy(&self, backend: &str) -> bool {
        self.shared.directors.healthy(backend, &self.health())
    }

    fn director_backend(&self, director: &str, key: &str) -> Option<String> {
        self.shared.directors.resolve(director, key, &self.health())
    }

    fn collect(&mut self, header: &Var, separator: &str) {
        match header {
            Var::BereqHttp(h) => super::values::collect(&mut self.bereq.headers, h, separator),
            Var::BerespHttp(h) => {
                if let Some(headers) = self.beresp_headers() {
                    super::values::collect(headers, h, separator);
                }
            }
            _ => {}
        }
    }

    fn port(&self, var: &Var) -> Option<u16> {
        super::values::port_of(var, None, self.bereq.conn.as_deref())
    }

    fn task_state(&self) -> Option<&vcl_lite::TaskState> {
        self.bereq.vmods.as_deref()
    }

    fn task_state_mut(&mut self) -> Option<&mut vcl_lite::TaskState> {
        Some(self.bereq.vmods.get_or_insert_with(Box::default))
    }

    fn header_values(&self, var: &Var) -> Vec<String> {
        match (var, self.beresp.as_ref()) {
            (Var::BereqHttp(h), _) => header_all(&self.bereq.headers, h),
            (Var::BerespHttp(h), Some(BerespPart::Fetched(b))) => header_all(b.headers, h),
            (Var::BerespHttp(h), Some(BerespPart::Error(s))) => header_all(&s.headers, h),
            _ => Vec::new(),
        }
    }

    fn set_header_values(&mut self, var: &Var, values: Vec<String>) -> Result<(), String> {
        match var {
            Var::BereqHttp(h) => header_replace(&mut self.bereq.headers, h, &values, "bereq.http"),
            Var::BerespHttp(h) => {
                let headers = self
                    .beresp_headers()
                    .ok_or("beresp.http cannot be changed here")?;
                header_replace(headers, h, &values, "beresp.http")
            }
            other => Err(format!("{other:?} cannot be changed here")),
        }
    }

    fn xkey_purge(&self, keys: &str, soft: bool) -> i64 {
        let Some(proxy) = self.bereq.live_services() else {
            return 0;
        };
        // A refused purge (too many keys) is logged where it is refused;
        // as in Varnish, it purged nothing.
        proxy
            .purge_keys(None, keys, soft)
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}
