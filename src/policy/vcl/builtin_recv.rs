//! Varnish's built-in `vcl_recv` (the `vcl_recv` of `vcl-lite/builtin.vcl`)
//! written in Rust: every request whose policy's `vcl_recv` ends without
//! `return` runs it, so it is not interpreted. Interpreted it cost ~800
//! instructions a hit more (a regex on `Host`, eight method comparisons,
//! two header reads through the `Context`).
//!
//! builtin.vcl stays the definition: `call vcl_builtin_recv;` in a policy
//! runs the interpreted text, and the test below runs both on a grid of
//! requests and wants the same action and the same request after. A change
//! to builtin.vcl's `vcl_recv` must be made here as well.

use http::header::{AUTHORIZATION, COOKIE};
use std::borrow::Cow;
use std::sync::LazyLock;
use vcl_lite::{Action, Context, Header, Value, Var};

use super::client::{req_get, ClientView};
use super::values::header_text;

/// `req.http.host`, for the rare request whose `Host` has capitals.
static HOST_VAR: LazyLock<Var> = LazyLock::new(|| Var::ReqHttp(Header::new("host")));

/// The built-in `vcl_recv`: `Some` when one of its checks returns.
pub(super) fn run(view: &mut ClientView<'_>) -> Option<Action> {
    // `if (req.http.host ~ "[A-Z]") { set req.http.host = std.tolower(req.http.host); }`
    // (`req.http.host` reads the request's host key, normalised at intake:
    // capitals are rare here.)
    let host = req_get(view.req, &HOST_VAR);
    if let Some(lower) = host
        .as_ref()
        .and_then(Value::as_str)
        .filter(|h| h.bytes().any(|b| b.is_ascii_uppercase()))
        .map(str::to_ascii_lowercase)
    {
        // Through the view, which also re-keys the request's host. A host
        // key is made from a valid field, so this does not fail; if it
        // did, the interpreted text's run-time error is a 503 as `fail`.
        if let Err(e) = view.set(&HOST_VAR, Value::Str(Cow::Owned(lower))) {
            tracing::warn!(error = %e, "built-in vcl_recv: lower-casing Host failed");
            return Some(Action::Fail);
        }
    }
    let req = &*view.req;
    match req.method.as_str() {
        // HTTP/2's connection preface sent as a request.
        "PRI" => {
            return Some(Action::Synth {
                status: 405,
                reason: None,
            })
        }
        "GET" | "HEAD" => {}
        "PUT" | "POST" | "TRACE" | "OPTIONS" | "DELETE" | "PATCH" => return Some(Action::Pass),
        _ => return Some(Action::Pipe),
    }
    // `if (req.http.Authorization)`, `if (req.http.Cookie)`: read as the
    // interpreter reads them.
    let text = |name| header_text(&req.headers, &name).is_some();
    if text(AUTHORIZATION) || text(COOKIE) {
        return Some(Action::Pass);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Clock, Live, NoBackends, Task};
    use crate::policy::vcl::VclPolicy;
    use http::{HeaderMap, HeaderValue, Method, Version};
    use std::sync::Arc;
    use vcl_lite::Sub;

    /// What one run left: its action, the request's fields, its host key.
    type After = (Option<Action>, Vec<(String, Vec<u8>)>, String);

    /// Runs the built-in vcl_recv, natively or interpreted, on a request
    /// whose host key is `host` (empty: none, as after `unset
    /// req.http.host`).
    fn after(
        policy: &VclPolicy,
        live: &Arc<Live>,
        method: &Method,
        host: &str,
        fields: &[(&str, &[u8])],
        native: bool,
    ) -> After {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name, HeaderValue::from_bytes(value).unwrap());
        }
        let client = "127.0.0.1:5000".parse().unwrap();
        let mut task = Task::internal(
            live.clone(),
            host.to_string(),
            "/a".into(),
            headers,
            client,
            Version::HTTP_11,
        );
        task.method = method.clone();
        let mut view = ClientView::of(&mut task, &policy.shared);
        let action = if native {
            run(&mut view)
        } else {
            let builtin = vcl_lite::builtin_program().expect("builtin.vcl compiles");
            builtin
                .run(Sub::Recv, &mut view)
                .expect("builtin vcl_recv runs")
        };
        let fields = task
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        (action, fields, task.host)
    }

    #[test]
    fn the_rust_builtin_recv_answers_as_the_interpreted_one() {
        let policy = VclPolicy::compile("vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }", "t.vcl")
            .expect("compiles");
        let live = Arc::new(
            Live::new(
                Arc::new(crate::config::Config::default()),
                Arc::new(crate::policy::Builtin),
                Clock::default(),
                Arc::new(NoBackends),
            )
            .expect("live"),
        );
        let methods = [
            "GET", "HEAD", "POST", "PUT", "TRACE", "OPTIONS", "DELETE", "PATCH", "PRI", "PURGE",
            "BAN", "get", "CONNECT",
        ];
        // (host key, Host field): as intake leaves them (the field in the
        // key's form), and as only a policy can (no key; a field with
        // capitals, none, or not text).
        let hosts: [(&str, Option<&[u8]>); 8] = [
            ("a.example", Some(b"a.example")),
            ("a.example:8080", Some(b"a.example:8080")),
            // After `set req.http.host = "A.Example:80"`: the key is read.
            ("a.example", Some(b"A.Example:80")),
            ("", None),
            ("", Some(b"A.example")),
            ("", Some(b"WWW.A.EXAMPLE:8080")),
            ("", Some(b"")),
            ("", Some(b"b\xffC")),
        ];
        // One value each: absent, empty, text, not text; two: the first
        // not text and the second text, and the other way round.
        let credentials: [&[&[u8]]; 6] = [
            &[],
            &[b""],
            &[b"Basic YTpi"],
            &[b"\xff"],
            &[b"\xff", b"a"],
            &[b"a", b"\xff"],
        ];
        let mut passed = 0;
        for method in methods {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for (key, host) in hosts {
                for auth in credentials {
                    for cookie in credentials {
                        let mut fields = Vec::new();
                        fields.extend(host.map(|h| ("host", h)));
                        fields.extend(auth.iter().map(|a| ("authorization", *a)));
                        fields.extend(cookie.iter().map(|c| ("cookie", *c)));
                        fields.push(("x-other", b"1"));
                        let want = after(&policy, &live, &method, key, &fields, false);
                        let got = after(&policy, &live, &method, key, &fields, true);
                        assert_eq!(got, want, "{method} {fields:?}");
                        passed += usize::from(want.0 == Some(Action::Pass));
                    }
                }
            }
        }
        // The grid reaches every answer: some passes, and (below) the rest.
        assert!(passed > 0);
        let lowered = after(
            &policy,
            &live,
            &Method::GET,
            "",
            &[("host", b"A.Example:8080")],
            true,
        );
        assert_eq!(lowered.0, None);
        assert_eq!(
            lowered.1,
            [("host".to_string(), b"a.example:8080".to_vec())]
        );
        assert_eq!(lowered.2, "a.example:8080");
        // A bare request of this method, natively: its action.
        let bare = |method: &str| {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            after(&policy, &live, &method, "", &[], true).0
        };
        assert_eq!(
            bare("PRI"),
            Some(Action::Synth {
                status: 405,
                reason: None
            })
        );
        assert_eq!(bare("PURGE"), Some(Action::Pipe));
    }
}
