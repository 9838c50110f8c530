//! Header removals a subroutine makes before anything in it could see the
//! header: `unset resp.http.X-Varnish;`, `unset resp.http.Server;` at the
//! top of `vcl_deliver`, as most production policies have.
//!
//! Such a removal has the effect of the header never having been there, so
//! a host that knows the list can leave those headers out of the response
//! it builds (the stored object's `X-Url`, its own `X-Varnish` and `Via`)
//! and run the subroutine without the removals: the same response for less
//! work on every delivery. The list is found when the policy is compiled,
//! conservatively: a removal counts only when it is a statement of the
//! subroutine's body itself (not inside an `if`), and nothing before it
//! reads or writes that header, leaves the subroutine (`return`), calls a
//! subroutine or a function (which might read any header), or could do so
//! inside an `if`. The first statement of that kind ends the search.

use crate::ir::{Expr, Replacement, Stmt};
use crate::vars::{Header, Var};

/// A subroutine's early removals and its body without them.
#[derive(Debug, Clone)]
pub(crate) struct EarlyUnsets {
    /// The headers removed, in the body's order, each once.
    pub(crate) headers: Vec<Header>,
    /// The body without those `unset` statements.
    pub(crate) body: Vec<Stmt>,
}

/// `vcl_deliver`'s early removals in `body`, of the headers `allowed` lets
/// be removed early (a host may read some while it makes the response:
/// those stay in it, and their `unset` runs where it stands); `None` when
/// there are none.
pub(crate) fn in_deliver(body: &[Stmt], allowed: &dyn Fn(&Header) -> bool) -> Option<EarlyUnsets> {
    let mut seen = Seen { names: Vec::new() };
    let mut early = Vec::new();
    let mut headers = Vec::new();
    for (i, stmt) in body.iter().enumerate() {
        if let Stmt::Unset(var) = stmt {
            if let Some(h) = resp_header(var) {
                if !seen.has(h) && allowed(h) {
                    early.push(i);
                    headers.push(h.clone());
                }
                seen.add(h);
            }
            continue;
        }
        if !seen.stmt(stmt) {
            break;
        }
    }
    if early.is_empty() {
        return None;
    }
    let body = body
        .iter()
        .enumerate()
        .filter(|(i, _)| !early.contains(i))
        .map(|(_, s)| s.clone())
        .collect();
    Some(EarlyUnsets { headers, body })
}

/// The header of a `resp.http.*` variable.
fn resp_header(var: &Var) -> Option<&Header> {
    match var {
        Var::RespHttp(h) => Some(h),
        _ => None,
    }
}

/// The response headers something before has read or written.
struct Seen<'a> {
    names: Vec<&'a str>,
}

impl<'a> Seen<'a> {
    fn has(&self, h: &Header) -> bool {
        self.names.contains(&h.name())
    }

    fn add(&mut self, h: &'a Header) {
        if !self.has(h) {
            self.names.push(h.name());
        }
    }

    fn var(&mut self, var: &'a Var) {
        if let Some(h) = resp_header(var) {
            self.add(h);
        }
    }

    /// Notes what `stmt` reads and writes; `false` when it may leave the
    /// subroutine or do what cannot be followed (a call).
    fn stmt(&mut self, stmt: &'a Stmt) -> bool {
        match stmt {
            Stmt::Set { var, value, .. } => {
                self.var(var);
                self.expr(value)
            }
            Stmt::Unset(var) | Stmt::SetText { var, .. } => {
                self.var(var);
                true
            }
            Stmt::If {
                branches,
                otherwise,
                ..
            } => {
                branches
                    .iter()
                    .all(|(cond, body)| self.expr(cond) && body.iter().all(|s| self.stmt(s)))
                    && otherwise.iter().all(|s| self.stmt(s))
            }
            Stmt::HashData(e, _) | Stmt::Synthetic(e, _) => self.expr(e),
            Stmt::Return { .. } | Stmt::Call(_) | Stmt::Builtin(_) | Stmt::Effect { .. } => false,
        }
    }

    /// Notes the headers `e` reads; `false` when it calls a function.
    fn expr(&mut self, e: &'a Expr) -> bool {
        match e {
            Expr::Var(var) | Expr::VarIsText { var, .. } | Expr::VarAmong { var, .. } => {
                self.var(var);
                true
            }
            Expr::Str(_)
            | Expr::Int(_)
            | Expr::Dur(_)
            | Expr::Real(_)
            | Expr::Bytes(_)
            | Expr::Bool(_)
            | Expr::ClientIp
            | Expr::Now
            | Expr::IpLit(_) => true,
            Expr::IntToReal(inner)
            | Expr::ToStr(inner, _)
            | Expr::Neg(inner)
            | Expr::Defined(inner)
            | Expr::Not(inner)
            | Expr::ShardKey(inner)
            | Expr::Regex { subject: inner, .. }
            | Expr::Acl { subject: inner, .. } => self.expr(inner),
            Expr::Concat(parts) => parts.iter().all(|(p, _)| self.expr(p)),
            Expr::Arith(first, rest) => self.expr(first) && rest.iter().all(|(_, e)| self.expr(e)),
            Expr::Mixed { lhs, rhs, .. } | Expr::Cmp { lhs, rhs, .. } => {
                self.expr(lhs) && self.expr(rhs)
            }
            Expr::And(items) | Expr::Or(items) => items.iter().all(|i| self.expr(i)),
            Expr::Regsub { subject, sub, .. } => {
                self.expr(subject)
                    && match sub {
                        Replacement::Fixed(_) => true,
                        Replacement::Dynamic(e) => self.expr(e),
                    }
            }
            // The host answers these; they might read any header.
            Expr::Call(_) | Expr::Director { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{compile, Sub};

    /// The names `vcl_deliver` removes early in a policy with this body.
    fn early(deliver: &str) -> Vec<String> {
        let src = format!(
            "vcl 4.1;\nbackend b {{ .host = \"127.0.0.1\"; }}\nacl office {{ \"10.0.0.1\"; }}\n\
             sub vcl_deliver {{\n{deliver}\n}}\n"
        );
        let program = match compile(&src, "t.vcl") {
            Ok(p) => p,
            Err(e) => panic!("{src}: {e:?}"),
        };
        program
            .early_unsets(Sub::Deliver)
            .iter()
            .map(|h| h.name().to_string())
            .collect()
    }

    #[test]
    fn removals_at_the_top_after_what_cannot_see_them() {
        let deliver = r#"
            if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
            if (client.ip ~ office) { set resp.http.X-Cache-Url = req.url; } else { unset resp.http.X-Cache-Tags; }
            unset resp.http.X-Url;
            unset resp.http.x-host;
            unset resp.http.X-Cache-Tags;
            unset req.http.Cookie;
            unset resp.http.Server;
            unset resp.http.X-Url;
            return (deliver);"#;
        assert_eq!(early(deliver), ["x-url", "x-host", "server"]);
    }

    #[test]
    fn a_header_read_or_written_before_is_removed_where_it_is() {
        assert_eq!(
            early("set resp.http.X-Seen = resp.http.X-Url; unset resp.http.X-Url; unset resp.http.Via;"),
            ["via"]
        );
        assert_eq!(
            early("if (resp.http.Via ~ \"x\") { set resp.status = 200; } unset resp.http.Via; unset resp.http.Age;"),
            ["age"]
        );
        assert_eq!(
            early("set resp.http.Via = \"1.1 me\"; unset resp.http.Via; unset resp.http.Age;"),
            ["age"]
        );
    }

    #[test]
    fn every_way_of_reading_a_header_counts() {
        for before in [
            // A computed value set into it.
            r#"set resp.http.Via = "p " + req.url;"#,
            // Compared with a text, or with several.
            r#"if (resp.http.Via == "x") { set resp.status = 200; }"#,
            r#"if (resp.http.Via == "a" || resp.http.Via == "b") { set resp.status = 200; }"#,
            // Part of a concatenation, either side of a comparison, a
            // computed replacement.
            r#"set resp.http.A = "x" + resp.http.Via;"#,
            r#"if (req.url == resp.http.Via) { set resp.status = 200; }"#,
            r#"set resp.http.A = regsub(req.url, "a", resp.http.Via);"#,
            // Tested for presence, matched.
            r#"if (resp.http.Via) { set resp.status = 200; }"#,
            r#"if (resp.http.Via ~ "x") { set resp.status = 200; }"#,
            // Read in a branch not taken.
            r#"if (req.url == "/") { set resp.http.A = resp.http.Via; }"#,
        ] {
            assert_eq!(
                early(&format!(
                    "{before} unset resp.http.Via; unset resp.http.Age;"
                )),
                ["age"],
                "{before}"
            );
        }
    }

    #[test]
    fn a_call_of_a_subroutine_ends_the_search() {
        let src = "vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }\n\
                   sub mine { set resp.http.A = resp.http.Via; }\n\
                   sub vcl_deliver { unset resp.http.Age; call mine; unset resp.http.Via; }\n";
        let program = compile(src, "t.vcl").expect("compiles");
        let names: Vec<&str> = program
            .early_unsets(Sub::Deliver)
            .iter()
            .map(|h| h.name())
            .collect();
        assert_eq!(names, ["age"]);
    }

    #[test]
    fn the_host_keeps_the_headers_it_reads() {
        let src = "vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }\n\
                   sub vcl_deliver { unset resp.http.Server; unset resp.http.Content-Type; unset resp.http.Via; }\n";
        let mut program = compile(src, "t.vcl").expect("compiles");
        program.limit_early_unsets(|h| h.name() != "content-type");
        let names: Vec<&str> = program
            .early_unsets(Sub::Deliver)
            .iter()
            .map(|h| h.name())
            .collect();
        assert_eq!(names, ["server", "via"]);
    }

    #[test]
    fn nothing_after_a_way_out_or_a_call() {
        assert!(
            early("if (req.url == \"/\") { return (deliver); } unset resp.http.Via;").is_empty()
        );
        assert!(early("std.log(\"x\"); unset resp.http.Via;").is_empty());
        assert!(early("set resp.http.A = std.tolower(req.url); unset resp.http.Via;").is_empty());
        assert!(early("return (deliver); unset resp.http.Via;").is_empty());
        assert_eq!(
            early("unset resp.http.Age; if (req.url == \"/\") { return (restart); } unset resp.http.Via;"),
            ["age"]
        );
    }
}
