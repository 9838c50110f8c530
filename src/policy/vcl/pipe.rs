//! `vcl_pipe`'s view: the client request (`req.*`, as in the client
//! subroutines) and the head going to the backend (`bereq.http.*`,
//! `bereq.url`).

use http::HeaderMap;
use std::borrow::Cow;
use std::net::IpAddr;
use vcl_lite::{Context, Value, Var};

use super::client::ClientView;
use super::values::{header_all, header_get, header_replace, header_set, header_unset};

/// What `vcl_pipe` reads and writes.
pub(super) struct PipeView<'a> {
    pub(super) client: ClientView<'a>,
    /// The backend request's headers.
    pub(super) bereq: &'a mut HeaderMap,
    /// The backend request's target (the client's until the policy sets it).
    pub(super) url: &'a mut String,
}

impl Context for PipeView<'_> {
    /// Every text variable `get` answers is lent (the backend request's
    /// headers, method and URL; the client's through its view).
    fn lends_text(&self) -> bool {
        true
    }

    fn get(&self, var: &Var) -> Option<Value<'_>> {
        match var {
            Var::BereqHttp(h) => header_get(self.bereq, h),
            // A pipe sends the request line as the client sent it.
            Var::BereqMethod => Some(Value::Str(Cow::Borrowed(self.client.req.method.as_str()))),
            Var::BereqUrl => Some(Value::Str(Cow::Borrowed(self.url.as_str()))),
            _ => self.client.get(var),
        }
    }

    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        match var {
            Var::BereqHttp(h) => header_set(self.bereq, h, value, "bereq.http"),
            Var::BereqUrl => {
                *self.url = super::values::request_target(value, "bereq.url")?;
                Ok(())
            }
            _ => self.client.set(var, value),
        }
    }

    fn unset(&mut self, var: &Var) {
        match var {
            Var::BereqHttp(h) => {
                header_unset(self.bereq, h);
            }
            _ => self.client.unset(var),
        }
    }

    fn client_ip(&self) -> IpAddr {
        self.client.client_ip()
    }

    fn hash_data(&mut self, _: &str) {}

    fn synthetic(&mut self, _: &str) {}

    // The rest as the client subroutines have them.
    fn now(&self) -> f64 {
        self.client.now()
    }

    fn ban(&self, expr: &str) -> Result<(), String> {
        self.client.ban(expr)
    }

    fn log(&mut self, priority: Option<i64>, message: &str) {
        self.client.log(priority, message);
    }

    fn healthy(&self, backend: &str) -> bool {
        self.client.healthy(backend)
    }

    fn collect(&mut self, header: &Var, separator: &str) {
        self.client.collect(header, separator);
    }

    fn rollback(&mut self, part: vcl_lite::HttpPart) -> Result<(), String> {
        self.client.rollback(part)
    }

    fn cache_req_body(&self, max_bytes: i64) -> bool {
        self.client.cache_req_body(max_bytes)
    }

    fn port(&self, var: &Var) -> Option<u16> {
        self.client.port(var)
    }

    fn task_state(&self) -> Option<&vcl_lite::TaskState> {
        self.client.task_state()
    }

    fn task_state_mut(&mut self) -> Option<&mut vcl_lite::TaskState> {
        self.client.task_state_mut()
    }

    fn header_values(&self, var: &Var) -> Vec<String> {
        match var {
            Var::BereqHttp(h) => header_all(self.bereq, h),
            _ => self.client.header_values(var),
        }
    }

    fn set_header_values(&mut self, var: &Var, values: Vec<String>) -> Result<(), String> {
        match var {
            Var::BereqHttp(h) => header_replace(self.bereq, h, &values, "bereq.http"),
            _ => self.client.set_header_values(var, values),
        }
    }

    fn xkey_purge(&self, keys: &str, soft: bool) -> i64 {
        self.client.xkey_purge(keys, soft)
    }

    fn proxy(&self, field: vcl_lite::ProxyField) -> Option<Value<'_>> {
        self.client.proxy(field)
    }
}
