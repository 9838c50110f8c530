//! The built-in functions — `regsub`, `regsuball`, `ban` and Varnish 7's
//! vmod std — in one table: each one's parameters (name, type, default),
//! what it returns, where it may be used and whether it needs the host.
//! The checker matches calls against it (positional and named arguments,
//! as in `std.integer(s, fallback=0)`); the README's function table is
//! made from it.

use crate::vars::{self, Mask, Sub, Type};
use crate::vmods::ProxyField;

/// `req` or `bereq`: what `std.rollback` puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpPart {
    /// The client request, as received.
    Req,
    /// The backend request, as first made from the client request.
    Bereq,
}

/// What a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    /// A value of this type (INT also where REAL is expected).
    Val(Type),
    /// A regular expression: a string literal, compiled when loading.
    Regex,
    /// A header variable (`req.http.X`) the function changes:
    /// `std.collect`, `header.append`.
    Header,
    /// A header variable the function only reads: `header.get`.
    HeaderIn,
    /// `req` or `bereq`: `std.rollback`.
    Http,
    /// A declared backend's name: `std.healthy`.
    Backend,
}

impl ParamType {
    pub(crate) fn name(self) -> String {
        match self {
            ParamType::Val(t) => t.to_string(),
            ParamType::Regex => "REGEX".to_string(),
            ParamType::Header | ParamType::HeaderIn => "HEADER".to_string(),
            ParamType::Http => "HTTP".to_string(),
            ParamType::Backend => "BACKEND".to_string(),
        }
    }
}

/// A parameter's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Default {
    /// It must be given.
    Required,
    /// It may be left out (`[STRING s]` in Varnish's docs).
    Optional,
    /// Left out, it is this STRING.
    Str(&'static str),
    /// Left out, it is this BOOL.
    Bool(bool),
    /// Left out, it is this DURATION (seconds).
    Dur(f64),
}

/// A parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) ty: ParamType,
    pub(crate) default: Default,
}

/// Which function (what the evaluator runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Regsub,
    Regsuball,
    Ban,
    StdBan,
    BanError,
    Tolower,
    Toupper,
    Strstr,
    Querysort,
    Fnmatch,
    Fileread,
    FileExists,
    Getenv,
    Random,
    Round,
    Integer,
    Real,
    Duration,
    Bytes,
    Time,
    Ip,
    Port,
    Strftime,
    Real2Integer,
    Real2Time,
    Time2Integer,
    Time2Real,
    Now,
    Syntax,
    Healthy,
    Log,
    Syslog,
    Timestamp,
    Collect,
    Rollback,
    CacheReqBody,
    Late100Continue,
    SetIpTos,
    CookieParse,
    CookieClean,
    CookieSet,
    CookieDelete,
    CookieFilter,
    CookieKeep,
    CookieFilterRe,
    CookieKeepRe,
    CookieGet,
    CookieGetRe,
    CookieIsset,
    CookieGetString,
    CookieFormatRfc1123,
    HeaderAppend,
    HeaderCopy,
    HeaderGet,
    HeaderRemove,
    /// `var.set`, `var.set_int`, …: a task variable of this type.
    VarSet(Type),
    /// `var.get`, `var.get_int`, …
    VarGet(Type),
    VarClear,
    VarGlobalSet,
    VarGlobalGet,
    XkeyPurge,
    XkeySoftpurge,
    PurgeHard,
    PurgeSoft,
    Proxy(ProxyField),
}

/// A built-in function.
pub(crate) struct FuncDef {
    pub(crate) name: &'static str,
    pub(crate) params: &'static [Param],
    /// `None`: VOID (a statement).
    pub(crate) ret: Option<Type>,
    /// Exactly one of these parameters must be given (the sources of the
    /// conversion functions: `std.integer(s=…)`, `std.integer(real=…)`).
    pub(crate) one_of: &'static [&'static str],
    /// It acts on the request or the proxy (through the host): it may be
    /// called as a statement, its result then ignored.
    pub(crate) effect: bool,
    /// Where it may be used.
    pub(crate) only: Mask,
    pub(crate) func: Func,
    pub(crate) doc: &'static str,
}

impl FuncDef {
    /// `std.integer([STRING s], [INT fallback], …) -> INT`, as in Varnish's
    /// docs.
    pub(crate) fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                let ty = p.ty.name();
                match p.default {
                    Default::Required => format!("{ty} {}", p.name),
                    Default::Optional => format!("[{ty} {}]", p.name),
                    Default::Str(s) => format!("{ty} {}=\"{s}\"", p.name),
                    Default::Bool(b) => format!("{ty} {}={b}", p.name),
                    Default::Dur(d) => format!("{ty} {}={d}", p.name),
                }
            })
            .collect();
        let ret = self.ret.map_or("VOID".to_string(), |t| t.to_string());
        format!("{ret} {}({})", self.name, params.join(", "))
    }

    /// Its parameters, for "expected …" labels.
    pub(crate) fn names(&self) -> String {
        let names: Vec<&str> = self.params.iter().map(|p| p.name).collect();
        names.join(", ")
    }
}

const fn req(name: &'static str, ty: Type) -> Param {
    Param {
        name,
        ty: ParamType::Val(ty),
        default: Default::Required,
    }
}

const fn opt(name: &'static str, ty: Type) -> Param {
    Param {
        name,
        ty: ParamType::Val(ty),
        default: Default::Optional,
    }
}

const fn flag(name: &'static str, default: bool) -> Param {
    Param {
        name,
        ty: ParamType::Val(Type::Bool),
        default: Default::Bool(default),
    }
}

const S: Type = Type::String;
const CLIENT_BACKEND: Mask = vars::ALL;
const ANYWHERE: Mask = Mask(vars::ALL.0 | Mask::of(&[Sub::Init, Sub::Fini]).0);
const RECV: Mask = Mask::of(&[Sub::Recv]);
const HIT_MISS: Mask = Mask::of(&[Sub::Hit, Sub::Miss]);

const fn regex(name: &'static str) -> Param {
    Param {
        name,
        ty: ParamType::Regex,
        default: Default::Required,
    }
}

const fn header(name: &'static str, ty: ParamType) -> Param {
    Param {
        name,
        ty,
        default: Default::Required,
    }
}

const fn dur(name: &'static str, default: f64) -> Param {
    Param {
        name,
        ty: ParamType::Val(Type::Duration),
        default: Default::Dur(default),
    }
}

macro_rules! f {
    ($name:expr, $func:ident, [$($p:expr),*], $ret:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: false, only: ANYWHERE, func: Func::$func, doc: $doc }
    };
    ($name:expr, $func:ident, [$($p:expr),*], $ret:expr, effect in $only:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: true, only: $only, func: Func::$func, doc: $doc }
    };
    ($name:expr, $func:expr, [$($p:expr),*], $ret:expr, in $only:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: false, only: $only, func: $func, doc: $doc }
    };
    ($name:expr, $func:expr, [$($p:expr),*], $ret:expr, acts in $only:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: true, only: $only, func: $func, doc: $doc }
    };
    ($name:expr, $func:ident, [$($p:expr),*], $ret:expr, one_of $one:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: $one, effect: false, only: ANYWHERE, func: Func::$func, doc: $doc }
    };
}

/// Every function.
pub(crate) static FUNCS: &[FuncDef] = &[
    f!("regsub", Regsub, [req("str", S), Param { name: "regex", ty: ParamType::Regex, default: Default::Required }, req("sub", S)], Some(S),
        "the string with the first match of the regular expression replaced; `\\0`…`\\9` in the replacement insert the match and its groups"),
    f!("regsuball", Regsuball, [req("str", S), Param { name: "regex", ty: ParamType::Regex, default: Default::Required }, req("sub", S)], Some(S),
        "like `regsub`, replacing every match"),
    f!("ban", Ban, [req("expr", S)], None, effect in CLIENT_BACKEND,
        "adds a ban (the expression as the BAN method takes it, built at run time); an error is logged (deprecated in Varnish 7: use `std.ban`)"),
    f!("std.ban", StdBan, [req("expr", S)], Some(Type::Bool), effect in CLIENT_BACKEND,
        "adds a ban; `false` when the expression is refused (then `std.ban_error()` says why)"),
    f!("std.ban_error", BanError, [], Some(S),
        "why the last `std.ban` of this subroutine run failed; empty when it did not"),
    f!("std.tolower", Tolower, [req("s", S)], Some(S), "the string with ASCII letters lower-cased"),
    f!("std.toupper", Toupper, [req("s", S)], Some(S), "the string with ASCII letters upper-cased"),
    f!("std.strstr", Strstr, [req("s1", S), req("s2", S)], Some(S),
        "the rest of `s1` from the first occurrence of `s2`; unset when there is none"),
    f!("std.querysort", Querysort, [req("url", S)], Some(S),
        "the URL with its query parameters sorted (empty ones dropped)"),
    f!("std.fnmatch", Fnmatch, [req("pattern", S), req("subject", S), flag("pathname", true), flag("noescape", false), flag("period", false)], Some(Type::Bool),
        "shell-style glob match (`*`, `?`, `[a-z]`, `[!x]`); `pathname`: wildcards do not match `/`; `noescape`: `\\` is literal; `period`: a leading `.` must be matched literally"),
    f!("std.fileread", Fileread, [req("path", S)], Some(S),
        "the contents of a file, read once and kept (at most 1 MiB: a larger or unreadable file is unset)"),
    f!("std.file_exists", FileExists, [req("path", S)], Some(Type::Bool), "whether the file exists"),
    f!("std.getenv", Getenv, [req("name", S)], Some(S), "an environment variable; unset when it is not set"),
    f!("std.random", Random, [req("lo", Type::Real), req("hi", Type::Real)], Some(Type::Real),
        "a random REAL between `lo` and `hi` (not for cryptography)"),
    f!("std.round", Round, [req("r", Type::Real)], Some(Type::Real), "the nearest whole number (halves away from zero)"),
    f!("std.integer", Integer, [opt("s", S), opt("fallback", Type::Int), opt("bool", Type::Bool), opt("bytes", Type::Bytes), opt("duration", Type::Duration), opt("real", Type::Real), opt("time", Type::Time)], Some(Type::Int),
        one_of &["s", "bool", "bytes", "duration", "real", "time"],
        "converts one of its arguments to INT: `s` (decimal, surrounding spaces allowed), `bool` (1 or 0), `bytes`, `duration` (seconds), `real` (rounded down), `time` (seconds since the epoch); when that fails, `fallback` (without one, the subroutine fails)"),
    f!("std.real", Real, [opt("s", S), opt("fallback", Type::Real), opt("integer", Type::Int), opt("bool", Type::Bool), opt("bytes", Type::Bytes), opt("duration", Type::Duration), opt("time", Type::Time)], Some(Type::Real),
        one_of &["s", "integer", "bool", "bytes", "duration", "time"],
        "converts one of its arguments to REAL; when that fails, `fallback`"),
    f!("std.duration", Duration, [opt("s", S), opt("fallback", Type::Duration), opt("real", Type::Real), opt("integer", Type::Int)], Some(Type::Duration),
        one_of &["s", "real", "integer"],
        "converts to DURATION: `s` with a unit (`10s`, `1.5m`), or `real`/`integer` seconds; when that fails, `fallback`"),
    f!("std.bytes", Bytes, [opt("s", S), opt("fallback", Type::Bytes), opt("real", Type::Real), opt("integer", Type::Int)], Some(Type::Bytes),
        one_of &["s", "real", "integer"],
        "converts to BYTES: `s` as `512`, `10KB`, `1.5MB` (B, KB, MB, GB, TB), or `real`/`integer`; when that fails, `fallback`"),
    f!("std.time", Time, [opt("s", S), opt("fallback", Type::Time), opt("real", Type::Real), opt("integer", Type::Int)], Some(Type::Time),
        one_of &["s", "real", "integer"],
        "converts to TIME: `s` as an HTTP date (IMF-fixdate, RFC 850, asctime), `YYYY-MM-DDTHH:MM:SS` (UTC) or seconds since the epoch, or `real`/`integer` seconds; when that fails, `fallback`"),
    FuncDef {
        name: "std.ip",
        params: &[req("s", S), opt("fallback", Type::Ip), flag("resolve", true), opt("p", S)],
        ret: Some(Type::Ip),
        one_of: &[],
        effect: false,
        only: ANYWHERE,
        func: Func::Ip,
        doc: "the string as an IP address (`[v6]` and a `:port` allowed); when it is none, `fallback` (without one, the subroutine fails). Names are not resolved: `resolve` is accepted and ignored",
    },
    f!("std.port", Port, [req("ip", Type::Ip)], Some(Type::Int),
        "the port of `client.ip`, `server.ip`, `local.ip` or `remote.ip` (0 for other addresses)"),
    f!("std.strftime", Strftime, [req("time", Type::Time), req("format", S)], Some(S),
        "the time formatted in UTC (`%Y %m %d %H %M %S %a %A %b %B %e %j %y %Z %z %s %F %T %%`)"),
    f!("std.real2integer", Real2Integer, [req("r", Type::Real), req("fallback", Type::Int)], Some(Type::Int),
        "the REAL rounded down to INT; `fallback` when it does not fit (deprecated: `std.integer(real=…)`)"),
    f!("std.real2time", Real2Time, [req("r", Type::Real), req("fallback", Type::Time)], Some(Type::Time),
        "seconds since the epoch as TIME (deprecated: `std.time(real=…)`)"),
    f!("std.time2integer", Time2Integer, [req("t", Type::Time), req("fallback", Type::Int)], Some(Type::Int),
        "TIME as whole seconds since the epoch (deprecated: `std.integer(time=…)`)"),
    f!("std.time2real", Time2Real, [req("t", Type::Time), req("fallback", Type::Real)], Some(Type::Real),
        "TIME as seconds since the epoch (deprecated: `std.real(time=…)`)"),
    f!("std.now", Now, [], Some(Type::Time), "the current time (as `now`)"),
    f!("std.syntax", Syntax, [req("version", Type::Real)], Some(Type::Bool),
        "whether the policy's `vcl` version is at least this (4.1 when it names none)"),
    f!("std.healthy", Healthy, [Param { name: "be", ty: ParamType::Backend, default: Default::Required }], Some(Type::Bool),
        "whether the backend is healthy (lacquer: as its probe sees it)"),
    f!("std.log", Log, [req("s", S)], None, effect in ANYWHERE,
        "writes the message to lacquer's log and to the request's access log line (`vcl_log=`)"),
    f!("std.syslog", Syslog, [req("priority", Type::Int), req("s", S)], None, effect in ANYWHERE,
        "as `std.log` (lacquer does not write to syslog; the priority sets the log level: 0–3 error, 4 warn, 5–6 info, 7 debug)"),
    f!("std.timestamp", Timestamp, [req("s", S)], None, effect in ANYWHERE,
        "accepted, does nothing (lacquer has no shared-memory log)"),
    FuncDef {
        name: "std.collect",
        params: &[Param { name: "hdr", ty: ParamType::Header, default: Default::Required }, Param { name: "sep", ty: ParamType::Val(S), default: Default::Str(", ") }],
        ret: None,
        one_of: &[],
        effect: true,
        only: CLIENT_BACKEND,
        func: Func::Collect,
        doc: "joins the header's values into one, separated by `sep`",
    },
    FuncDef {
        name: "std.rollback",
        params: &[Param { name: "h", ty: ParamType::Http, default: Default::Required }],
        ret: None,
        one_of: &[],
        effect: true,
        only: CLIENT_BACKEND,
        func: Func::Rollback,
        doc: "puts `req` back as it was received, or `bereq` as it was first made from it",
    },
    f!("std.cache_req_body", CacheReqBody, [req("size", Type::Bytes)], Some(Type::Bool), effect in RECV,
        "keeps the request body (at most `size`) so a restart or retry can send it again; `false` when it is larger"),
    f!("std.late_100_continue", Late100Continue, [req("late", Type::Bool)], None, effect in RECV,
        "accepted, does nothing (hyper answers `Expect: 100-continue` when the body is first read)"),
    f!("std.set_ip_tos", SetIpTos, [req("tos", Type::Int)], None, effect in ANYWHERE,
        "accepted, does nothing"),
    // vmod cookie (Varnish 6.4+): a jar per task, parsed from a header.
    f!("cookie.parse", Func::CookieParse, [req("cookieheader", S)], None, acts in CLIENT_BACKEND,
        "the jar becomes the cookies of the header (`a=1; b=2`); what it held before is dropped"),
    f!("cookie.clean", Func::CookieClean, [], None, acts in CLIENT_BACKEND, "empties the jar"),
    f!("cookie.set", Func::CookieSet, [req("cookiename", S), req("value", S)], None, acts in CLIENT_BACKEND,
        "sets a cookie in the jar (replacing its value, or added at the end)"),
    f!("cookie.delete", Func::CookieDelete, [req("cookiename", S)], None, acts in CLIENT_BACKEND,
        "removes a cookie from the jar"),
    f!("cookie.filter", Func::CookieFilter, [req("filter", S)], None, acts in CLIENT_BACKEND,
        "removes the cookies named in the comma-separated list"),
    f!("cookie.keep", Func::CookieKeep, [req("filter", S)], None, acts in CLIENT_BACKEND,
        "keeps only the cookies named in the comma-separated list"),
    f!("cookie.filter_re", Func::CookieFilterRe, [regex("expression")], None, acts in CLIENT_BACKEND,
        "removes the cookies whose name matches"),
    f!("cookie.keep_re", Func::CookieKeepRe, [regex("expression")], None, acts in CLIENT_BACKEND,
        "keeps only the cookies whose name matches"),
    f!("cookie.get", Func::CookieGet, [req("cookiename", S)], Some(S), in CLIENT_BACKEND,
        "the cookie's value; unset when the jar has none of that name"),
    f!("cookie.get_re", Func::CookieGetRe, [regex("expression")], Some(S), in CLIENT_BACKEND,
        "the value of the first cookie whose name matches; unset when none does"),
    f!("cookie.isset", Func::CookieIsset, [req("cookiename", S)], Some(Type::Bool), in CLIENT_BACKEND,
        "whether the jar has the cookie"),
    f!("cookie.get_string", Func::CookieGetString, [], Some(S), in CLIENT_BACKEND,
        "the jar as a `Cookie` header (`a=1; b=2`; empty when the jar is)"),
    f!("cookie.format_rfc1123", Func::CookieFormatRfc1123, [req("now", Type::Time), req("timedelta", Type::Duration)], Some(S), in ANYWHERE,
        "the time plus the duration as an HTTP date, for `Expires` (deprecated in Varnish: use `now + d`)"),
    // vmod header (varnish-modules): every value of a header.
    f!("header.append", Func::HeaderAppend, [header("hdr", ParamType::Header), req("content", S)], None, acts in CLIENT_BACKEND,
        "adds another value of the header (another `Set-Cookie` line)"),
    f!("header.copy", Func::HeaderCopy, [header("src", ParamType::HeaderIn), header("dst", ParamType::Header)], None, acts in CLIENT_BACKEND,
        "adds every value of `src` to `dst`"),
    f!("header.get", Func::HeaderGet, [header("hdr", ParamType::HeaderIn), regex("regex")], Some(S), in CLIENT_BACKEND,
        "the first value of the header that matches; unset when none does"),
    f!("header.remove", Func::HeaderRemove, [header("hdr", ParamType::Header), regex("regex")], None, acts in CLIENT_BACKEND,
        "removes the values of the header that match (one `Set-Cookie` of several)"),
    // vmod var (varnish-modules): variables of the task, and global ones.
    f!("var.set", Func::VarSet(S), [req("key", S), req("value", S)], None, acts in CLIENT_BACKEND,
        "sets a STRING variable of the task (it lives until the request, or the backend fetch, ends)"),
    f!("var.get", Func::VarGet(S), [req("key", S)], Some(S), in CLIENT_BACKEND,
        "a STRING variable of the task; unset when it was not set"),
    f!("var.set_string", Func::VarSet(S), [req("key", S), req("value", S)], None, acts in CLIENT_BACKEND, "as `var.set`"),
    f!("var.get_string", Func::VarGet(S), [req("key", S)], Some(S), in CLIENT_BACKEND, "as `var.get`"),
    f!("var.set_int", Func::VarSet(Type::Int), [req("key", S), req("value", Type::Int)], None, acts in CLIENT_BACKEND,
        "sets an INT variable of the task"),
    f!("var.get_int", Func::VarGet(Type::Int), [req("key", S)], Some(Type::Int), in CLIENT_BACKEND,
        "an INT variable of the task; 0 when it was not set as INT"),
    f!("var.set_real", Func::VarSet(Type::Real), [req("key", S), req("value", Type::Real)], None, acts in CLIENT_BACKEND,
        "sets a REAL variable of the task"),
    f!("var.get_real", Func::VarGet(Type::Real), [req("key", S)], Some(Type::Real), in CLIENT_BACKEND,
        "a REAL variable of the task; 0 when it was not set as REAL"),
    f!("var.set_duration", Func::VarSet(Type::Duration), [req("key", S), req("value", Type::Duration)], None, acts in CLIENT_BACKEND,
        "sets a DURATION variable of the task"),
    f!("var.get_duration", Func::VarGet(Type::Duration), [req("key", S)], Some(Type::Duration), in CLIENT_BACKEND,
        "a DURATION variable of the task; 0s when it was not set as DURATION"),
    f!("var.set_ip", Func::VarSet(Type::Ip), [req("key", S), req("value", Type::Ip)], None, acts in CLIENT_BACKEND,
        "sets an IP variable of the task"),
    f!("var.get_ip", Func::VarGet(Type::Ip), [req("key", S)], Some(Type::Ip), in CLIENT_BACKEND,
        "an IP variable of the task; 0.0.0.0 when it was not set as IP"),
    f!("var.clear", Func::VarClear, [], None, acts in CLIENT_BACKEND, "forgets every variable of the task"),
    f!("var.global_set", Func::VarGlobalSet, [req("key", S), req("value", S)], None, acts in ANYWHERE,
        "sets a global STRING variable, shared by every request under this policy (at most 256)"),
    f!("var.global_get", Func::VarGlobalGet, [req("key", S)], Some(S), in ANYWHERE,
        "a global variable; unset when it was not set"),
    // vmod xkey (varnish-modules), on lacquer's surrogate keys.
    f!("xkey.purge", Func::XkeyPurge, [req("keys", S)], Some(Type::Int), acts in CLIENT_BACKEND,
        "removes every object carrying one of the keys (separated by spaces or commas; the `xkey` header, or any of `invalidation.surrogate_key_headers`, set them); the number removed"),
    f!("xkey.softpurge", Func::XkeySoftpurge, [req("keys", S)], Some(Type::Int), acts in CLIENT_BACKEND,
        "as `xkey.purge`, marking the objects stale instead (grace serves them while one fetch refreshes them); the number marked"),
    // vmod purge (Varnish 7).
    f!("purge.hard", Func::PurgeHard, [], Some(Type::Int), acts in HIT_MISS,
        "removes every variant of the object being looked up; the number removed"),
    f!("purge.soft", Func::PurgeSoft, [dur("ttl", 0.0), dur("grace", -1.0), dur("keep", -1.0)], Some(Type::Int), acts in HIT_MISS,
        "sets every variant of the object being looked up to end its freshness `ttl` from now, with this `grace` and `keep` (negative: unchanged; as in Varnish they may be raised too); the number changed"),
    // vmod proxy (Varnish 6+): the PROXY protocol v2 header's TLVs.
    f!("proxy.alpn", Func::Proxy(ProxyField::Alpn), [], Some(S), in vars::REQ,
        "the ALPN protocol the load balancer negotiated with the client; unset without a PROXY v2 TLV"),
    f!("proxy.authority", Func::Proxy(ProxyField::Authority), [], Some(S), in vars::REQ,
        "the host name the client sent (SNI)"),
    f!("proxy.is_ssl", Func::Proxy(ProxyField::IsSsl), [], Some(Type::Bool), in vars::REQ,
        "whether the client connected over TLS"),
    f!("proxy.client_has_cert_sess", Func::Proxy(ProxyField::ClientHasCertSess), [], Some(Type::Bool), in vars::REQ,
        "whether the client presented a certificate in its TLS session"),
    f!("proxy.client_has_cert_conn", Func::Proxy(ProxyField::ClientHasCertConn), [], Some(Type::Bool), in vars::REQ,
        "whether the client presented a certificate on this connection"),
    f!("proxy.ssl_verify_result", Func::Proxy(ProxyField::SslVerifyResult), [], Some(Type::Int), in vars::REQ,
        "the certificate verification result (0: verified, or no TLS information)"),
    f!("proxy.ssl_version", Func::Proxy(ProxyField::SslVersion), [], Some(S), in vars::REQ,
        "the TLS version (`TLSv1.3`)"),
    f!("proxy.client_cert_cn", Func::Proxy(ProxyField::ClientCertCn), [], Some(S), in vars::REQ,
        "the common name of the client's certificate"),
    f!("proxy.ssl_cipher", Func::Proxy(ProxyField::SslCipher), [], Some(S), in vars::REQ,
        "the TLS cipher"),
    f!("proxy.cert_sign", Func::Proxy(ProxyField::CertSign), [], Some(S), in vars::REQ,
        "the signature algorithm of the certificate"),
    f!("proxy.cert_key", Func::Proxy(ProxyField::CertKey), [], Some(S), in vars::REQ,
        "the key algorithm of the certificate"),
];

/// The function named `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static FuncDef> {
    FUNCS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_varnish_docs() {
        assert_eq!(
            lookup("std.integer").unwrap().signature(),
            "INT std.integer([STRING s], [INT fallback], [BOOL bool], [BYTES bytes], [DURATION duration], [REAL real], [TIME time])"
        );
        assert_eq!(
            lookup("std.collect").unwrap().signature(),
            "VOID std.collect(HEADER hdr, STRING sep=\", \")"
        );
        assert_eq!(
            lookup("std.fnmatch").unwrap().signature(),
            "BOOL std.fnmatch(STRING pattern, STRING subject, BOOL pathname=true, BOOL noescape=false, BOOL period=false)"
        );
    }

    #[test]
    fn names_are_unique_and_one_of_names_exist() {
        for (i, f) in FUNCS.iter().enumerate() {
            assert!(FUNCS[..i].iter().all(|g| g.name != f.name), "{}", f.name);
            for n in f.one_of {
                assert!(f.params.iter().any(|p| p.name == *n), "{}: {n}", f.name);
            }
        }
    }
}
