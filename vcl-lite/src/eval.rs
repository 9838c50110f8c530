//! Running a compiled policy against a host [`Context`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};

use crate::pattern::Pattern;

use crate::acl::CompiledAcl;
use crate::action::Action;
use crate::ast::{AddOp, CmpOp};
use crate::decl::{Backend, Probe};
use crate::error::{Location, RuntimeError, SourceMap};
use crate::ir::{ActionIr, Expr, Piece, Replacement, Stmt};
use crate::lexer::unit_seconds;
use crate::vars::{Sub, Type, Var};

/// The deepest chain of `call`s (checked when compiling, and again at run time).
pub const MAX_CALL_DEPTH: usize = 64;

/// A value read from or written to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// STRING (header values, URLs, …).
    Str(Cow<'a, str>),
    /// INT
    Int(i64),
    /// DURATION, in seconds (may be negative).
    Duration(f64),
    /// BOOL
    Bool(bool),
    /// IP
    Ip(IpAddr),
}

impl<'a> Value<'a> {
    /// Its type.
    pub fn ty(&self) -> Type {
        match self {
            Value::Str(_) => Type::String,
            Value::Int(_) => Type::Int,
            Value::Duration(_) => Type::Duration,
            Value::Bool(_) => Type::Bool,
            Value::Ip(_) => Type::Ip,
        }
    }

    /// The same value, owning its text.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Int(i) => Value::Int(i),
            Value::Duration(d) => Value::Duration(d),
            Value::Bool(b) => Value::Bool(b),
            Value::Ip(ip) => Value::Ip(ip),
        }
    }

    /// The text of a STRING value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The STRING form of a value, as VCL converts it (durations with three
/// decimals: `10.000`).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Duration(d) => write!(f, "{d:.3}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What the host gives a running policy. lacquer implements it over its
/// request, backend request, response and object.
pub trait Context {
    /// The value of a variable; `None` when it is not set (an absent header).
    /// The policy only asks for variables readable in the running
    /// subroutine. A value of another type than the variable's is converted
    /// where possible (to STRING), otherwise taken as unset.
    fn get(&self, var: &Var) -> Option<Value<'_>>;

    /// Sets a variable (always with a value of the variable's type). An
    /// `Err` (for instance a header value the host refuses) fails the
    /// subroutine with a [`RuntimeError`].
    fn set(&mut self, var: &Var, value: Value<'static>) -> Result<(), String>;

    /// Removes a header (`unset req.http.Cookie;`). Only header variables
    /// are ever unset.
    fn unset(&mut self, var: &Var);

    /// `client.ip`.
    fn client_ip(&self) -> IpAddr;

    /// `hash_data(...)` in `vcl_hash`: one part of the cache key.
    fn hash_data(&mut self, data: &str);

    /// `synthetic(...)` in `vcl_synth` / `vcl_backend_error`: appends to the
    /// synthetic body.
    fn synthetic(&mut self, body: &str);
}

/// A compiled policy: checked, with names resolved and regular expressions
/// compiled. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) file: String,
    /// Where each statement's text comes from (files of `include`s).
    pub(crate) map: SourceMap,
    pub(crate) subs: Vec<Option<Vec<Stmt>>>,
    pub(crate) customs: Vec<Vec<Stmt>>,
    pub(crate) acls: Vec<CompiledAcl>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) probes: Vec<Probe>,
}

enum Flow {
    Next,
    Return(Action),
}

impl Program {
    /// Whether the policy defines `sub`.
    pub fn defines(&self, sub: Sub) -> bool {
        self.subs.get(sub.index()).is_some_and(Option::is_some)
    }

    /// The `backend` declarations, in order (in Varnish the first is the
    /// default backend). vcl-lite only checks them; the host decides what
    /// to do with them.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The named `probe` declarations, in order (a backend's own probe,
    /// named or inline, is in [`Backend::probe`]).
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// The file name given to [`crate::compile`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Runs one built-in subroutine. `Ok(None)`: the subroutine is not
    /// defined or ended without `return`; the host goes on with its built-in
    /// behaviour, as Varnish appends its built-in VCL.
    pub fn run(&self, sub: Sub, ctx: &mut dyn Context) -> Result<Option<Action>, RuntimeError> {
        let Some(Some(body)) = self.subs.get(sub.index()) else {
            return Ok(None);
        };
        let mut scratch = String::new();
        match self.stmts(body, ctx, 0, &mut scratch)? {
            Flow::Next => Ok(None),
            Flow::Return(action) => Ok(Some(action)),
        }
    }

    /// Runs `vcl_init`, as Varnish does once when a VCL is loaded: `Err`
    /// when it fails (`return (fail)` or a run-time error): the policy
    /// must not be used. No variable is available in vcl_init, so no host
    /// context is needed.
    pub fn init(&self) -> Result<(), RuntimeError> {
        struct NoContext;
        impl Context for NoContext {
            fn get(&self, _: &Var) -> Option<Value<'_>> {
                None
            }
            fn set(&mut self, _: &Var, _: Value<'static>) -> Result<(), String> {
                Err("no variables in vcl_init".to_string())
            }
            fn unset(&mut self, _: &Var) {}
            fn client_ip(&self) -> IpAddr {
                IpAddr::from([0, 0, 0, 0])
            }
            fn hash_data(&mut self, _: &str) {}
            fn synthetic(&mut self, _: &str) {}
        }
        match self.run(Sub::Init, &mut NoContext)? {
            Some(Action::Fail) => Err(RuntimeError {
                message: "vcl_init returned fail".to_string(),
                file: self.file.clone(),
                location: Location::default(),
            }),
            _ => Ok(()),
        }
    }

    /// `call vcl_builtin_…;`: that hook's body in `builtin.vcl`. Kept out
    /// of `stmts` so its frame stays small (deep call chains run on small
    /// stacks).
    #[inline(never)]
    fn builtin(
        sub: Sub,
        ctx: &mut dyn Context,
        depth: usize,
        scratch: &mut String,
    ) -> Result<Flow, RuntimeError> {
        let Some(program) = crate::builtin_program() else {
            return Ok(Flow::Next);
        };
        match program.subs.get(sub.index()).and_then(Option::as_ref) {
            Some(body) => program.stmts(body, ctx, depth + 1, scratch),
            None => Ok(Flow::Next),
        }
    }

    fn runtime_error(&self, message: String, at: usize) -> RuntimeError {
        let (file, line, column) = self.map.locate(at);
        RuntimeError {
            message,
            file: file.to_string(),
            location: Location {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
            },
        }
    }

    fn stmts(
        &self,
        stmts: &[Stmt],
        ctx: &mut dyn Context,
        depth: usize,
        scratch: &mut String,
    ) -> Result<Flow, RuntimeError> {
        for stmt in stmts {
            match stmt {
                Stmt::If {
                    branches,
                    otherwise,
                } => {
                    let body = branches
                        .iter()
                        .find(|(cond, _)| self.boolean(cond, &*ctx))
                        .map_or(otherwise, |(_, body)| body);
                    if let Flow::Return(a) = self.stmts(body, ctx, depth, scratch)? {
                        return Ok(Flow::Return(a));
                    }
                }
                Stmt::Set { var, ty, value, at } => {
                    let value = self.value(value, *ty, &*ctx);
                    ctx.set(var, value)
                        .map_err(|m| self.runtime_error(m, *at))?;
                }
                Stmt::Unset(var) => ctx.unset(var),
                Stmt::Return { action, at } => {
                    return Ok(Flow::Return(self.action(action, &*ctx, *at)?));
                }
                Stmt::Call(index) => {
                    let body = self.customs.get(*index).map_or(&[][..], Vec::as_slice);
                    if depth >= MAX_CALL_DEPTH {
                        return Err(RuntimeError {
                            message: "call chain too deep".to_string(),
                            file: self.file.clone(),
                            location: Location::default(),
                        });
                    }
                    if let Flow::Return(a) = self.stmts(body, ctx, depth + 1, scratch)? {
                        return Ok(Flow::Return(a));
                    }
                }
                Stmt::Builtin(sub) => {
                    if let Flow::Return(a) = Program::builtin(*sub, ctx, depth, scratch)? {
                        return Ok(Flow::Return(a));
                    }
                }
                Stmt::HashData(e) => {
                    scratch.clear();
                    self.append(e, Type::String, &*ctx, scratch);
                    ctx.hash_data(scratch);
                }
                Stmt::Synthetic(e) => {
                    scratch.clear();
                    self.append(e, Type::String, &*ctx, scratch);
                    ctx.synthetic(scratch);
                }
            }
        }
        Ok(Flow::Next)
    }

    fn status(&self, e: &Expr, ctx: &dyn Context, at: usize) -> Result<u16, RuntimeError> {
        let status = self.int(e, ctx);
        match u16::try_from(status) {
            Ok(s) if (100..=999).contains(&s) => Ok(s),
            _ => Err(self.runtime_error(format!("status {status} is not between 100 and 999"), at)),
        }
    }

    fn action(
        &self,
        action: &ActionIr,
        ctx: &dyn Context,
        at: usize,
    ) -> Result<Action, RuntimeError> {
        let reason = |r: &Option<Expr>| {
            r.as_ref()
                .map(|r| self.string(r, ctx).unwrap_or_default().into_owned())
        };
        Ok(match action {
            ActionIr::Plain(a) => a.clone(),
            ActionIr::Synth { status, reason: r } => Action::Synth {
                status: self.status(status, ctx, at)?,
                reason: reason(r),
            },
            ActionIr::Error { status, reason: r } => Action::Error {
                status: self.status(status, ctx, at)?,
                reason: reason(r),
            },
            ActionIr::PassFor(ttl) => Action::HitForPass {
                ttl: self.dur(ttl, ctx),
            },
        })
    }

    /// An owned value of type `ty` (an unset STRING becomes "").
    fn value(&self, e: &Expr, ty: Type, ctx: &dyn Context) -> Value<'static> {
        match ty {
            Type::String => Value::Str(Cow::Owned(
                self.string(e, ctx).unwrap_or_default().into_owned(),
            )),
            Type::Int => Value::Int(self.int(e, ctx)),
            Type::Duration => Value::Duration(self.dur(e, ctx)),
            Type::Bool => Value::Bool(self.boolean(e, ctx)),
            Type::Ip => Value::Ip(self.ip(e, ctx)),
        }
    }

    /// Appends the STRING form of `e` (of type `ty`) to `out`.
    fn append(&self, e: &Expr, ty: Type, ctx: &dyn Context, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = match ty {
            Type::String => {
                if let Some(s) = self.string(e, ctx) {
                    out.push_str(&s);
                }
                Ok(())
            }
            Type::Int => write!(out, "{}", self.int(e, ctx)),
            Type::Duration => write!(out, "{:.3}", self.dur(e, ctx)),
            Type::Bool => write!(out, "{}", self.boolean(e, ctx)),
            Type::Ip => write!(out, "{}", self.ip(e, ctx)),
        };
    }

    /// A STRING expression; `None` when unset.
    fn string<'a>(&'a self, e: &'a Expr, ctx: &'a dyn Context) -> Option<Cow<'a, str>> {
        match e {
            Expr::Str(s) => Some(Cow::Borrowed(s)),
            Expr::Var(var) => match ctx.get(var)? {
                Value::Str(s) => Some(s),
                other => Some(Cow::Owned(other.to_string())),
            },
            Expr::ToStr(inner, ty) => {
                let mut out = String::new();
                self.append(inner, *ty, ctx, &mut out);
                Some(Cow::Owned(out))
            }
            Expr::Concat(parts) => {
                let mut out = String::new();
                for (part, ty) in parts {
                    self.append(part, *ty, ctx, &mut out);
                }
                Some(Cow::Owned(out))
            }
            Expr::Regsub {
                subject,
                re,
                sub,
                all,
            } => {
                let s = self.string(subject, ctx).unwrap_or_default();
                Some(match sub {
                    Replacement::Fixed(pieces) => regsub(re, s, pieces, *all),
                    Replacement::Dynamic(sub) => {
                        let sub = self.string(sub, ctx).unwrap_or_default();
                        let pieces = crate::ir::parse_replacement(&sub);
                        regsub(re, s, &pieces, *all)
                    }
                })
            }
            Expr::Lower(inner) => {
                let s = self.string(inner, ctx)?;
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    Some(Cow::Owned(s.to_ascii_lowercase()))
                } else {
                    Some(s)
                }
            }
            Expr::Upper(inner) => {
                let s = self.string(inner, ctx)?;
                if s.bytes().any(|b| b.is_ascii_lowercase()) {
                    Some(Cow::Owned(s.to_ascii_uppercase()))
                } else {
                    Some(s)
                }
            }
            _ => None,
        }
    }

    fn int(&self, e: &Expr, ctx: &dyn Context) -> i64 {
        match e {
            Expr::Int(i) => *i,
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Int(i)) => i,
                _ => 0,
            },
            Expr::Arith(first, rest) => rest.iter().fold(self.int(first, ctx), |acc, (op, e)| {
                let v = self.int(e, ctx);
                match op {
                    AddOp::Add => acc.wrapping_add(v),
                    AddOp::Sub => acc.wrapping_sub(v),
                }
            }),
            Expr::Neg(inner) => self.int(inner, ctx).wrapping_neg(),
            Expr::Integer(s, fallback) => self
                .string(s, ctx)
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or_else(|| self.int(fallback, ctx)),
            _ => 0,
        }
    }

    fn dur(&self, e: &Expr, ctx: &dyn Context) -> f64 {
        match e {
            Expr::Dur(d) => *d,
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Duration(d)) => d,
                _ => 0.0,
            },
            Expr::Arith(first, rest) => rest.iter().fold(self.dur(first, ctx), |acc, (op, e)| {
                let v = self.dur(e, ctx);
                match op {
                    AddOp::Add => acc + v,
                    AddOp::Sub => acc - v,
                }
            }),
            Expr::Neg(inner) => -self.dur(inner, ctx),
            Expr::Duration(s, fallback) => self
                .string(s, ctx)
                .and_then(|s| parse_duration(&s))
                .unwrap_or_else(|| self.dur(fallback, ctx)),
            _ => 0.0,
        }
    }

    fn ip(&self, e: &Expr, ctx: &dyn Context) -> IpAddr {
        match e {
            Expr::ClientIp => ctx.client_ip(),
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Ip(ip)) => ip,
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }

    fn boolean(&self, e: &Expr, ctx: &dyn Context) -> bool {
        match e {
            Expr::Bool(b) => *b,
            Expr::Var(var) => matches!(ctx.get(var), Some(Value::Bool(true))),
            Expr::Defined(inner) => self.string(inner, ctx).is_some(),
            Expr::Not(inner) => !self.boolean(inner, ctx),
            Expr::And(items) => items.iter().all(|i| self.boolean(i, ctx)),
            Expr::Or(items) => items.iter().any(|i| self.boolean(i, ctx)),
            Expr::Regex {
                subject,
                re,
                negate,
            } => {
                let s = self.string(subject, ctx);
                re.is_match(s.as_deref().unwrap_or("")) != *negate
            }
            Expr::Acl {
                subject,
                acl,
                negate,
            } => {
                let ip = self.ip(subject, ctx);
                self.acls.get(*acl).is_some_and(|a| a.matches(ip)) != *negate
            }
            Expr::Cmp { op, ty, lhs, rhs } => self.compare(*op, *ty, lhs, rhs, ctx),
            _ => false,
        }
    }

    fn compare(&self, op: CmpOp, ty: Type, lhs: &Expr, rhs: &Expr, ctx: &dyn Context) -> bool {
        use std::cmp::Ordering;
        let ordering: Option<Ordering> = match ty {
            Type::String => {
                // As in Varnish, an unset string equals nothing.
                let equal = match (self.string(lhs, ctx), self.string(rhs, ctx)) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                return match op {
                    CmpOp::Eq => equal,
                    CmpOp::Ne => !equal,
                    _ => false,
                };
            }
            Type::Int => Some(self.int(lhs, ctx).cmp(&self.int(rhs, ctx))),
            Type::Duration => self.dur(lhs, ctx).partial_cmp(&self.dur(rhs, ctx)),
            Type::Bool => Some(self.boolean(lhs, ctx).cmp(&self.boolean(rhs, ctx))),
            Type::Ip => Some(if self.ip(lhs, ctx) == self.ip(rhs, ctx) {
                Ordering::Equal
            } else {
                Ordering::Less
            }),
        };
        let Some(ord) = ordering else {
            return op == CmpOp::Ne;
        };
        match op {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Match | CmpOp::NoMatch => false,
        }
    }
}

/// `regsub` / `regsuball`: the first (or every) match replaced.
fn regsub<'a>(re: &Pattern, s: Cow<'a, str>, pieces: &[Piece], all: bool) -> Cow<'a, str> {
    re.substitute(s, all, |out, group| {
        for piece in pieces {
            match piece {
                Piece::Lit(text) => out.push_str(text),
                Piece::Group(g) => out.push_str(group(*g).unwrap_or("")),
            }
        }
    })
}

/// `std.duration`'s parsing: a number and a unit (`10s`, `1.5m`, `-2h`).
fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|(i, c)| c.is_ascii_alphabetic() && *i > 0)
        .map(|(i, _)| i)?;
    let (number, unit) = s.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let seconds = value * unit_seconds(unit)?;
    seconds.is_finite().then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::Header;
    use std::collections::HashMap;

    /// A minimal host: variables in a map.
    #[derive(Default)]
    struct TestCtx {
        vars: HashMap<Var, Value<'static>>,
        ip: Option<IpAddr>,
        hashed: Vec<String>,
        body: String,
        refuse: bool,
    }

    impl TestCtx {
        fn with(mut self, var: Var, value: Value<'static>) -> TestCtx {
            self.vars.insert(var, value);
            self
        }
        fn header(self, name: &str, value: &str) -> TestCtx {
            self.with(
                Var::ReqHttp(Header::new(name)),
                Value::Str(value.to_string().into()),
            )
        }
        fn url(self, url: &str) -> TestCtx {
            self.with(Var::ReqUrl, Value::Str(url.to_string().into()))
        }
        fn method(self, m: &str) -> TestCtx {
            self.with(Var::ReqMethod, Value::Str(m.to_string().into()))
        }
        fn str(&self, var: &Var) -> Option<&str> {
            self.vars.get(var).and_then(Value::as_str)
        }
        fn req_header(&self, name: &str) -> Option<&str> {
            self.str(&Var::ReqHttp(Header::new(name)))
        }
    }

    impl Context for TestCtx {
        fn get(&self, var: &Var) -> Option<Value<'_>> {
            self.vars.get(var).map(|v| match v {
                Value::Str(s) => Value::Str(Cow::Borrowed(s)),
                other => other.clone(),
            })
        }
        fn set(&mut self, var: &Var, value: Value<'static>) -> Result<(), String> {
            if self.refuse {
                return Err("refused".to_string());
            }
            self.vars.insert(var.clone(), value);
            Ok(())
        }
        fn unset(&mut self, var: &Var) {
            self.vars.remove(var);
        }
        fn client_ip(&self) -> IpAddr {
            self.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        fn hash_data(&mut self, data: &str) {
            self.hashed.push(data.to_string());
        }
        fn synthetic(&mut self, body: &str) {
            self.body.push_str(body);
        }
    }

    fn program(src: &str) -> Program {
        match crate::compile(src, "t.vcl") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn recv(p: &Program, ctx: &mut TestCtx) -> Option<Action> {
        p.run(Sub::Recv, ctx).unwrap()
    }

    #[test]
    fn program_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Program>();
        shareable::<crate::Error>();
        shareable::<RuntimeError>();
    }

    #[test]
    fn default_policy() {
        let p = program(crate::DEFAULT_POLICY);
        for (method, action) in [
            ("GET", Action::Hash),
            ("HEAD", Action::Hash),
            ("POST", Action::Pass),
            ("PURGE", Action::Purge),
            ("BAN", Action::Ban),
        ] {
            let mut ctx = TestCtx::default().method(method);
            assert_eq!(recv(&p, &mut ctx), Some(action), "{method}");
        }
        let mut ctx = TestCtx::default().url("/a?b").header("Host", "example.com");
        assert_eq!(p.run(Sub::Hash, &mut ctx).unwrap(), Some(Action::Lookup));
        assert_eq!(ctx.hashed, ["/a?b", "example.com"]);
        // Undefined subroutines do nothing.
        assert!(!p.defines(Sub::Deliver));
        assert_eq!(p.run(Sub::Deliver, &mut ctx).unwrap(), None);
    }

    #[test]
    fn set_unset_and_concatenation() {
        let p = program(
            r#"sub vcl_recv {
                set req.http.X-A = "u=" + req.url + " r=" + req.restarts + " ip=" + client.ip + " t=" + 1.5s + " " + true;
                set req.http.X-B = req.restarts + 1 + " restarts, " + 1s + 1s;
                set req.http.X-Missing = req.http.nope;
                set req.http.X-Copy = req.http.Cookie;
                unset req.http.Cookie;
                set req.url = std.tolower(req.url);
            }"#,
        );
        let mut ctx = TestCtx::default()
            .url("/A")
            .header("cookie", "x=1")
            .with(Var::ReqRestarts, Value::Int(2));
        assert_eq!(recv(&p, &mut ctx), None);
        assert_eq!(
            ctx.req_header("x-a"),
            Some("u=/A r=2 ip=127.0.0.1 t=1.500 true")
        );
        assert_eq!(ctx.req_header("x-b"), Some("3 restarts, 1.0001.000"));
        assert_eq!(ctx.req_header("x-missing"), Some(""));
        assert_eq!(ctx.req_header("x-copy"), Some("x=1"));
        assert_eq!(ctx.req_header("cookie"), None);
        assert_eq!(ctx.str(&Var::ReqUrl), Some("/a"));
    }

    #[test]
    fn conditions() {
        let p = program(
            r#"sub vcl_recv {
                if (req.http.X-Set) { return (synth(701)); }
                elseif (req.url ~ "^/admin" && !(req.url ~ "public")) { return (synth(702)); }
                else if (req.url !~ "^/" || req.http.a == req.http.b) { return (synth(703)); }
                elsif (req.http.a != "x") { return (synth(704)); }
                else { return (synth(705, "else")); }
            }"#,
        );
        let status = |ctx: &mut TestCtx| match recv(&p, ctx) {
            Some(Action::Synth { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(&mut TestCtx::default().header("x-set", "")), 701);
        assert_eq!(status(&mut TestCtx::default().url("/admin/x")), 702);
        assert_eq!(status(&mut TestCtx::default().url("/admin/public")), 704);
        assert_eq!(status(&mut TestCtx::default().url("x")), 703);
        // Unset strings are equal to nothing, and differ from everything.
        assert_eq!(status(&mut TestCtx::default().url("/")), 704);
        let mut ctx = TestCtx::default().url("/").header("a", "x");
        assert_eq!(
            recv(&p, &mut ctx),
            Some(Action::Synth {
                status: 705,
                reason: Some("else".into())
            })
        );
        let mut ctx = TestCtx::default()
            .url("/")
            .header("a", "y")
            .header("b", "y");
        assert_eq!(status(&mut ctx), 703);
    }

    #[test]
    fn acl_matching() {
        let p = program(
            r#"acl purgers { "127.0.0.1"; "10.0.0.0"/8; !"10.0.0.66"; "::1"; }
            sub vcl_recv {
                if (req.method == "PURGE") {
                    if (client.ip !~ purgers) { return (synth(405, "Not allowed")); }
                    return (purge);
                }
            }"#,
        );
        let run = |ip: &str| {
            let mut ctx = TestCtx::default().method("PURGE");
            ctx.ip = Some(ip.parse().unwrap());
            recv(&p, &mut ctx)
        };
        assert_eq!(run("10.1.2.3"), Some(Action::Purge));
        assert_eq!(run("::1"), Some(Action::Purge));
        assert!(matches!(
            run("10.0.0.66"),
            Some(Action::Synth { status: 405, .. })
        ));
        assert!(matches!(
            run("192.0.2.1"),
            Some(Action::Synth { status: 405, .. })
        ));
    }

    #[test]
    fn functions() {
        let p = program(
            r#"sub vcl_recv {
                set req.http.a = regsub(req.url, "^/(\w+)/(\w+)", "/\2/\1");
                set req.http.b = regsuball(req.url, "o", "0");
                set req.http.c = regsub(req.url, "nomatch", "x");
                set req.http.d = regsub(req.url, "(f)", req.http.sub);
                set req.http.e = std.toupper(req.url);
                set req.http.f = std.integer(req.http.n, 7) + std.integer("bad", -1);
                set req.http.g = std.duration(req.http.t, 1s) + std.duration("nope", 2s);
                set req.ttl = std.duration(req.http.t, 1s);
            }"#,
        );
        let mut ctx = TestCtx::default()
            .url("/foo/boo")
            .header("sub", r"[\1]")
            .header("n", " 35 ")
            .header("t", "1.5m");
        recv(&p, &mut ctx);
        assert_eq!(ctx.req_header("a"), Some("/boo/foo"));
        assert_eq!(ctx.req_header("b"), Some("/f00/b00"));
        assert_eq!(ctx.req_header("c"), Some("/foo/boo"));
        assert_eq!(ctx.req_header("d"), Some("/[f]oo/boo"));
        assert_eq!(ctx.req_header("e"), Some("/FOO/BOO"));
        assert_eq!(ctx.req_header("f"), Some("34"));
        assert_eq!(ctx.req_header("g"), Some("92.000"));
        assert_eq!(ctx.vars.get(&Var::ReqTtl), Some(&Value::Duration(90.0)));
    }

    #[test]
    fn typed_variables_and_arithmetic() {
        let p = program(
            r#"sub vcl_backend_response {
                if (beresp.status >= 500 && bereq.retries < 2) { return (retry); }
                if (beresp.http.Cache-Control !~ "max-age") { set beresp.ttl = 5m - 30s + beresp.ttl; }
                set beresp.grace = -(-1h);
                set beresp.do_esi = beresp.http.Content-Type ~ "^text/html";
                set beresp.status = 200 + 1 - beresp.status + 9223372036854775807;
                if (beresp.ttl > 1h) { return (pass(2m)); }
                return (deliver);
            }"#,
        );
        let mut ctx = TestCtx::default()
            .with(Var::BerespStatus, Value::Int(503))
            .with(Var::BereqRetries, Value::Int(1));
        assert_eq!(
            p.run(Sub::BackendResponse, &mut ctx).unwrap(),
            Some(Action::Retry)
        );
        let mut ctx = TestCtx::default()
            .with(Var::BerespStatus, Value::Int(2))
            .with(Var::BerespTtl, Value::Duration(10.0))
            .with(
                Var::BerespHttp(Header::new("content-type")),
                Value::Str("text/html; charset=utf-8".into()),
            );
        assert_eq!(
            p.run(Sub::BackendResponse, &mut ctx).unwrap(),
            Some(Action::Deliver)
        );
        assert_eq!(ctx.vars.get(&Var::BerespTtl), Some(&Value::Duration(280.0)));
        assert_eq!(
            ctx.vars.get(&Var::BerespGrace),
            Some(&Value::Duration(3600.0))
        );
        assert_eq!(ctx.vars.get(&Var::BerespDoEsi), Some(&Value::Bool(true)));
        // Integer overflow wraps instead of panicking.
        assert_eq!(
            ctx.vars.get(&Var::BerespStatus),
            Some(&Value::Int(i64::MIN + 198))
        );
        let mut ctx = TestCtx::default().with(Var::BerespTtl, Value::Duration(7200.0));
        ctx.vars.insert(
            Var::BerespHttp(Header::new("cache-control")),
            Value::Str("max-age=1".into()),
        );
        assert_eq!(
            p.run(Sub::BackendResponse, &mut ctx).unwrap(),
            Some(Action::HitForPass { ttl: 120.0 })
        );
    }

    #[test]
    fn calls_and_return_from_custom_subs() {
        let p = program(
            r#"sub vcl_recv { call normalize; call decide; set req.http.after = "no"; }
            sub normalize { set req.http.n = "1"; if (req.url ~ "^/static/") { unset req.http.Cookie; } }
            sub decide { if (req.http.Cookie) { return (pass); } call deeper; }
            sub deeper { return (hash); }"#,
        );
        let mut ctx = TestCtx::default()
            .url("/static/a.css")
            .header("cookie", "a");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Hash));
        assert_eq!(ctx.req_header("n"), Some("1"));
        assert_eq!(ctx.req_header("after"), None);
        let mut ctx = TestCtx::default().url("/page").header("cookie", "a");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Pass));
    }

    #[test]
    fn synth_and_errors() {
        let p = program(
            r#"sub vcl_recv { return (synth(std.integer(req.http.code, 1000), "x" + req.url)); }
            sub vcl_synth { set resp.http.Content-Type = "text/plain"; synthetic("status " + resp.status + "\n"); synthetic({"more
"}); return (deliver); }
            sub vcl_backend_fetch { return (error(503)); }"#,
        );
        let mut ctx = TestCtx::default().url("/u").header("code", "404");
        assert_eq!(
            recv(&p, &mut ctx),
            Some(Action::Synth {
                status: 404,
                reason: Some("x/u".into())
            })
        );
        let err = p.run(Sub::Recv, &mut TestCtx::default()).unwrap_err();
        assert_eq!(err.message, "status 1000 is not between 100 and 999");
        assert_eq!((err.location.line, err.location.column), (1, 16));
        let mut ctx = TestCtx::default().with(Var::RespStatus, Value::Int(404));
        assert_eq!(p.run(Sub::Synth, &mut ctx).unwrap(), Some(Action::Deliver));
        assert_eq!(ctx.body, "status 404\\nmore\n");
        assert_eq!(
            p.run(Sub::BackendFetch, &mut ctx).unwrap(),
            Some(Action::Error {
                status: 503,
                reason: None
            })
        );
        let mut refusing = TestCtx {
            refuse: true,
            ..TestCtx::default()
        };
        let err = p.run(Sub::Synth, &mut refusing).unwrap_err();
        assert_eq!(err.to_string(), "refused (at t.vcl:2:29)");
    }

    #[test]
    fn wrong_types_from_the_host_do_not_panic() {
        let p = program(
            r#"sub vcl_recv { if (req.restarts > 0 || req.url ~ "x" || req.hash_always_miss) { return (pass); } set req.http.a = req.url; }"#,
        );
        let mut ctx = TestCtx::default()
            .with(Var::ReqRestarts, Value::Str("three".into()))
            .with(Var::ReqUrl, Value::Int(5))
            .with(Var::ReqHashAlwaysMiss, Value::Int(1));
        assert_eq!(recv(&p, &mut ctx), None);
        assert_eq!(ctx.req_header("a"), Some("5"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Some(10.0));
        assert_eq!(parse_duration(" 1.5m "), Some(90.0));
        assert_eq!(parse_duration("-2h"), Some(-7200.0));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("1e400s"), None);
    }

    #[test]
    fn regsub_first_and_all() {
        let re = Pattern::new("(o+)").unwrap();
        let pieces = crate::ir::parse_replacement("<\\1>");
        assert_eq!(regsub(&re, "foo boo".into(), &pieces, false), "f<oo> boo");
        assert_eq!(regsub(&re, "foo boo".into(), &pieces, true), "f<oo> b<oo>");
        assert!(matches!(
            regsub(&re, "xyz".into(), &pieces, true),
            Cow::Borrowed("xyz")
        ));
        let empty = Pattern::new("x*").unwrap();
        assert_eq!(
            regsub(
                &empty,
                "ab".into(),
                &crate::ir::parse_replacement("-"),
                true
            ),
            "-a-b-"
        );
    }

    #[test]
    fn value_display() {
        assert_eq!(Value::Duration(10.0).to_string(), "10.000");
        assert_eq!(Value::Int(-3).to_string(), "-3");
        assert_eq!(Value::Bool(true).to_string(), "true");
        assert_eq!(Value::Ip("::1".parse().unwrap()).to_string(), "::1");
    }

    #[test]
    fn a_builtin_subroutine_defined_twice_runs_both_bodies_in_order() {
        let p = program(
            r#"sub vcl_recv { set req.http.a = "1"; }
sub vcl_recv { set req.http.a = req.http.a + "2"; if (req.url == "/p") { return (pass); } }
sub vcl_recv { return (hash); }"#,
        );
        let mut ctx = TestCtx::default().url("/");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Hash));
        assert_eq!(ctx.req_header("a"), Some("12"));
        let mut ctx = TestCtx::default().url("/p");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Pass));
    }

    #[test]
    fn call_vcl_builtin_recv_runs_varnish_builtin_checks() {
        let p = program(
            r#"sub vcl_recv { set req.http.x = "before"; call vcl_builtin_recv; set req.http.x = "after"; return (hash); }"#,
        );
        let mut ctx = TestCtx::default()
            .method("GET")
            .header("host", "Example.COM");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Hash));
        assert_eq!(ctx.req_header("x"), Some("after"));
        assert_eq!(ctx.req_header("host"), Some("example.com"));
        let mut ctx = TestCtx::default().method("GET").header("cookie", "a=b");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Pass));
        assert_eq!(ctx.req_header("x"), Some("before"));
        let mut ctx = TestCtx::default().method("POST");
        assert_eq!(recv(&p, &mut ctx), Some(Action::Pass));
        let mut ctx = TestCtx::default().method("PURGE");
        assert_eq!(
            recv(&p, &mut ctx),
            Some(Action::Synth {
                status: 501,
                reason: None
            })
        );
    }

    #[test]
    fn call_vcl_builtin_hash_adds_lacquers_key() {
        let p = program(
            r#"sub vcl_hash { hash_data(req.http.x-lang); call vcl_builtin_hash; return (lookup); }"#,
        );
        let mut ctx = TestCtx::default()
            .url("/a")
            .header("host", "h")
            .header("x-lang", "fr");
        assert_eq!(p.run(Sub::Hash, &mut ctx).unwrap(), Some(Action::Lookup));
        assert_eq!(ctx.hashed, vec!["fr", "/a", "h"]);
    }

    #[test]
    fn builtin_vcl_compiles() {
        assert!(crate::builtin_program().is_some());
        let p = crate::builtin_program().unwrap();
        assert!(p.defines(Sub::Recv) && p.defines(Sub::BackendResponse));
    }

    #[test]
    fn compound_assignment_appends_and_adds() {
        let p = program(
            r#"sub vcl_recv { set req.http.a += "-x"; set req.http.b += "y"; set req.ttl = 10s; set req.ttl += 5s; set req.ttl -= 1s; set req.http.t = req.ttl; }"#,
        );
        let mut ctx = TestCtx::default().header("a", "v");
        assert_eq!(recv(&p, &mut ctx), None);
        assert_eq!(ctx.req_header("a"), Some("v-x"));
        assert_eq!(ctx.req_header("b"), Some("y"));
        assert_eq!(ctx.req_header("t"), Some("14.000"));
    }

    #[test]
    fn vcl_init_runs_and_can_fail_the_load() {
        let p = program("sub vcl_init { return (ok); } sub vcl_fini { return (ok); }");
        assert!(p.init().is_ok());
        assert!(p.defines(Sub::Fini));
        let p = program("sub vcl_init { if (true) { return (fail); } }");
        assert_eq!(p.init().unwrap_err().message, "vcl_init returned fail");
        assert!(program("sub vcl_recv { }").init().is_ok());
    }

    #[test]
    fn vcl_pipe_compiles_with_req_and_bereq() {
        let p = program(
            r#"sub vcl_pipe { set bereq.http.connection = "close"; if (req.url ~ "^/ws") { return (pipe); } return (synth(403)); }"#,
        );
        assert!(p.defines(Sub::Pipe));
    }
}
