//! The vmods built in besides std. `cookie` and `var` run here, on a
//! [`TaskState`] the host keeps per task (Varnish's `PRIV_TASK`: one for a
//! client request through its restarts, one for each backend fetch);
//! `header` reads and writes every value of a header through the host;
//! `xkey`, `purge` and `proxy` are answered by the host ([`crate::Context`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::pattern::Pattern;

/// The vmods vcl-lite has built in; `import` of any other is an error.
pub(crate) const VMODS: &[&str] = &[
    "std",
    "directors",
    "dynamic",
    "cookie",
    "header",
    "var",
    "xkey",
    "purge",
    "proxy",
];

/// Most cookies one task's jar holds (`cookie.parse` and `cookie.set`
/// beyond it are ignored): a request's headers are bounded anyway, this
/// bounds what `cookie.set` can add.
pub const MAX_COOKIES: usize = 256;

/// Most variables of vmod var one task holds, and most global ones
/// (`var.global_set`) one policy holds; more are ignored.
pub const MAX_VARIABLES: usize = 256;

/// What a task's vmods keep between its subroutines: vmod cookie's jar and
/// vmod var's variables. The host owns one per task and hands it out with
/// [`crate::Context::task_state`].
#[derive(Debug, Default, Clone)]
pub struct TaskState {
    /// Name, value; in the order first seen.
    cookies: Vec<(String, String)>,
    /// vmod var's task variables, typed as they were set.
    vars: HashMap<String, Stored>,
}

/// A value of vmod var, with the type it was set with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stored {
    Str(String),
    Int(i64),
    Real(f64),
    Duration(f64),
    Ip(IpAddr),
}

impl TaskState {
    /// `cookie.parse`: the jar becomes the cookies of a `Cookie` header
    /// (`a=1; b=2`), read as Varnish 7.1 reads it: leading blanks skipped,
    /// the name runs to the next `=`, the value to the next `;`; an empty
    /// name or value is skipped; a name seen again replaces the value,
    /// keeping the first place. An empty header changes nothing.
    pub(crate) fn cookie_parse(&mut self, header: &str) {
        if header.is_empty() {
            return;
        }
        self.cookies.clear();
        let mut rest = header;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some((name, after)) = rest.split_once('=') else {
                break;
            };
            let (value, next) = after.split_once(';').unwrap_or((after, ""));
            self.cookie_set(name, value);
            rest = next;
        }
    }

    /// `cookie.clean`.
    pub(crate) fn cookie_clean(&mut self) {
        self.cookies.clear();
    }

    /// `cookie.set`: replaces the value of `name`, or adds it at the end;
    /// an empty name or value is ignored (as Varnish does).
    pub(crate) fn cookie_set(&mut self, name: &str, value: &str) {
        if name.is_empty() || value.is_empty() {
            return;
        }
        if let Some(c) = self.cookies.iter_mut().find(|(n, _)| n == name) {
            c.1 = value.to_string();
        } else if self.cookies.len() < MAX_COOKIES {
            self.cookies.push((name.to_string(), value.to_string()));
        }
    }

    /// `cookie.get`: the value of `name`.
    pub(crate) fn cookie_get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `cookie.get_re`: the value of the first cookie whose name matches.
    pub(crate) fn cookie_get_re(&self, re: &Pattern) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| re.is_match(n))
            .map(|(_, v)| v.as_str())
    }

    /// `cookie.delete`.
    pub(crate) fn cookie_delete(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| n != name);
    }

    /// `cookie.filter` (`keep`: false) and `cookie.keep` (true): the
    /// cookies named in the comma-separated `names` are removed, or are the
    /// only ones kept.
    pub(crate) fn cookie_filter(&mut self, names: &str, keep: bool) {
        let listed: Vec<&str> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        self.cookies
            .retain(|(n, _)| listed.contains(&n.as_str()) == keep);
    }

    /// `cookie.filter_re` and `cookie.keep_re`: as [`Self::cookie_filter`],
    /// by a regular expression on the names.
    pub(crate) fn cookie_filter_re(&mut self, re: &Pattern, keep: bool) {
        self.cookies.retain(|(n, _)| re.is_match(n) == keep);
    }

    /// `cookie.get_string`: the jar as a `Cookie` header, as Varnish 7.1
    /// writes it: `a=1; b=2;` (empty for an empty jar).
    pub(crate) fn cookie_string(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.cookies {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            out.push(';');
        }
        out
    }

    /// `var.set`, `var.set_int`, …: the variable now holds `value`.
    pub(crate) fn var_set(&mut self, name: &str, value: Stored) {
        if self.vars.len() < MAX_VARIABLES || self.vars.contains_key(name) {
            self.vars.insert(name.to_string(), value);
        }
    }

    /// `var.get`, …: the variable, if it was set.
    pub(crate) fn var_get(&self, name: &str) -> Option<&Stored> {
        self.vars.get(name)
    }

    /// `var.clear`: every task variable is forgotten.
    pub(crate) fn var_clear(&mut self) {
        self.vars.clear();
    }
}

/// vmod var's global variables (`var.global_set`): one table per compiled
/// policy, shared by every request running it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Globals(Arc<Mutex<HashMap<String, String>>>);

impl Globals {
    pub(crate) fn set(&self, name: &str, value: String) {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is still whole.
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_VARIABLES || map.contains_key(name) {
            map.insert(name.to_string(), value);
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).cloned()
    }
}

/// What `purge.soft(ttl, grace, keep)` asks: the object's new TTL, and
/// its grace and keep (`None`: unchanged, Varnish's negative default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftPurge {
    /// Seconds of freshness left (0: stale now).
    pub ttl: f64,
    /// New grace, in seconds.
    pub grace: Option<f64>,
    /// New keep, in seconds.
    pub keep: Option<f64>,
}

/// The functions of vmod proxy: what the PROXY protocol v2 header's TLVs
/// said about the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyField {
    /// `proxy.alpn()`: the protocol negotiated by ALPN (TLV 0x01).
    Alpn,
    /// `proxy.authority()`: the SNI host name (TLV 0x02).
    Authority,
    /// `proxy.is_ssl()`: the client connected over TLS (TLV 0x20, client
    /// bit 0x01).
    IsSsl,
    /// `proxy.client_has_cert_sess()`: a client certificate was presented
    /// in the TLS session (bit 0x04).
    ClientHasCertSess,
    /// `proxy.client_has_cert_conn()`: a client certificate was presented
    /// on this connection (bit 0x02).
    ClientHasCertConn,
    /// `proxy.ssl_verify_result()`: the certificate verification result
    /// (0: verified).
    SslVerifyResult,
    /// `proxy.ssl_version()`: the TLS version (sub-TLV 0x21).
    SslVersion,
    /// `proxy.client_cert_cn()`: the client certificate's common name
    /// (sub-TLV 0x22).
    ClientCertCn,
    /// `proxy.ssl_cipher()`: the cipher (sub-TLV 0x23).
    SslCipher,
    /// `proxy.cert_sign()`: the certificate's signature algorithm (sub-TLV
    /// 0x24).
    CertSign,
    /// `proxy.cert_key()`: the certificate's key algorithm (sub-TLV 0x25).
    CertKey,
}

/// A `header.*` regular expression against one header value (leading
/// white space ignored, as Varnish does).
pub(crate) fn header_matches(re: &Pattern, value: &str) -> bool {
    re.is_match(value.trim_start_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_jar() {
        let mut t = TaskState::default();
        // As varnishd 7.1 reads and writes them (checked with varnishtest).
        t.cookie_parse("=x; a=1;b=2;  c = 3 ;d;=x;\tt=4; a=5; e=f=g; empty=");
        assert_eq!(t.cookie_string(), "a=5; b=2; c = 3 ; d;=x; t=4; e=f=g;");
        assert_eq!(t.cookie_get("e"), Some("f=g"));
        assert_eq!(t.cookie_get("c"), None);
        assert_eq!(t.cookie_get("empty"), None);
        t.cookie_parse("");
        assert_eq!(
            t.cookie_get("a"),
            Some("5"),
            "an empty header changes nothing"
        );
        t.cookie_parse("a=1; b=2; c=3; novalue");
        t.cookie_filter("b, c", false);
        assert_eq!(t.cookie_string(), "a=1;");
        t.cookie_set("z", "9");
        t.cookie_set("a", "5");
        t.cookie_set("e", "");
        t.cookie_set("d", "4");
        assert_eq!(t.cookie_string(), "a=5; z=9; d=4;");
        t.cookie_keep_names("a, z");
        assert_eq!(t.cookie_string(), "a=5; z=9;");
        let re = Pattern::new("^z").unwrap();
        assert_eq!(t.cookie_get_re(&re), Some("9"));
        t.cookie_filter_re(&re, false);
        assert_eq!(t.cookie_string(), "a=5;");
        t.cookie_parse("x=1; y=2");
        t.cookie_filter_re(&Pattern::new("^y$").unwrap(), true);
        assert_eq!(t.cookie_string(), "y=2;");
        t.cookie_delete("y");
        assert_eq!(t.cookie_string(), "");
        for i in 0..MAX_COOKIES + 10 {
            t.cookie_set(&format!("c{i}"), "v");
        }
        assert_eq!(t.cookies.len(), MAX_COOKIES);
        t.cookie_clean();
        assert_eq!(t.cookie_string(), "");
    }

    impl TaskState {
        fn cookie_keep_names(&mut self, names: &str) {
            self.cookie_filter(names, true);
        }
    }

    #[test]
    fn variables_are_bounded() {
        let mut t = TaskState::default();
        for i in 0..MAX_VARIABLES + 5 {
            t.var_set(&format!("v{i}"), Stored::Int(1));
        }
        assert_eq!(t.vars.len(), MAX_VARIABLES);
        t.var_set("v0", Stored::Int(2));
        assert_eq!(t.var_get("v0"), Some(&Stored::Int(2)));
        t.var_clear();
        assert_eq!(t.var_get("v0"), None);
        let g = Globals::default();
        g.set("a", "1".into());
        assert_eq!(g.get("a").as_deref(), Some("1"));
        assert_eq!(g.clone().get("a").as_deref(), Some("1"));
    }
}
