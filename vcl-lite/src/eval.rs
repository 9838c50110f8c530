//! Running a compiled policy against a host [`Context`].

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::pattern::Pattern;

use crate::acl::CompiledAcl;
use crate::action::Action;
use crate::ast::{AddOp, CmpOp};
use crate::decl::{Backend, Probe};
use crate::directors::Director;
use crate::error::{Location, RuntimeError, SourceMap};
use crate::funcs::{Func, HttpPart};
use crate::ir::{ActionIr, Arg, Call, Expr, Piece, Replacement, Stmt};
use crate::lexer::unit_seconds;
use crate::stdlib;
use crate::vars::{Header, Literal, Sub, Type, Var};
use crate::vmods::{Globals, ProxyField, SoftPurge, TaskState};

mod lower;
mod vmods;

pub(crate) use lower::Lowered;
use lower::{block as lower_block, Block};
use lower::{Flow, Run};

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
    /// REAL
    Real(f64),
    /// TIME, in seconds since the epoch.
    Time(f64),
    /// BYTES
    Bytes(i64),
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
            Value::Real(_) => Type::Real,
            Value::Time(_) => Type::Time,
            Value::Bytes(_) => Type::Bytes,
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
            Value::Real(r) => Value::Real(r),
            Value::Time(t) => Value::Time(t),
            Value::Bytes(b) => Value::Bytes(b),
        }
    }

    /// Its STRING form, taking over the text of a STRING value that owns it.
    pub fn into_string(self) -> String {
        match self {
            Value::Str(s) => s.into_owned(),
            other => other.to_string(),
        }
    }

    /// The text of a STRING value that lends it.
    pub fn into_lent_str(self) -> Option<&'a str> {
        match self {
            Value::Str(Cow::Borrowed(s)) => Some(s),
            _ => None,
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

/// The STRING form of a value, as VCL converts it (durations and reals
/// with three decimals: `10.000`; times as HTTP dates; sizes in bytes).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) | Value::Bytes(i) => write!(f, "{i}"),
            Value::Duration(d) | Value::Real(d) => write!(f, "{d:.3}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Time(t) => f.write_str(&stdlib::http_date(*t)),
        }
    }
}

/// What the host gives a running policy. lacquer implements it over its
/// request, backend request, response and object. The methods with a
/// default body are for the functions that need the host (`ban`,
/// `std.log`, …); a host without them keeps compiling.
pub trait Context {
    /// The value of a variable; `None` when it is not set (an absent header).
    /// The policy only asks for variables readable in the running
    /// subroutine. A value of another type than the variable's is converted
    /// where possible (to STRING), otherwise taken as unset.
    fn get(&self, var: &Var) -> Option<Value<'_>>;

    /// Whether [`Context::text`] answers every header, URL and method
    /// variable ([`Var::is_text`]) as [`Context::get`] would. Asked once
    /// per run; by default no, and those variables are read through `get`.
    fn lends_text(&self) -> bool {
        false
    }

    /// The text of a header, URL or method variable ([`Var::is_text`]),
    /// borrowed from where the host keeps it; `None` when unset. Asked
    /// only of a host that [lends text](Context::lends_text): a `&str`
    /// comes back in two registers, a [`Value`] through memory, and moving
    /// it out again stalled on every read (store forwarding, seen with
    /// `perf annotate` under production.vcl).
    fn text(&self, var: &Var) -> Option<&str> {
        self.get(var)?.into_lent_str()
    }

    /// Sets a variable (always with a value of the variable's type). An
    /// `Err` (for instance a header value the host refuses) fails the
    /// subroutine with a [`RuntimeError`].
    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String>;

    /// Sets a STRING variable to a literal text of the policy (`set
    /// req.http.X-Device = "mobile";`): the host may keep its own form of
    /// the text with it ([`Literal::host_form`]). By default
    /// [`Context::set`] with the text lent.
    fn set_text(&mut self, var: &Var, text: &Literal) -> Result<(), String> {
        self.set(var, Value::Str(Cow::Borrowed(text.text())))
    }

    /// Removes a header (`unset req.http.Cookie;`). Only header variables
    /// are ever unset.
    fn unset(&mut self, var: &Var);

    /// `client.ip`.
    fn client_ip(&self) -> IpAddr;

    /// `hash_data(...)` in `vcl_hash`: one part of the cache key.
    fn hash_data(&mut self, data: &str);

    /// `hash_data(var)` for a text variable ([`Var::is_text`]) read where
    /// it is, without copying it first: what [`Context::hash_data`] of its
    /// [`Context::text`] (`""` when unset) does. `false` when the host does
    /// not offer it (the default; the evaluator then copies).
    fn hash_text_of(&mut self, var: &Var) -> bool {
        let _ = var;
        false
    }

    /// `synthetic(...)` in `vcl_synth` / `vcl_backend_error`: appends to the
    /// synthetic body.
    fn synthetic(&mut self, body: &str);

    /// `now` (seconds since the epoch). By default the system clock.
    fn now(&self) -> f64 {
        stdlib::now()
    }

    /// `ban(…)`, `std.ban(…)`: adds a ban. `Err` says why it was refused
    /// (`std.ban_error()` returns it). By default bans are refused.
    fn ban(&self, expr: &str) -> Result<(), String> {
        let _ = expr;
        Err("bans are not available here".to_string())
    }

    /// `std.log(…)` and `std.syslog(…)` (`priority` as syslog's, 0–7;
    /// `None` for `std.log`). By default nothing is written.
    fn log(&mut self, priority: Option<i64>, message: &str) {
        let _ = (priority, message);
    }

    /// `std.healthy(backend)`. By default every backend is healthy.
    fn healthy(&self, backend: &str) -> bool {
        let _ = backend;
        true
    }

    /// `X.backend(key)` of the hash or shard director `director` (one of
    /// [`Program::directors`]): the name of the backend it chooses for
    /// `key`; `None` when none is healthy. By default none.
    fn director_backend(&self, director: &str, key: &str) -> Option<String> {
        let _ = (director, key);
        None
    }

    /// `std.collect(hdr, sep)`: joins the header's values into one. By
    /// default nothing changes.
    fn collect(&mut self, header: &Var, separator: &str) {
        let _ = (header, separator);
    }

    /// `std.rollback(req)`: puts the request back as it was received. `Err`
    /// fails the subroutine. By default it is refused.
    fn rollback(&mut self, part: HttpPart) -> Result<(), String> {
        let _ = part;
        Err("std.rollback is not available here".to_string())
    }

    /// `std.cache_req_body(size)`: whether the request body (at most
    /// `max_bytes`) is kept for restarts and retries. By default `true`.
    fn cache_req_body(&self, max_bytes: i64) -> bool {
        let _ = max_bytes;
        true
    }

    /// The port of an address variable (`client.ip`, `server.ip`,
    /// `local.ip`, `remote.ip`) for `std.port`. By default none (0).
    fn port(&self, var: &Var) -> Option<u16> {
        let _ = var;
        None
    }

    /// The running task's vmod state (vmod cookie's jar, vmod var's
    /// variables). The host keeps one per client request (through its
    /// restarts) and one per backend fetch, as Varnish's `PRIV_TASK`. By
    /// default there is none: `cookie.*` and `var.*` then see an empty jar
    /// and unset variables, and change nothing.
    fn task_state(&self) -> Option<&TaskState> {
        None
    }

    /// [`Context::task_state`], to change it.
    fn task_state_mut(&mut self) -> Option<&mut TaskState> {
        None
    }

    /// Every value of a header variable, in order (vmod header). By default
    /// the one [`Context::get`] gives.
    fn header_values(&self, var: &Var) -> Vec<String> {
        self.get(var)
            .map(|v| vec![v.to_string()])
            .unwrap_or_default()
    }

    /// Replaces every value of a header variable (`header.append`,
    /// `header.remove`, `header.copy`); no values removes the header. `Err`
    /// (a value the host refuses) fails the subroutine. By default the
    /// header is unset and then set to the first value.
    fn set_header_values(&mut self, var: &Var, values: Vec<String>) -> Result<(), String> {
        self.unset(var);
        match values.into_iter().next() {
            Some(first) => self.set(var, Value::Str(Cow::Owned(first))),
            None => Ok(()),
        }
    }

    /// `xkey.purge(keys)` (`soft`: `xkey.softpurge`): purges the objects
    /// carrying any of the keys (separated by spaces or commas); how many.
    /// By default nothing is purged.
    fn xkey_purge(&self, keys: &str, soft: bool) -> i64 {
        let _ = (keys, soft);
        0
    }

    /// `purge.hard()` (`None`) and `purge.soft(…)` in `vcl_hit` and
    /// `vcl_miss`: purges every variant of the object being looked up; how
    /// many. `Err` fails the subroutine. By default refused.
    fn purge(&self, soft: Option<SoftPurge>) -> Result<i64, String> {
        let _ = soft;
        Err("vmod purge is not available here".to_string())
    }

    /// A vmod proxy function: what the PROXY v2 header of the client's
    /// connection said. `None`: it said nothing of it (then STRING
    /// functions are unset, BOOL ones false, INT ones 0). By default `None`.
    fn proxy(&self, field: ProxyField) -> Option<Value<'_>> {
        let _ = field;
        None
    }
}

/// A compiled policy: checked, with names resolved and regular expressions
/// compiled. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) file: String,
    /// Where each statement's text comes from (files of `include`s).
    pub(crate) map: SourceMap,
    pub(crate) subs: Vec<Option<Vec<Stmt>>>,
    pub(crate) acls: Vec<CompiledAcl>,
    pub(crate) backends: Vec<Backend>,
    pub(crate) probes: Vec<Probe>,
    pub(crate) directors: Vec<Director>,
    /// vmod var's global variables.
    pub(crate) globals: Globals,
    /// The vmods it imports.
    pub(crate) imported: Vec<String>,
    /// Every function the program calls, in statements or expressions.
    pub(crate) used: Vec<Func>,
    /// `vcl_deliver`'s early removals of response headers
    /// ([`Program::early_unsets`]).
    pub(crate) deliver_early: Option<DeliverEarly>,
    /// The bodies lowered to closures: what runs ([`lower`]).
    pub(crate) lowered: Arc<Lowered>,
}

/// `vcl_deliver`'s early removals ([`Program::early_unsets`]) and its
/// body without them, lowered: what runs on a response made without those
/// headers.
#[derive(Debug, Clone)]
pub(crate) struct DeliverEarly {
    headers: Vec<Header>,
    body: Arc<Block>,
}

impl DeliverEarly {
    /// Those of a program's `subs`, of the headers `allowed` lets go.
    pub(crate) fn of(
        subs: &[Option<Vec<Stmt>>],
        allowed: &dyn Fn(&Header) -> bool,
    ) -> Option<DeliverEarly> {
        let body = subs.get(Sub::Deliver.index())?.as_deref()?;
        let early = crate::early_unset::in_deliver(body, allowed)?;
        Some(DeliverEarly {
            headers: early.headers,
            body: Arc::new(lower_block(&early.body)),
        })
    }
}

// What one run of a subroutine remembers besides the host's state, kept
// per thread so that expressions are evaluated with the host alone (two
// words passed around, as before there was anything to remember): a
// failure inside an expression (a conversion without fallback, a division
// by zero) fails the statement; `std.ban_error()` returns the last
// `std.ban` error. Reset when a run starts.
thread_local! {
    static FAILED: Cell<bool> = const { Cell::new(false) };
    /// The running host's [`Context::lends_text`].
    static LENDS_TEXT: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
    static BAN_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records that an expression failed (the first message is kept).
fn fail(message: impl FnOnce() -> String) {
    if !FAILED.with(Cell::get) {
        FAILED.with(|f| f.set(true));
        MESSAGE.with(|m| *m.borrow_mut() = message());
    }
}

/// `test` of a variable's text (read once; a non-STRING value as its
/// text); false when it is unset, which, as in Varnish, equals nothing.
fn text_of(ctx: &dyn Context, var: &Var, test: impl Fn(&str) -> bool) -> bool {
    if lent(var) {
        return lent_text(ctx, var).is_some_and(test);
    }
    match ctx.get(var) {
        Some(Value::Str(s)) => test(&s),
        Some(other) => test(&other.to_string()),
        None => false,
    }
}

/// Whether `var` is read through [`Context::text`] in this run.
fn lent(var: &Var) -> bool {
    var.is_text() && lends()
}

/// Whether the running host lends text ([`Context::lends_text`]): for a
/// variable known to be a text one, [`lent`] without looking at it.
fn lends() -> bool {
    LENDS_TEXT.with(Cell::get)
}

/// [`Context::text`]; in debug builds (the tests) checked against
/// [`Context::get`] on every read.
fn lent_text<'c>(ctx: &'c dyn Context, var: &Var) -> Option<&'c str> {
    let text = ctx.text(var);
    debug_assert!(
        text == ctx.get(var).as_ref().and_then(Value::as_str),
        "{var:?}: the host's text and value differ"
    );
    text
}

fn failed() -> bool {
    FAILED.with(Cell::get)
}

/// `std.ban`: the host adds it; the error is kept for `std.ban_error`.
fn ban(ctx: &dyn Context, expr: &str) -> bool {
    let result = ctx.ban(expr);
    BAN_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        if let Err(message) = result {
            *e = message;
        }
    });
    BAN_ERROR.with(|e| e.borrow().is_empty())
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

    /// The directors made in `vcl_init` (`new X = directors.KIND();` and
    /// `X.add_backend(…)`), in order: a director's members are declared
    /// backends or directors before it.
    pub fn directors(&self) -> &[Director] {
        &self.directors
    }

    /// The named `probe` declarations, in order (a backend's own probe,
    /// named or inline, is in [`Backend::probe`]).
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// Whether the policy imports the vmod `name` (`import xkey;`): a host
    /// can set up what only that vmod needs.
    pub fn imports(&self, name: &str) -> bool {
        self.imported.iter().any(|i| i == name)
    }

    /// The file name given to [`crate::compile`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Whether the policy calls the built-in function `name` (`"std.rollback"`)
    /// anywhere: a host can keep what only that function needs.
    pub fn calls(&self, name: &str) -> bool {
        crate::funcs::lookup(name).is_some_and(|def| self.used.contains(&def.func))
    }

    /// Runs one built-in subroutine. `Ok(None)`: the subroutine is not
    /// defined or ended without `return`; the host goes on with its built-in
    /// behaviour, as Varnish appends its built-in VCL.
    pub fn run(&self, sub: Sub, ctx: &mut dyn Context) -> Result<Option<Action>, RuntimeError> {
        let Some(body) = self.lowered.sub(sub) else {
            return Ok(None);
        };
        self.run_body(body, ctx)
    }

    /// The response headers `vcl_deliver` removes before anything in it
    /// could read or write them, leave it or call a function
    /// (`unset resp.http.Server;` at its top): the response is the same
    /// whether they were there or not. Empty for other subroutines.
    pub fn early_unsets(&self, sub: Sub) -> &[Header] {
        match (&self.deliver_early, sub) {
            (Some(early), Sub::Deliver) => &early.headers,
            _ => &[],
        }
    }

    /// Lets only the headers `allowed` says be among `vcl_deliver`'s
    /// [`Program::early_unsets`]: a host that reads some of a response's
    /// headers while it makes it (after they would have been left out) keeps
    /// them, and their `unset` runs in `vcl_deliver` where it stands.
    pub fn limit_early_unsets(&mut self, allowed: impl Fn(&Header) -> bool) {
        self.deliver_early = DeliverEarly::of(&self.subs, &allowed);
    }

    /// Runs `sub` without its [`Program::early_unsets`]: for a host whose
    /// response has none of those headers (it left them out). The same as
    /// [`Program::run`] when there are none.
    pub fn run_after_early_unsets(
        &self,
        sub: Sub,
        ctx: &mut dyn Context,
    ) -> Result<Option<Action>, RuntimeError> {
        match (&self.deliver_early, sub) {
            (Some(early), Sub::Deliver) => self.run_body(&early.body, ctx),
            _ => self.run(sub, ctx),
        }
    }

    fn run_body(
        &self,
        body: &Block,
        ctx: &mut dyn Context,
    ) -> Result<Option<Action>, RuntimeError> {
        FAILED.with(|f| f.set(false));
        // A host's callback may run another policy with another host on
        // this thread: the outer run reads its own host's way again after.
        let outer = LENDS_TEXT.with(|l| l.replace(ctx.lends_text()));
        BAN_ERROR.with(|e| e.borrow_mut().clear());
        let mut run = Run::new(self, ctx);
        let flow = body.run(&mut run);
        LENDS_TEXT.with(|l| l.set(outer));
        match flow {
            Flow::Next => Ok(None),
            Flow::Return => Ok(run.returned),
            Flow::Failed => Err(run.failure.unwrap_or_else(|| RuntimeError {
                message: "failed".to_string(),
                file: self.file.clone(),
                location: Location::default(),
            })),
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
            fn set(&mut self, _: &Var, _: Value<'_>) -> Result<(), String> {
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

    pub(super) fn runtime_error(&self, message: String, at: usize) -> RuntimeError {
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

    /// The failure an expression of the statement at `at` recorded.
    #[cold]
    fn expr_failed(&self, at: usize) -> RuntimeError {
        FAILED.with(|f| f.set(false));
        let message = MESSAGE.with(|m| std::mem::take(&mut *m.borrow_mut()));
        self.runtime_error(message, at)
    }

    /// `return (…)`: the action, its arguments evaluated.
    #[inline(never)]
    fn ret(
        &self,
        action: &ActionIr,
        ctx: &dyn Context,
        at: usize,
        fallible: bool,
    ) -> Result<Action, RuntimeError> {
        let action = self.action(action, ctx, at)?;
        if fallible && failed() {
            return Err(self.expr_failed(at));
        }
        Ok(action)
    }

    /// A statement that holds no other and does not return: `set`,
    /// `unset`, `hash_data`, `synthetic`, a function called for its
    /// effect, for the lowered statements that have
    /// no closure of their own ([`lower`]).
    fn leaf(
        &self,
        stmt: &Stmt,
        ctx: &mut dyn Context,
        scratch: &mut String,
    ) -> Result<(), RuntimeError> {
        match stmt {
            // `set req.url = std.querysort(req.url);` (most policies): when
            // the result is the URL itself, nothing changes, and the copy an
            // owned value costs is not made.
            Stmt::Set {
                var: var @ (Var::ReqUrl | Var::BereqUrl),
                value,
                at,
                fallible,
                ..
            } if lent(var) => {
                let text = self.string(value, &*ctx).unwrap_or_default();
                let unchanged = matches!(&text, Cow::Borrowed(t)
                    if lent_text(&*ctx, var).is_some_and(|now| std::ptr::eq(now, *t)));
                let text = (!unchanged).then(|| text.into_owned());
                if *fallible && failed() {
                    return Err(self.expr_failed(*at));
                }
                if let Some(text) = text {
                    ctx.set(var, Value::Str(Cow::Owned(text)))
                        .map_err(|m| self.runtime_error(m, *at))?;
                }
            }
            Stmt::Set {
                var,
                ty,
                value,
                at,
                fallible,
            } => {
                let value = self.value(value, *ty, &*ctx);
                if *fallible && failed() {
                    return Err(self.expr_failed(*at));
                }
                ctx.set(var, value)
                    .map_err(|m| self.runtime_error(m, *at))?;
            }
            Stmt::SetText { var, text, at } => ctx
                .set_text(var, text)
                .map_err(|m| self.runtime_error(m, *at))?,
            Stmt::Unset(var) => ctx.unset(var),
            // `hash_data(req.url);`, `hash_data(req.http.host);` (every
            // vcl_hash): read in place by a host that offers it.
            Stmt::HashData(Expr::Var(var), _) if lent(var) && ctx.hash_text_of(var) => {}
            Stmt::HashData(e, at) => {
                self.text_into(e, *at, &*ctx, scratch)?;
                ctx.hash_data(scratch);
            }
            Stmt::Synthetic(e, at) => {
                self.text_into(e, *at, &*ctx, scratch)?;
                ctx.synthetic(scratch);
            }
            Stmt::Effect { call, at } => {
                self.effect(call, ctx, scratch)
                    .map_err(|m| self.runtime_error(m, *at))?;
                if failed() {
                    return Err(self.expr_failed(*at));
                }
            }
            Stmt::If { .. } | Stmt::Call(_) | Stmt::Builtin(_) | Stmt::Return { .. } => {}
        }
        Ok(())
    }

    /// `e`'s STRING form in `scratch`; `Err` when an expression of the
    /// statement at `at` (a fallible one) failed.
    fn text_into(
        &self,
        e: &Expr,
        at: Option<usize>,
        ctx: &dyn Context,
        scratch: &mut String,
    ) -> Result<(), RuntimeError> {
        scratch.clear();
        self.append(e, Type::String, ctx, scratch);
        match at.filter(|_| failed()) {
            Some(at) => Err(self.expr_failed(at)),
            None => Ok(()),
        }
    }

    /// A function called as a statement.
    #[inline(never)]
    fn effect(
        &self,
        call: &Call,
        ctx: &mut dyn Context,
        scratch: &mut String,
    ) -> Result<(), String> {
        let text = |i: usize, ctx: &dyn Context, scratch: &mut String| {
            scratch.clear();
            if let Some(Arg::Val(e, ty)) = call.args.get(i) {
                self.append(e, *ty, ctx, scratch);
            }
        };
        match call.func {
            Func::Log => {
                text(0, &*ctx, scratch);
                ctx.log(None, scratch);
            }
            Func::Syslog => {
                let priority = match call.args.first() {
                    Some(Arg::Val(e, _)) => self.int(e, &*ctx),
                    _ => 6,
                };
                text(1, &*ctx, scratch);
                ctx.log(Some(priority), scratch);
            }
            Func::Ban => {
                text(0, &*ctx, scratch);
                ban(&*ctx, scratch);
            }
            Func::Collect => {
                if let Some(Arg::Header(var)) = call.args.first() {
                    text(1, &*ctx, scratch);
                    ctx.collect(var, scratch);
                }
            }
            Func::Rollback => {
                if let Some(Arg::Http(part)) = call.args.first() {
                    ctx.rollback(*part)?;
                }
            }
            // Accepted, nothing to do.
            Func::Timestamp | Func::Late100Continue | Func::SetIpTos => {}
            Func::CookieParse
            | Func::CookieClean
            | Func::CookieSet
            | Func::CookieDelete
            | Func::CookieFilter
            | Func::CookieKeep
            | Func::CookieFilterRe
            | Func::CookieKeepRe
            | Func::HeaderAppend
            | Func::HeaderCopy
            | Func::HeaderRemove
            | Func::VarSet(_)
            | Func::VarClear
            | Func::VarGlobalSet => self.vmod_effect(call, ctx)?,
            // A function with a result, called for its effect.
            _ => {
                let _ = self.call(call, &*ctx);
            }
        }
        Ok(())
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
        let reason = |r: &Option<Box<Expr>>| {
            r.as_deref()
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
            Type::String | Type::Backend => Value::Str(Cow::Owned(
                self.string(e, ctx).unwrap_or_default().into_owned(),
            )),
            Type::Int => Value::Int(self.int(e, ctx)),
            Type::Duration => Value::Duration(self.dur(e, ctx)),
            Type::Bool => Value::Bool(self.boolean(e, ctx)),
            Type::Ip => Value::Ip(self.ip(e, ctx)),
            Type::Real => Value::Real(self.real(e, ctx)),
            Type::Time => Value::Time(self.time(e, ctx)),
            Type::Bytes => Value::Bytes(self.bytes(e, ctx)),
        }
    }

    /// Appends the STRING form of `e` (of type `ty`) to `out`.
    fn append(&self, e: &Expr, ty: Type, ctx: &dyn Context, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = match ty {
            Type::String | Type::Backend => {
                if let Some(s) = self.string(e, ctx) {
                    out.push_str(&s);
                }
                Ok(())
            }
            Type::Int => write!(out, "{}", self.int(e, ctx)),
            Type::Duration => write!(out, "{:.3}", self.dur(e, ctx)),
            Type::Bool => write!(out, "{}", self.boolean(e, ctx)),
            Type::Ip => write!(out, "{}", self.ip(e, ctx)),
            Type::Real => write!(out, "{:.3}", self.real(e, ctx)),
            Type::Time => {
                out.push_str(&stdlib::http_date(self.time(e, ctx)));
                Ok(())
            }
            Type::Bytes => write!(out, "{}", self.bytes(e, ctx)),
        };
    }

    /// A STRING expression; `None` when unset.
    fn string<'a>(&'a self, e: &'a Expr, ctx: &'a dyn Context) -> Option<Cow<'a, str>> {
        match e {
            Expr::Str(s) => Some(Cow::Borrowed(s)),
            // Matched in place, not through `?`: `?` moved the whole
            // `Value` (its payload starts at byte 1, for `Ip`) with wide
            // unaligned loads over the host's narrower stores, a store-
            // forwarding stall on every variable read (~1% of a hit's
            // cycles under production.vcl, by perf annotate).
            Expr::Var(var) if lent(var) => lent_text(ctx, var).map(Cow::Borrowed),
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Str(s)) => Some(s),
                Some(other) => Some(Cow::Owned(other.to_string())),
                None => None,
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
            Expr::Call(call) => match self.call(call, ctx)? {
                Value::Str(s) => Some(s),
                other => Some(Cow::Owned(other.to_string())),
            },
            Expr::Director { name, key } => {
                let key = self.string(key, ctx).unwrap_or_default();
                ctx.director_backend(name, &key).map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// Integer arithmetic wraps; a division by zero fails the statement.
    fn int_op(op: AddOp, a: i64, b: i64) -> i64 {
        match op {
            AddOp::Add => a.wrapping_add(b),
            AddOp::Sub => a.wrapping_sub(b),
            AddOp::Mul => a.wrapping_mul(b),
            AddOp::Div => {
                if b == 0 {
                    fail(|| "INT division by zero".to_string());
                    0
                } else {
                    a.wrapping_div(b)
                }
            }
        }
    }

    fn real_op(op: AddOp, a: f64, b: f64) -> f64 {
        match op {
            AddOp::Add => a + b,
            AddOp::Sub => a - b,
            AddOp::Mul => a * b,
            AddOp::Div => {
                if b == 0.0 {
                    fail(|| "division by zero".to_string());
                    0.0
                } else {
                    a / b
                }
            }
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
                Program::int_op(*op, acc, self.int(e, ctx))
            }),
            Expr::Neg(inner) => self.int(inner, ctx).wrapping_neg(),
            Expr::Call(call) => match self.call(call, ctx) {
                Some(Value::Int(i)) => i,
                _ => 0,
            },
            Expr::ShardKey(s) => {
                i64::from(stdlib::shard_key(&self.string(s, ctx).unwrap_or_default()))
            }
            _ => 0,
        }
    }

    /// Any numeric expression of type `ty` as an f64 (for mixed
    /// arithmetic).
    fn num(&self, e: &Expr, ty: Type, ctx: &dyn Context) -> f64 {
        match ty {
            Type::Int => self.int(e, ctx) as f64,
            Type::Real => self.real(e, ctx),
            Type::Duration => self.dur(e, ctx),
            Type::Time => self.time(e, ctx),
            Type::Bytes => self.bytes(e, ctx) as f64,
            _ => 0.0,
        }
    }

    #[inline(never)]
    fn mixed(&self, e: &Expr, ctx: &dyn Context) -> f64 {
        match e {
            Expr::Mixed {
                op,
                lhs,
                lty,
                rhs,
                rty,
            } => Program::real_op(*op, self.num(lhs, *lty, ctx), self.num(rhs, *rty, ctx)),
            _ => 0.0,
        }
    }

    fn real(&self, e: &Expr, ctx: &dyn Context) -> f64 {
        match e {
            Expr::Real(r) => *r,
            Expr::IntToReal(inner) => self.int(inner, ctx) as f64,
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Real(r)) => r,
                _ => 0.0,
            },
            Expr::Arith(first, rest) => rest.iter().fold(self.real(first, ctx), |acc, (op, e)| {
                Program::real_op(*op, acc, self.real(e, ctx))
            }),
            Expr::Mixed { .. } => self.mixed(e, ctx),
            Expr::Neg(inner) => -self.real(inner, ctx),
            Expr::Call(call) => match self.call(call, ctx) {
                Some(Value::Real(r)) => r,
                _ => 0.0,
            },
            _ => 0.0,
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
                Program::real_op(*op, acc, self.dur(e, ctx))
            }),
            Expr::Mixed { .. } => self.mixed(e, ctx),
            Expr::Neg(inner) => -self.dur(inner, ctx),
            Expr::Call(call) => match self.call(call, ctx) {
                Some(Value::Duration(d)) => d,
                _ => 0.0,
            },
            _ => 0.0,
        }
    }

    fn time(&self, e: &Expr, ctx: &dyn Context) -> f64 {
        match e {
            Expr::Now => ctx.now(),
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Time(t)) => t,
                _ => 0.0,
            },
            Expr::Mixed { .. } => self.mixed(e, ctx),
            Expr::Call(call) => match self.call(call, ctx) {
                Some(Value::Time(t)) => t,
                _ => 0.0,
            },
            _ => 0.0,
        }
    }

    fn bytes(&self, e: &Expr, ctx: &dyn Context) -> i64 {
        match e {
            Expr::Bytes(b) => *b,
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Bytes(b)) => b,
                _ => 0,
            },
            Expr::Arith(first, rest) => rest.iter().fold(self.bytes(first, ctx), |acc, (op, e)| {
                Program::int_op(*op, acc, self.bytes(e, ctx))
            }),
            // Saturating, as `as` is.
            Expr::Mixed { .. } => self.mixed(e, ctx) as i64,
            Expr::Neg(inner) => self.bytes(inner, ctx).wrapping_neg(),
            Expr::Call(call) => match self.call(call, ctx) {
                Some(Value::Bytes(b)) => b,
                _ => 0,
            },
            _ => 0,
        }
    }

    fn ip(&self, e: &Expr, ctx: &dyn Context) -> IpAddr {
        match e {
            Expr::ClientIp => ctx.client_ip(),
            Expr::IpLit(ip) => *ip,
            Expr::Var(var) => match ctx.get(var) {
                Some(Value::Ip(ip)) => ip,
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            Expr::Call(call) => match self.call(call, ctx) {
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
            Expr::Defined(inner) => match &**inner {
                Expr::Var(var) if lent(var) => lent_text(ctx, var).is_some(),
                Expr::Var(var) => ctx.get(var).is_some(),
                other => self.string(other, ctx).is_some(),
            },
            Expr::Not(inner) => !self.boolean(inner, ctx),
            Expr::And(items) => items.iter().all(|i| self.boolean(i, ctx)),
            Expr::Or(items) => items.iter().any(|i| self.boolean(i, ctx)),
            Expr::Regex {
                subject,
                re,
                negate,
            } => {
                // Most subjects are a header or the URL: read in place, not
                // through `string`'s frame (a call per test).
                let s = match &**subject {
                    Expr::Var(var) if lent(var) => lent_text(ctx, var).map(Cow::Borrowed),
                    other => self.string(other, ctx),
                };
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
            // As in Varnish, an unset string equals nothing.
            Expr::VarIsText { var, text, negate } => text_of(ctx, var, |s| s == &**text) != *negate,
            Expr::VarAmong { var, texts, negate } => {
                text_of(ctx, var, |s| texts.iter().any(|t| &**t == s)) != *negate
            }
            Expr::Call(call) => matches!(self.call(call, ctx), Some(Value::Bool(true))),
            _ => false,
        }
    }

    fn compare(&self, op: CmpOp, ty: Type, lhs: &Expr, rhs: &Expr, ctx: &dyn Context) -> bool {
        use std::cmp::Ordering;
        let ordering: Option<Ordering> = match ty {
            Type::String | Type::Backend => {
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
            Type::Real => self.real(lhs, ctx).partial_cmp(&self.real(rhs, ctx)),
            Type::Time => self.time(lhs, ctx).partial_cmp(&self.time(rhs, ctx)),
            Type::Bytes => Some(self.bytes(lhs, ctx).cmp(&self.bytes(rhs, ctx))),
            Type::Bool => Some(self.boolean(lhs, ctx).cmp(&self.boolean(rhs, ctx))),
            Type::Ip => Some(if self.ip(lhs, ctx) == self.ip(rhs, ctx) {
                Ordering::Equal
            } else {
                Ordering::Less
            }),
        };
        lower::ordered(op, ordering)
    }
}

/// The built-in functions' evaluation.
impl Program {
    fn arg_str<'a>(&'a self, c: &'a Call, i: usize, ctx: &'a dyn Context) -> Option<Cow<'a, str>> {
        match c.args.get(i)? {
            Arg::Val(e, _) => self.string(e, ctx),
            _ => None,
        }
    }

    fn arg_val<'a>(&'a self, c: &'a Call, i: usize, ctx: &'a dyn Context) -> Option<Value<'a>> {
        match c.args.get(i)? {
            Arg::Val(e, Type::String) => self.string(e, ctx).map(Value::Str),
            Arg::Val(e, ty) => Some(self.value(e, *ty, ctx)),
            _ => None,
        }
    }

    fn arg_real(&self, c: &Call, i: usize, ctx: &dyn Context) -> f64 {
        match c.args.get(i) {
            Some(Arg::Val(e, _)) => self.real(e, ctx),
            _ => 0.0,
        }
    }

    fn arg_bool(&self, c: &Call, i: usize, ctx: &dyn Context) -> bool {
        match c.args.get(i) {
            Some(Arg::Val(e, _)) => self.boolean(e, ctx),
            _ => false,
        }
    }

    /// A conversion function: the first source given (the checker lets
    /// exactly one through) converted by `convert`; else the fallback
    /// (argument 1); else the statement fails.
    fn convert<'a>(
        &'a self,
        c: &'a Call,
        name: &str,
        ctx: &'a dyn Context,
        convert: impl Fn(Value<'_>) -> Option<Value<'static>>,
    ) -> Option<Value<'a>> {
        let source = (0..c.args.len())
            .filter(|i| *i != 1)
            .find(|i| !matches!(c.args[*i], Arg::Absent));
        let converted = source
            .and_then(|i| self.arg_val(c, i, ctx))
            .and_then(convert);
        if converted.is_some() {
            return converted;
        }
        match self.arg_val(c, 1, ctx) {
            Some(fallback) => Some(fallback),
            None => {
                fail(|| format!("{name}: conversion failed and no fallback was given"));
                None
            }
        }
    }

    /// Runs a function; `None` is an unset STRING (or a failure). Kept
    /// out of line: inlined into the evaluator's recursive functions, it
    /// would grow their stack frames for every expression.
    #[inline(never)]
    fn call<'a>(&'a self, c: &'a Call, ctx: &'a dyn Context) -> Option<Value<'a>> {
        let finite = |x: f64| x.is_finite().then_some(x);
        let whole =
            |x: f64| (x.is_finite() && x.abs() < 9.2e18).then(|| Value::Int(x.floor() as i64));
        Some(match c.func {
            Func::Tolower | Func::Toupper => {
                let s = self.arg_str(c, 0, ctx)?;
                let lower = c.func == Func::Tolower;
                let changes = if lower {
                    s.bytes().any(|b| b.is_ascii_uppercase())
                } else {
                    s.bytes().any(|b| b.is_ascii_lowercase())
                };
                Value::Str(match (changes, lower) {
                    (false, _) => s,
                    (true, true) => Cow::Owned(s.to_ascii_lowercase()),
                    (true, false) => Cow::Owned(s.to_ascii_uppercase()),
                })
            }
            Func::Strstr => {
                let s1 = self.arg_str(c, 0, ctx)?;
                let s2 = self.arg_str(c, 1, ctx)?;
                let at = s1.find(&*s2)?;
                Value::Str(match s1 {
                    Cow::Borrowed(b) => Cow::Borrowed(&b[at..]),
                    Cow::Owned(o) => Cow::Owned(o[at..].to_string()),
                })
            }
            Func::Querysort => {
                let url = self.arg_str(c, 0, ctx)?;
                match stdlib::querysort(&url) {
                    Some(sorted) => Value::Str(Cow::Owned(sorted)),
                    None => Value::Str(url),
                }
            }
            Func::Fnmatch => {
                let pattern = self.arg_str(c, 0, ctx).unwrap_or_default();
                let subject = self.arg_str(c, 1, ctx).unwrap_or_default();
                let flags = stdlib::Glob {
                    pathname: self.arg_bool(c, 2, ctx),
                    noescape: self.arg_bool(c, 3, ctx),
                    period: self.arg_bool(c, 4, ctx),
                };
                Value::Bool(stdlib::fnmatch(&pattern, &subject, flags))
            }
            Func::Fileread => {
                let path = self.arg_str(c, 0, ctx)?;
                Value::Str(Cow::Owned(stdlib::fileread(&path)?.to_string()))
            }
            Func::FileExists => {
                let path = self.arg_str(c, 0, ctx).unwrap_or_default();
                Value::Bool(std::path::Path::new(&*path).exists())
            }
            Func::Getenv => {
                let name = self.arg_str(c, 0, ctx)?;
                Value::Str(Cow::Owned(std::env::var(&*name).ok()?))
            }
            Func::Random => {
                let (lo, hi) = (self.arg_real(c, 0, ctx), self.arg_real(c, 1, ctx));
                Value::Real(stdlib::random(lo, hi))
            }
            Func::Round => Value::Real(self.arg_real(c, 0, ctx).round()),
            Func::Integer => self.convert(c, "std.integer", ctx, |v| match v {
                Value::Str(s) => s.trim().parse().ok().map(Value::Int),
                Value::Bool(b) => Some(Value::Int(i64::from(b))),
                Value::Bytes(b) => Some(Value::Int(b)),
                Value::Duration(d) | Value::Real(d) | Value::Time(d) => whole(d),
                _ => None,
            })?,
            Func::Real => self.convert(c, "std.real", ctx, |v| match v {
                Value::Str(s) => s.trim().parse().ok().and_then(finite).map(Value::Real),
                Value::Int(i) | Value::Bytes(i) => Some(Value::Real(i as f64)),
                Value::Bool(b) => Some(Value::Real(if b { 1.0 } else { 0.0 })),
                Value::Duration(d) | Value::Time(d) => Some(Value::Real(d)),
                _ => None,
            })?,
            Func::Duration => self.convert(c, "std.duration", ctx, |v| match v {
                Value::Str(s) => parse_duration(&s).map(Value::Duration),
                Value::Real(r) => finite(r).map(Value::Duration),
                Value::Int(i) => Some(Value::Duration(i as f64)),
                _ => None,
            })?,
            Func::Bytes => self.convert(c, "std.bytes", ctx, |v| match v {
                Value::Str(s) => stdlib::parse_bytes(&s).map(Value::Bytes),
                Value::Real(r) => match whole(r) {
                    Some(Value::Int(i)) => Some(Value::Bytes(i)),
                    _ => None,
                },
                Value::Int(i) => Some(Value::Bytes(i)),
                _ => None,
            })?,
            Func::Time => self.convert(c, "std.time", ctx, |v| match v {
                Value::Str(s) => stdlib::parse_time(&s).map(Value::Time),
                Value::Real(r) => finite(r).map(Value::Time),
                Value::Int(i) => Some(Value::Time(i as f64)),
                _ => None,
            })?,
            Func::Ip => {
                let parsed = self.arg_str(c, 0, ctx).and_then(|s| stdlib::parse_ip(&s));
                match (parsed, c.args.get(1)) {
                    (Some(ip), _) => Value::Ip(ip),
                    (None, Some(Arg::Val(e, _))) => Value::Ip(self.ip(e, ctx)),
                    _ => {
                        fail(|| "std.ip: not an IP address and no fallback was given".to_string());
                        return None;
                    }
                }
            }
            Func::Port => {
                let port = match c.args.first() {
                    Some(Arg::Val(Expr::ClientIp, _)) => ctx.port(&Var::ClientIp),
                    Some(Arg::Val(Expr::Var(var), _)) => ctx.port(var),
                    _ => None,
                };
                Value::Int(i64::from(port.unwrap_or(0)))
            }
            Func::Strftime => {
                let t = match c.args.first() {
                    Some(Arg::Val(e, _)) => self.time(e, ctx),
                    _ => 0.0,
                };
                let format = self.arg_str(c, 1, ctx).unwrap_or_default();
                Value::Str(Cow::Owned(stdlib::strftime(t, &format)))
            }
            Func::Real2Integer => match whole(self.arg_real(c, 0, ctx)) {
                Some(v) => v,
                None => self.arg_val(c, 1, ctx)?,
            },
            Func::Real2Time => match finite(self.arg_real(c, 0, ctx)) {
                Some(r) => Value::Time(r),
                None => self.arg_val(c, 1, ctx)?,
            },
            Func::Time2Integer | Func::Time2Real => {
                let t = match c.args.first() {
                    Some(Arg::Val(e, _)) => self.time(e, ctx),
                    _ => 0.0,
                };
                match (c.func, whole(t)) {
                    (Func::Time2Real, _) => Value::Real(t),
                    (_, Some(v)) => v,
                    _ => self.arg_val(c, 1, ctx)?,
                }
            }
            Func::Now => Value::Time(ctx.now()),
            Func::Healthy => match c.args.first() {
                // An unset backend (a director with none healthy) is sick.
                Some(Arg::Val(e, _)) => {
                    Value::Bool(self.string(e, ctx).is_some_and(|name| ctx.healthy(&name)))
                }
                _ => Value::Bool(true),
            },
            Func::StdBan => {
                let expr = self.arg_str(c, 0, ctx).unwrap_or_default();
                Value::Bool(ban(ctx, &expr))
            }
            Func::BanError => Value::Str(Cow::Owned(BAN_ERROR.with(|e| e.borrow().clone()))),
            Func::CacheReqBody => {
                let size = match c.args.first() {
                    Some(Arg::Val(e, _)) => self.bytes(e, ctx),
                    _ => 0,
                };
                Value::Bool(ctx.cache_req_body(size))
            }
            // Known when loading (`std.syntax`), or statements.
            Func::Syntax
            | Func::Regsub
            | Func::Regsuball
            | Func::Ban
            | Func::Log
            | Func::Syslog
            | Func::Timestamp
            | Func::Collect
            | Func::Rollback
            | Func::Late100Continue
            | Func::SetIpTos => return None,
            _ => return self.vmod_call(c, ctx),
        })
    }
}

/// `regsub` / `regsuball`: the first (or every) match replaced.
fn regsub<'a>(re: &Pattern, s: Cow<'a, str>, pieces: &[Piece], all: bool) -> Cow<'a, str> {
    let groups = pieces
        .iter()
        .any(|p| matches!(p, Piece::Group(g) if *g > 0));
    re.substitute(s, all, groups, |out, group| {
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
        logged: Vec<(Option<i64>, String)>,
        bans: std::cell::RefCell<Vec<String>>,
        now: f64,
        state: TaskState,
        purged: std::cell::RefCell<Vec<String>>,
        /// Answers [`Context::lends_text`].
        lend: bool,
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
        fn lends_text(&self) -> bool {
            self.lend
        }
        fn get(&self, var: &Var) -> Option<Value<'_>> {
            self.vars.get(var).map(|v| match v {
                Value::Str(s) => Value::Str(Cow::Borrowed(s)),
                other => other.clone(),
            })
        }
        fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
            if self.refuse {
                return Err("refused".to_string());
            }
            self.vars.insert(var.clone(), value.into_owned());
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
        /// Offered when lending, so `lent_text_answers_as_values` compares
        /// it with the copying way.
        fn hash_text_of(&mut self, var: &Var) -> bool {
            if !self.lend {
                return false;
            }
            let text = self.str(var).unwrap_or_default().to_string();
            self.hashed.push(text);
            true
        }
        fn synthetic(&mut self, body: &str) {
            self.body.push_str(body);
        }
        fn now(&self) -> f64 {
            self.now
        }
        fn ban(&self, expr: &str) -> Result<(), String> {
            if expr.contains(" ~ ") || expr.contains(" == ") {
                self.bans.borrow_mut().push(expr.to_string());
                Ok(())
            } else {
                Err(format!("bad ban {expr:?}"))
            }
        }
        fn log(&mut self, priority: Option<i64>, message: &str) {
            self.logged.push((priority, message.to_string()));
        }
        fn healthy(&self, backend: &str) -> bool {
            backend != "sick"
        }
        fn collect(&mut self, header: &Var, separator: &str) {
            if let Some(Value::Str(v)) = self.vars.get(header) {
                let joined = v.replace('\n', separator);
                self.vars.insert(header.clone(), Value::Str(joined.into()));
            }
        }
        fn port(&self, var: &Var) -> Option<u16> {
            (*var == Var::ClientIp).then_some(5555)
        }
        fn task_state(&self) -> Option<&TaskState> {
            Some(&self.state)
        }
        fn task_state_mut(&mut self) -> Option<&mut TaskState> {
            Some(&mut self.state)
        }
        // Several values of a header are kept joined by newlines.
        fn header_values(&self, var: &Var) -> Vec<String> {
            match self.vars.get(var) {
                Some(Value::Str(v)) => v.split('\n').map(str::to_string).collect(),
                _ => Vec::new(),
            }
        }
        fn set_header_values(&mut self, var: &Var, values: Vec<String>) -> Result<(), String> {
            if values.is_empty() {
                self.vars.remove(var);
            } else {
                self.vars
                    .insert(var.clone(), Value::Str(values.join("\n").into()));
            }
            Ok(())
        }
        fn xkey_purge(&self, keys: &str, soft: bool) -> i64 {
            let mode = if soft { "soft" } else { "hard" };
            self.purged.borrow_mut().push(format!("{mode} {keys}"));
            keys.split_whitespace().count() as i64
        }
        fn purge(&self, soft: Option<SoftPurge>) -> Result<i64, String> {
            self.purged.borrow_mut().push(format!("{soft:?}"));
            Ok(2)
        }
        fn proxy(&self, field: ProxyField) -> Option<Value<'_>> {
            match field {
                ProxyField::Alpn => Some(Value::Str("h2".into())),
                ProxyField::IsSsl => Some(Value::Bool(true)),
                _ => None,
            }
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

    /// The lowered statements share the checked program's compiled
    /// patterns (an automaton can be hundreds of KiB, and each copy grows
    /// search caches of its own on every worker thread): lowering once
    /// copied them, +6 MiB of peak RSS under production.vcl in the load
    /// bench.
    #[test]
    fn lowered_statements_share_the_patterns() {
        let p = program(
            r#"sub vcl_recv {
                if (req.url ~ "^/a") { return (pass); }
                if (req.url ~ "^/b" && req.http.x) { return (pass); }
                set req.http.y = regsub(req.url, "^/c", "");
            }"#,
        );
        let mut counts = Vec::new();
        for stmt in p.subs[Sub::Recv.index()].as_deref().unwrap_or_default() {
            match stmt {
                Stmt::If { branches, .. } => match &branches[0].0 {
                    Expr::Regex { re, .. } => counts.push(Arc::strong_count(re)),
                    Expr::And(items) => {
                        if let Some(Expr::Regex { re, .. }) = items.first() {
                            counts.push(Arc::strong_count(re));
                        }
                    }
                    _ => {}
                },
                Stmt::Set {
                    value: Expr::Regsub { re, .. },
                    ..
                } => counts.push(Arc::strong_count(re)),
                _ => {}
            }
        }
        // The program's node and the lowered closure's (or fallback's).
        assert_eq!(counts, [2, 2, 2]);
    }

    /// Every condition's lowered form ([`lower::test`]) answers as the
    /// interpreter's [`Program::boolean`], on hosts that lend text and
    /// hosts that do not, with the variables set, unset and of other
    /// values, and the client in and out of an ACL.
    #[test]
    fn lowered_conditions_answer_as_the_interpreter() {
        let p = program(
            r#"acl local { "127.0.0.1"; "10.0.0.0"/8; }
            sub vcl_recv {
                if (req.http.a) { }
                if (!req.http.a) { }
                if (req.http.a ~ "^x[0-9]+$") { }
                if (req.http.a !~ "(?i)Y") { }
                if (req.url ~ "\.css$" && req.http.b) { }
                if (req.url ~ "^/a" || !req.http.b || req.method == "POST") { }
                if (req.method == "GET") { }
                if (req.method != "GET" && req.method != "HEAD") { }
                if (req.http.a == "x1" || req.http.a == "y") { }
                if (client.ip ~ local) { }
                if (client.ip !~ local) { }
                if (req.http.a == req.http.b) { }
                if (std.tolower(req.http.a) ~ "y") { }
                if (req.restarts > 0) { }
                if (req.restarts == 2) { }
                if (req.restarts != 0) { }
                if (req.ttl >= 0s) { }
                if (req.ttl < 1s) { }
                if (req.ttl != 1s) { }
                if (true) { }
                if (false || req.http.c ~ "") { }
            }"#,
        );
        let mut conds = Vec::new();
        for stmt in p.subs[Sub::Recv.index()].as_deref().unwrap_or_default() {
            if let Stmt::If { branches, .. } = stmt {
                conds.extend(branches.iter().map(|(c, _)| c.clone()));
            }
        }
        assert_eq!(conds.len(), 21);
        let ips = [[127, 0, 0, 1], [10, 1, 2, 3], [192, 0, 2, 1]];
        let hosts = [
            TestCtx::default(),
            TestCtx::default()
                .header("a", "x12")
                .url("/a.css")
                .method("GET"),
            TestCtx::default()
                .header("a", "Y")
                .header("b", "Y")
                .method("HEAD")
                .with(Var::ReqRestarts, Value::Int(2))
                .with(Var::ReqTtl, Value::Duration(f64::NAN)),
            TestCtx::default()
                .header("a", "")
                .header("b", "")
                .method("POST")
                .with(Var::ReqTtl, Value::Duration(1.0)),
            TestCtx::default()
                .header("c", "é")
                .url("/b")
                .with(Var::ReqRestarts, Value::Int(1))
                .with(Var::ReqTtl, Value::Duration(0.5))
                .with(Var::ReqHttp(Header::new("a")), Value::Int(7)),
        ];
        let mut checked = 0;
        for (i, host) in hosts.into_iter().enumerate() {
            for (j, ip) in ips.iter().enumerate() {
                for lend in [false, true] {
                    let mut ctx = TestCtx {
                        vars: host.vars.clone(),
                        ip: Some(IpAddr::from(*ip)),
                        lend,
                        ..TestCtx::default()
                    };
                    // A host that lends a non-text value is not a host
                    // lacquer makes: only text is lent.
                    if lend && i == 4 {
                        ctx.vars.remove(&Var::ReqHttp(Header::new("a")));
                    }
                    LENDS_TEXT.with(|l| l.set(lend));
                    for cond in &conds {
                        let interpreted = p.boolean(cond, &ctx);
                        let lowered = lower::test(cond)(&Run::new(&p, &mut ctx));
                        assert_eq!(
                            lowered, interpreted,
                            "host {i}, ip {j}, lend {lend}: {cond:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        LENDS_TEXT.with(|l| l.set(false));
        assert_eq!(checked, 5 * 3 * 2 * 21);
    }

    /// Reading headers, URL and method through `Context::text` answers as
    /// reading them through `get`: the same actions, writes and key.
    #[test]
    fn lent_text_answers_as_values() {
        let src = r#"vcl 4.1;
            import std;
            sub vcl_recv {
                set req.url = std.querysort(req.url);
                set req.url = req.url;
                if (req.url ~ "^/b") { set req.url = regsub(req.url, "^/b", "/c"); }
                if (req.http.X-A) { set req.http.Seen-A = "1"; }
                if (!req.http.X-Missing) { set req.http.Seen-Missing = "no"; }
                if (req.http.X-A ~ "^b") { set req.http.Starts-B = req.http.X-A; }
                if (req.http.X-A == "bee") { set req.http.Is-Bee = "yes"; }
                if (req.method != "GET" && req.method != "HEAD") { return (pass); }
                if (req.url ~ "\.css$") { set req.http.Static = "1"; }
                set req.http.Joined = req.method + " " + req.url + " " + req.http.X-A + "|" + req.http.X-Missing;
                set req.http.Sub = regsub(req.http.X-A, "e+", "E");
                if (req.http.X-A != "other") { set req.http.Not-Other = "1"; }
                return (hash);
            }
            sub vcl_hash { hash_data(req.url); hash_data(req.http.X-A); hash_data(req.http.X-Missing); }
        "#;
        let p = program(src);
        let inputs = [
            ("GET", "/a.css", Some("bee")),
            ("POST", "/", Some("x")),
            ("HEAD", "/b", None),
            ("GET", "/q?z=1&a=2", Some("bee")),
            ("GET", "/b?a=1&z=2", None),
        ];
        for (method, url, a) in inputs {
            let mut runs = Vec::new();
            for lend in [false, true] {
                let mut ctx = TestCtx {
                    lend,
                    ..TestCtx::default()
                }
                .method(method)
                .url(url);
                if let Some(a) = a {
                    ctx = ctx.header("X-A", a);
                }
                let action = recv(&p, &mut ctx);
                p.run(Sub::Hash, &mut ctx).unwrap();
                let mut vars: Vec<String> =
                    ctx.vars.iter().map(|(k, v)| format!("{k:?}={v}")).collect();
                vars.sort();
                runs.push((format!("{action:?}"), vars, ctx.hashed.clone()));
            }
            assert_eq!(runs[0], runs[1], "{method} {url} {a:?}");
        }
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
    fn a_variable_compared_with_text_either_way_round() {
        let p = program(
            r#"sub vcl_recv {
                if ("PURGE" == req.method) { return (synth(701)); }
                if (req.http.a == "x") { return (synth(702)); }
                if ("y" != req.http.b) { return (synth(703)); }
                return (synth(704));
            }"#,
        );
        let status = |ctx: &mut TestCtx| match recv(&p, ctx) {
            Some(Action::Synth { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(&mut TestCtx::default().method("PURGE")), 701);
        assert_eq!(
            status(&mut TestCtx::default().method("purge").header("a", "x")),
            702
        );
        // An unset header equals no text and differs from every text.
        assert_eq!(status(&mut TestCtx::default().method("GET")), 703);
        assert_eq!(
            status(&mut TestCtx::default().header("a", "X").header("b", "y")),
            704
        );
    }

    #[test]
    fn a_variable_among_texts_is_read_once_and_answers_as_the_chain() {
        let p = program(
            r#"sub vcl_recv {
                if (req.method == "PURGE" || req.method == "BAN") { return (synth(701)); }
                if (req.method != "GET" && req.method != "HEAD") { return (synth(702)); }
                if (req.http.a != "x" && req.http.a != "y" && req.http.a != "z") {
                    return (synth(703));
                }
                if (req.http.b == "1" || req.http.c == "1") { return (synth(704)); }
                return (synth(705));
            }"#,
        );
        // The lists became one test each; the last (two variables) did not.
        let mut amongs = 0;
        let body = p.subs[Sub::Recv.index()].as_ref().expect("vcl_recv");
        for stmt in body {
            if let Stmt::If { branches, .. } = stmt {
                amongs += usize::from(matches!(branches[0].0, Expr::VarAmong { .. }));
            }
        }
        assert_eq!(amongs, 3);
        let status = |ctx: &mut TestCtx| match recv(&p, ctx) {
            Some(Action::Synth { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(&mut TestCtx::default().method("BAN")), 701);
        assert_eq!(status(&mut TestCtx::default().method("POST")), 702);
        assert_eq!(status(&mut TestCtx::default().method("get")), 702);
        // Unset: among no texts, so "not among" holds.
        assert_eq!(status(&mut TestCtx::default().method("GET")), 703);
        let base = || TestCtx::default().method("HEAD").header("a", "y");
        assert_eq!(status(&mut base()), 705);
        assert_eq!(status(&mut base().header("c", "1")), 704);
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
        // Without a duration: hit-for-pass for the answer's TTL (Varnish).
        let p = program("sub vcl_backend_response { return (pass); }");
        let mut ctx = TestCtx::default().with(Var::BerespTtl, Value::Duration(300.0));
        assert_eq!(
            p.run(Sub::BackendResponse, &mut ctx).unwrap(),
            Some(Action::HitForPass { ttl: 300.0 })
        );
        let p = program(r#"sub vcl_recv { return (fail("no backend for " + req.url)); }"#);
        assert_eq!(
            p.run(Sub::Recv, &mut TestCtx::default()).unwrap(),
            Some(Action::Fail)
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
        assert_eq!(recv(&p, &mut ctx), Some(Action::Pipe));
        let mut ctx = TestCtx::default().method("PRI");
        assert_eq!(
            recv(&p, &mut ctx),
            Some(Action::Synth {
                status: 405,
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

    fn run_recv(src: &str, ctx: &mut TestCtx) -> Result<Option<Action>, RuntimeError> {
        program(&format!("sub vcl_recv {{ {src} }}")).run(Sub::Recv, ctx)
    }

    fn header_after(src: &str, name: &str) -> String {
        let mut ctx = TestCtx {
            now: 784_111_777.0,
            ..TestCtx::default()
        };
        run_recv(src, &mut ctx).unwrap();
        ctx.req_header(name).unwrap_or("(unset)").to_string()
    }

    #[test]
    fn time_real_and_bytes_arithmetic() {
        let h = |e: &str| header_after(&format!("set req.http.x = {e};"), "x");
        assert_eq!(h("now"), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(h("now + 1d"), "Mon, 07 Nov 1994 08:49:37 GMT");
        assert_eq!(h("now - 1h - now"), "-3600.000");
        assert_eq!(h("1.5 * 2"), "3.000");
        assert_eq!(h("7 / 2"), "3");
        assert_eq!(h("7 / 2.0"), "3.500");
        assert_eq!(h("2 * 1m + 1s"), "121.000");
        assert_eq!(h("1h / 30m"), "2.000");
        assert_eq!(h("1m * 1.5"), "90.000");
        assert_eq!(h("1KB + 24B"), "1048");
        assert_eq!(h("-1.25"), "-1.250");
        assert_eq!(h("2 + 3 * 4 - 6 / 3"), "12");
        assert_eq!(h("\"t=\" + 1.5"), "t=1.500");
        let cond = |c: &str| header_after(&format!("if ({c}) {{ set req.http.x = \"y\"; }}"), "x");
        assert_eq!(cond("now > now - 1s"), "y");
        assert_eq!(cond("1.5 > 1"), "y");
        assert_eq!(cond("1 < 0.5"), "(unset)");
        assert_eq!(cond("1MB >= 1024KB"), "y");
        // INT and DURATION conditions, as Varnish: not 0, above 0.
        assert_eq!(cond("req.restarts"), "(unset)");
        assert_eq!(cond("req.restarts + 2"), "y");
        assert_eq!(cond("!(0 - 1)"), "(unset)");
        assert_eq!(cond("1s"), "y");
        assert_eq!(cond("0s - 1s"), "(unset)");
        let mut ctx = TestCtx::default();
        let err = run_recv(
            "set req.http.x = 1 / (req.restarts - req.restarts);",
            &mut ctx,
        )
        .unwrap_err();
        assert_eq!(err.message, "INT division by zero");
        let err = run_recv("if (1.0 / 0 > 1) { }", &mut ctx).unwrap_err();
        assert_eq!(err.message, "division by zero");
        let p = program("sub vcl_backend_response { set beresp.ttl *= 2; set beresp.grace = beresp.ttl / 4; set beresp.keep /= 2; }");
        let mut ctx = TestCtx::default()
            .with(Var::BerespTtl, Value::Duration(60.0))
            .with(Var::BerespKeep, Value::Duration(10.0));
        p.run(Sub::BackendResponse, &mut ctx).unwrap();
        assert_eq!(ctx.vars.get(&Var::BerespTtl), Some(&Value::Duration(120.0)));
        assert_eq!(
            ctx.vars.get(&Var::BerespGrace),
            Some(&Value::Duration(30.0))
        );
        assert_eq!(ctx.vars.get(&Var::BerespKeep), Some(&Value::Duration(5.0)));
    }

    #[test]
    fn conversions_with_named_arguments_and_fallbacks() {
        let h = |e: &str| header_after(&format!("set req.http.x = {e};"), "x");
        assert_eq!(h("std.integer(\" 42 \", 0)"), "42");
        assert_eq!(h("std.integer(s = \"x\", fallback = 7)"), "7");
        assert_eq!(h("std.integer(real = 2.9)"), "2");
        assert_eq!(h("std.integer(real = -2.5)"), "-3");
        assert_eq!(h("std.integer(bool = true)"), "1");
        assert_eq!(h("std.integer(duration = 1m)"), "60");
        assert_eq!(h("std.integer(time = now)"), "784111777");
        assert_eq!(h("std.integer(bytes = 2KB)"), "2048");
        assert_eq!(h("std.real(\"1.25\", 0)"), "1.250");
        assert_eq!(h("std.real(s = \"nan\", fallback = 2)"), "2.000");
        assert_eq!(h("std.real(integer = 3)"), "3.000");
        assert_eq!(
            h("std.real(time = std.time(\"1970-01-01T00:00:10\", now))"),
            "10.000"
        );
        assert_eq!(h("std.duration(\"1.5m\", 0s)"), "90.000");
        assert_eq!(h("std.duration(real = 1.5)"), "1.500");
        assert_eq!(h("std.duration(integer = 2)"), "2.000");
        assert_eq!(h("std.bytes(\"1.5KB\", 0B)"), "1536");
        assert_eq!(h("std.bytes(\"lots\", 1MB)"), "1048576");
        assert_eq!(
            h("std.time(\"Sun, 06 Nov 1994 08:49:37 GMT\", now - 1d)"),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            h("std.time(\"garbage\", now - 1d)"),
            "Sat, 05 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(h("std.time(integer = 0)"), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(h("std.ip(\"192.0.2.7\", \"0.0.0.0\")"), "192.0.2.7");
        assert_eq!(h("std.ip(\"nope\", client.ip)"), "127.0.0.1");
        assert_eq!(h("std.port(client.ip)"), "5555");
        assert_eq!(h("std.port(std.ip(\"192.0.2.7\", client.ip))"), "0");
        assert_eq!(h("std.real2integer(1.9, 0)"), "1");
        assert_eq!(h("std.time2integer(now, 0)"), "784111777");
        assert_eq!(h("std.time2real(std.real2time(1.5, now), 0)"), "1.500");
        // Without a fallback, a failed conversion fails the subroutine.
        let mut ctx = TestCtx::default().header("n", "x");
        let err = run_recv("set req.http.x = std.integer(req.http.n);", &mut ctx).unwrap_err();
        assert_eq!(
            err.message,
            "std.integer: conversion failed and no fallback was given"
        );
        assert_eq!((err.location.line, err.location.column), (1, 16));
        let p = program(
            "sub vcl_hash { hash_data(req.url); hash_data(std.integer(req.http.n) + \"\"); }",
        );
        let err = p.run(Sub::Hash, &mut ctx).unwrap_err();
        assert!(err.message.starts_with("std.integer:"), "{err}");
        assert!(ctx.hashed.len() == 1, "{:?}", ctx.hashed);
        let err = run_recv("if (std.ip(req.http.n) == client.ip) {}", &mut ctx).unwrap_err();
        assert!(err.message.starts_with("std.ip:"), "{err}");
    }

    #[test]
    fn string_functions() {
        let h = |e: &str| header_after(&format!("set req.http.x = {e};"), "x");
        assert_eq!(h("std.strstr(\"/a/b/c\", \"/b\")"), "/b/c");
        assert_eq!(h("std.strstr(\"/a\", \"/z\")"), "");
        assert_eq!(h("std.querysort(\"/p?z=1&a=2&&m\")"), "/p?a=2&m&z=1");
        assert_eq!(h("std.toupper(s = \"ab\") + std.tolower(\"CD\")"), "ABcd");
        assert_eq!(h("std.fnmatch(\"/static/*\", \"/static/a.css\")"), "true");
        assert_eq!(
            h("std.fnmatch(\"/static/*\", \"/static/x/a.css\")"),
            "false"
        );
        assert_eq!(
            h("std.fnmatch(\"/static/*\", \"/static/x/a.css\", pathname = false)"),
            "true"
        );
        assert_eq!(h("std.round(2.5) + std.round(-2.5)"), "0.000");
        assert_eq!(
            h("std.strftime(now, \"%Y-%m-%d %H:%M\")"),
            "1994-11-06 08:49"
        );
        assert_eq!(h("std.syntax(4.0)"), "true");
        assert_eq!(h("std.syntax(4.2)"), "false");
        assert_eq!(h("std.file_exists(\"/nonexistent/x\")"), "false");
        assert_eq!(h("std.getenv(\"VCL_LITE_SURELY_UNSET_VARIABLE\")"), "");
        assert_eq!(
            h("std.getenv(\"PATH\")"),
            std::env::var("PATH").unwrap_or_default()
        );
        assert_eq!(h("std.fileread(\"/nonexistent/x\")"), "");
        let r: f64 = h("std.random(1, 2)").parse().unwrap();
        assert!((1.0..=2.0).contains(&r));
        let path = std::env::temp_dir().join(format!("vcl-lite-fileread-{}", std::process::id()));
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(h(&format!("std.fileread(\"{}\")", path.display())), "hello");
        let _ = std::fs::remove_file(&path);
        let mut ctx = TestCtx::default();
        ctx.vars
            .insert(Var::ReqHttp(Header::new("a")), Value::Str("1\n2".into()));
        run_recv(
            "std.collect(req.http.a); std.collect(req.http.b, sep = \"|\");",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(ctx.req_header("a"), Some("1, 2"));
    }

    #[test]
    fn host_functions_ban_log_healthy() {
        let p = program(
            r#"backend web { .host = "127.0.0.1"; } backend sick { .host = "127.0.0.1"; }
            sub vcl_recv {
                std.log("recv " + req.url);
                std.syslog(3, "bad");
                ban("obj.http.X-Tags ~ " + req.http.tags);
                if (std.ban("obj.status == 200")) { set req.http.ok = "1"; }
                if (!std.ban("nonsense")) { set req.http.err = std.ban_error(); }
                set req.http.h = std.healthy(web) + "/" + std.healthy(sick);
                std.timestamp("x"); std.set_ip_tos(0); std.late_100_continue(true);
                std.cache_req_body(1MB);
                set req.http.c = std.cache_req_body(size = 10KB);
            }"#,
        );
        let mut ctx = TestCtx::default().url("/u").header("tags", "a|b");
        p.run(Sub::Recv, &mut ctx).unwrap();
        assert_eq!(
            ctx.logged,
            vec![(None, "recv /u".to_string()), (Some(3), "bad".to_string())]
        );
        assert_eq!(
            *ctx.bans.borrow(),
            vec![
                "obj.http.X-Tags ~ a|b".to_string(),
                "obj.status == 200".to_string()
            ]
        );
        assert_eq!(ctx.req_header("ok"), Some("1"));
        assert_eq!(ctx.req_header("err"), Some("bad ban \"nonsense\""));
        assert_eq!(ctx.req_header("h"), Some("true/false"));
        assert_eq!(ctx.req_header("c"), Some("true"));
        // A host without bans refuses them; rollback is refused by default.
        let err = run_recv("std.rollback(req);", &mut TestCtx::default()).unwrap_err();
        assert_eq!(err.message, "std.rollback is not available here");
        let p = program("sub vcl_recv { if (req.url) { call r; } } sub r { std.rollback(req); }");
        assert!(p.calls("std.rollback"));
        assert!(!p.calls("std.log"));
        assert!(!p.calls("nope"));
    }

    #[test]
    fn new_variables_read_through_the_host() {
        let p = program(
            r#"sub vcl_recv { set req.http.a = server.ip + " " + local.ip + " " + remote.ip + " " + client.identity + " " + req.xid + " " + req.is_hitmiss + req.is_hitpass; }"#,
        );
        let mut ctx = TestCtx::default()
            .with(Var::ServerIp, Value::Ip("192.0.2.1".parse().unwrap()))
            .with(Var::LocalIp, Value::Ip("192.0.2.1".parse().unwrap()))
            .with(Var::RemoteIp, Value::Ip("192.0.2.2".parse().unwrap()))
            .with(Var::ClientIdentity, Value::Str("me".into()))
            .with(Var::ReqXid, Value::Str("1001".into()))
            .with(Var::ReqIsHitmiss, Value::Bool(false))
            .with(Var::ReqIsHitpass, Value::Bool(true));
        recv(&p, &mut ctx);
        assert_eq!(
            ctx.req_header("a"),
            Some("192.0.2.1 192.0.2.1 192.0.2.2 me 1001 falsetrue")
        );
    }

    #[test]
    fn vmod_cookie() {
        let p = program(
            r#"import cookie;
            sub vcl_recv {
                cookie.parse(req.http.cookie);
                cookie.keep("a,b,c");
                cookie.delete("c");
                cookie.set("z", "26");
                set req.http.a = cookie.get("a") + "|" + cookie.get("nope") + "|" + cookie.isset("b") + cookie.isset("c");
                set req.http.re = cookie.get_re("^[bz]$");
                set req.http.cookie = cookie.get_string();
                cookie.filter_re("^[ab]$");
                set req.http.left = cookie.get_string();
                cookie.parse("s1=1; s2=2; t=3");
                cookie.keep_re("^s");
                cookie.filter("s2");
                set req.http.s = cookie.get_string();
                cookie.clean();
                set req.http.e = "[" + cookie.get_string() + "]";
                set req.http.x = cookie.format_rfc1123(now, 1d);
            }
            sub vcl_hash { hash_data(cookie.get("z")); }"#,
        );
        let mut ctx = TestCtx::default().header("cookie", "a=1; junk=x; b=2; c=3; d");
        ctx.now = 784_111_777.0;
        recv(&p, &mut ctx);
        assert_eq!(ctx.req_header("a"), Some("1||truefalse"));
        assert_eq!(ctx.req_header("re"), Some("2"));
        assert_eq!(ctx.req_header("cookie"), Some("a=1; b=2; z=26;"));
        assert_eq!(ctx.req_header("left"), Some("z=26;"));
        assert_eq!(ctx.req_header("s"), Some("s1=1;"));
        assert_eq!(ctx.req_header("e"), Some("[]"));
        assert_eq!(ctx.req_header("x"), Some("Mon, 07 Nov 1994 08:49:37 GMT"));
        // The jar lives as long as the task: vcl_hash sees what recv left.
        ctx.state.cookie_set("z", "9");
        p.run(Sub::Hash, &mut ctx).unwrap();
        assert_eq!(ctx.hashed, vec!["9"]);
    }

    #[test]
    fn vmod_header() {
        let p = program(
            r#"import header;
            sub vcl_deliver {
                header.remove(resp.http.set-cookie, "^tracking=");
                header.append(resp.http.set-cookie, "added=1");
                set resp.http.s = header.get(resp.http.set-cookie, "^sess");
                set resp.http.none = header.get(resp.http.set-cookie, "^nope") + "";
                header.copy(resp.http.set-cookie, resp.http.x-copy);
                header.copy(resp.http.absent, resp.http.x-none);
                header.remove(resp.http.x-copy, ".");
            }"#,
        );
        let cookies = Var::RespHttp(Header::new("set-cookie"));
        let mut ctx = TestCtx::default().with(
            cookies.clone(),
            Value::Str("tracking=1\nsess=abc; HttpOnly\n tracking=2".into()),
        );
        p.run(Sub::Deliver, &mut ctx).unwrap();
        assert_eq!(ctx.str(&cookies), Some("sess=abc; HttpOnly\nadded=1"));
        assert_eq!(
            ctx.str(&Var::RespHttp(Header::new("s"))),
            Some("sess=abc; HttpOnly")
        );
        assert_eq!(ctx.str(&Var::RespHttp(Header::new("none"))), Some(""));
        assert_eq!(ctx.str(&Var::RespHttp(Header::new("x-copy"))), None);
        assert_eq!(ctx.str(&Var::RespHttp(Header::new("x-none"))), None);
        // varnish-modules' own example: a look-ahead keeps one cookie.
        let p = program(
            r#"import header; sub vcl_deliver { header.remove(resp.http.set-cookie, "^(?!(funcookie=))"); }"#,
        );
        let mut ctx =
            TestCtx::default().with(cookies.clone(), Value::Str("a=1\nfuncookie=2\nb=3".into()));
        p.run(Sub::Deliver, &mut ctx).unwrap();
        assert_eq!(ctx.str(&cookies), Some("funcookie=2"));
    }

    #[test]
    fn vmod_var() {
        let p = program(
            r#"import var;
            sub vcl_init { var.global_set("g", "global"); }
            sub vcl_recv {
                var.set("a", "x");
                var.set_int("n", 40 + 2);
                var.set_real("r", 1.5);
                var.set_duration("d", 1m);
                var.set_ip("i", client.ip);
                set req.http.v = var.get("a") + var.get_string("a") + "|" + var.get("n") + "|" + var.get_int("n") + "|" + var.get_int("a")
                    + "|" + var.get_real("r") + "|" + var.get_duration("d") + "|" + var.get_ip("i") + "|" + var.get_ip("zz")
                    + "|" + var.global_get("g") + var.global_get("nope");
            }
            sub vcl_deliver { set resp.http.n = var.get_int("n"); var.clear(); set resp.http.m = var.get_int("n"); }"#,
        );
        p.init().unwrap();
        let mut ctx = TestCtx::default();
        recv(&p, &mut ctx);
        assert_eq!(
            ctx.req_header("v"),
            Some("xx||42|0|1.500|60.000|127.0.0.1|0.0.0.0|global")
        );
        p.run(Sub::Deliver, &mut ctx).unwrap();
        assert_eq!(ctx.str(&Var::RespHttp(Header::new("n"))), Some("42"));
        assert_eq!(ctx.str(&Var::RespHttp(Header::new("m"))), Some("0"));
    }

    #[test]
    fn vmod_xkey_purge_proxy() {
        let p = program(
            r#"import xkey; import purge; import proxy;
            sub vcl_recv {
                set req.http.n = xkey.purge(req.http.keys);
                xkey.softpurge("c");
                set req.http.p = proxy.alpn() + "|" + proxy.is_ssl() + "|" + proxy.authority() + "|" + proxy.client_has_cert_conn() + "|" + proxy.ssl_verify_result();
            }
            sub vcl_hit { set req.http.h = purge.hard(); set req.http.s = purge.soft(grace = 10s); }
            sub vcl_miss { if (purge.soft() > 0) { return (synth(200)); } }"#,
        );
        let mut ctx = TestCtx::default().header("keys", "a b");
        recv(&p, &mut ctx);
        assert_eq!(ctx.req_header("n"), Some("2"));
        assert_eq!(ctx.req_header("p"), Some("h2|true||false|0"));
        p.run(Sub::Hit, &mut ctx).unwrap();
        assert_eq!(ctx.req_header("h"), Some("2"));
        assert_eq!(
            p.run(Sub::Miss, &mut ctx).unwrap(),
            Some(Action::Synth {
                status: 200,
                reason: None
            })
        );
        assert_eq!(
            *ctx.purged.borrow(),
            vec![
                "hard a b".to_string(),
                "soft c".to_string(),
                "None".to_string(),
                "Some(SoftPurge { ttl: 0.0, grace: Some(10.0), keep: None })".to_string(),
                "Some(SoftPurge { ttl: 0.0, grace: None, keep: None })".to_string(),
            ]
        );
    }

    #[test]
    fn vmods_without_host_support_do_nothing() {
        struct Bare;
        impl Context for Bare {
            fn get(&self, _: &Var) -> Option<Value<'_>> {
                None
            }
            fn set(&mut self, _: &Var, _: Value<'_>) -> Result<(), String> {
                Ok(())
            }
            fn unset(&mut self, _: &Var) {}
            fn client_ip(&self) -> IpAddr {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            fn hash_data(&mut self, _: &str) {}
            fn synthetic(&mut self, _: &str) {}
        }
        let p = program(
            r#"import cookie; import var; import purge;
            sub vcl_recv { cookie.parse("a=1"); var.set("x", "1"); if (cookie.isset("a") || var.get("x")) { return (fail); } }
            sub vcl_hit { set req.http.x = purge.hard(); }"#,
        );
        assert_eq!(p.run(Sub::Recv, &mut Bare).unwrap(), None);
        let err = p.run(Sub::Hit, &mut Bare).unwrap_err();
        assert_eq!(err.message, "vmod purge is not available here");
    }
}
