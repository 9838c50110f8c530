//! The built-in functions — `regsub`, `regsuball`, `ban` and Varnish 7's
//! vmod std — in one table: each one's parameters (name, type, default),
//! what it returns, where it may be used and whether it needs the host.
//! The checker matches calls against it (positional and named arguments,
//! as in `std.integer(s, fallback=0)`); the README's function table is
//! made from it.

use crate::vars::{self, Mask, Sub, Type};

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
    /// A header variable (`req.http.X`): `std.collect`.
    Header,
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
            ParamType::Header => "HEADER".to_string(),
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

macro_rules! f {
    ($name:expr, $func:ident, [$($p:expr),*], $ret:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: false, only: ANYWHERE, func: Func::$func, doc: $doc }
    };
    ($name:expr, $func:ident, [$($p:expr),*], $ret:expr, effect in $only:expr, $doc:expr) => {
        FuncDef { name: $name, params: &[$($p),*], ret: $ret, one_of: &[], effect: true, only: $only, func: Func::$func, doc: $doc }
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
