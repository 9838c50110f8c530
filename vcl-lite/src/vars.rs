//! Subroutines, types, and the variables with where each can be read and
//! written.

use std::any::Any;
use std::fmt;

use crate::host_form::HostForm;

/// The built-in subroutines, one per step of a request's way through lacquer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sub {
    /// `vcl_recv`: a request arrived.
    Recv,
    /// `vcl_hash`: build the cache key.
    Hash,
    /// `vcl_hit`: a fresh or graced object was found.
    Hit,
    /// `vcl_miss`: nothing usable was found.
    Miss,
    /// `vcl_pass`: the request is passed to the backend.
    Pass,
    /// `vcl_purge`: after a purge.
    Purge,
    /// `vcl_deliver`: before a response is sent.
    Deliver,
    /// `vcl_synth`: a synthetic response is made.
    Synth,
    /// `vcl_backend_fetch`: before a backend request is sent.
    BackendFetch,
    /// `vcl_backend_response`: a backend response arrived.
    BackendResponse,
    /// `vcl_backend_error`: the backend could not be reached or failed.
    BackendError,
    /// `vcl_pipe`: a request is piped. Compiled and checked; lacquer does
    /// not pipe (`return (pipe)` is a pass), so it never runs yet.
    Pipe,
    /// `vcl_init`: once, when the policy is loaded
    /// ([`crate::Program::init`]).
    Init,
    /// `vcl_fini`: when the policy is discarded. Compiled and checked;
    /// not run yet.
    Fini,
}

impl Sub {
    /// Every built-in subroutine.
    pub const ALL: [Sub; 14] = [
        Sub::Recv,
        Sub::Hash,
        Sub::Hit,
        Sub::Miss,
        Sub::Pass,
        Sub::Purge,
        Sub::Deliver,
        Sub::Synth,
        Sub::BackendFetch,
        Sub::BackendResponse,
        Sub::BackendError,
        Sub::Pipe,
        Sub::Init,
        Sub::Fini,
    ];

    /// Its VCL name (`vcl_recv`).
    pub fn name(self) -> &'static str {
        match self {
            Sub::Recv => "vcl_recv",
            Sub::Hash => "vcl_hash",
            Sub::Hit => "vcl_hit",
            Sub::Miss => "vcl_miss",
            Sub::Pass => "vcl_pass",
            Sub::Purge => "vcl_purge",
            Sub::Deliver => "vcl_deliver",
            Sub::Synth => "vcl_synth",
            Sub::BackendFetch => "vcl_backend_fetch",
            Sub::BackendResponse => "vcl_backend_response",
            Sub::BackendError => "vcl_backend_error",
            Sub::Pipe => "vcl_pipe",
            Sub::Init => "vcl_init",
            Sub::Fini => "vcl_fini",
        }
    }

    /// The subroutine named `name`.
    pub fn from_name(name: &str) -> Option<Sub> {
        Sub::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn bit(self) -> Mask {
        Mask(1 << (self as u16))
    }
}

impl fmt::Display for Sub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of subroutines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mask(pub(crate) u16);

impl Mask {
    pub(crate) const NONE: Mask = Mask(0);
    pub(crate) const fn of(subs: &[Sub]) -> Mask {
        let mut bits = 0u16;
        let mut i = 0;
        while i < subs.len() {
            bits |= 1 << (subs[i] as u16);
            i += 1;
        }
        Mask(bits)
    }
    pub(crate) fn contains(self, sub: Sub) -> bool {
        self.0 & sub.bit().0 != 0
    }
    pub(crate) fn union(self, other: Mask) -> Mask {
        Mask(self.0 | other.0)
    }
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn subs(self) -> impl Iterator<Item = Sub> {
        Sub::ALL.into_iter().filter(move |s| self.contains(*s))
    }
    /// `vcl_recv, vcl_hash and vcl_deliver`
    pub(crate) fn describe(self) -> String {
        let names: Vec<&str> = self.subs().map(Sub::name).collect();
        match names.len() {
            0 => "no subroutine".to_string(),
            1 => names[0].to_string(),
            n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
        }
    }
}

pub(crate) const CLIENT: Mask = Mask::of(&[
    Sub::Recv,
    Sub::Hash,
    Sub::Hit,
    Sub::Miss,
    Sub::Pass,
    Sub::Purge,
    Sub::Deliver,
    Sub::Synth,
]);
pub(crate) const BACKEND: Mask =
    Mask::of(&[Sub::BackendFetch, Sub::BackendResponse, Sub::BackendError]);
/// `vcl_pipe` sees the request (`req.*`) and the backend request (`bereq.*`).
pub(crate) const PIPE: Mask = Mask::of(&[Sub::Pipe]);
/// Where `req.method`, `req.url`, `req.proto`, `req.http.*` are.
pub(crate) const REQ: Mask = Mask(CLIENT.0 | PIPE.0);
/// Where `bereq.method`, `bereq.url`, `bereq.proto`, `bereq.http.*` are.
pub(crate) const BEREQ: Mask = Mask(BACKEND.0 | PIPE.0);
/// Every subroutine that handles a request (not vcl_init, vcl_fini).
pub(crate) const ALL: Mask = Mask(CLIENT.0 | BACKEND.0 | PIPE.0);
const BERESP: Mask = Mask::of(&[Sub::BackendResponse, Sub::BackendError]);
const RESP: Mask = Mask::of(&[Sub::Deliver, Sub::Synth]);
const OBJ: Mask = Mask::of(&[Sub::Hit, Sub::Deliver]);
const SYNTH: Mask = Mask::of(&[Sub::Synth]);

/// The types of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Text.
    String,
    /// A 64-bit signed integer.
    Int,
    /// A duration in seconds (`10s`).
    Duration,
    /// `true` or `false`.
    Bool,
    /// An IPv4 or IPv6 address.
    Ip,
    /// A decimal number (`1.5`).
    Real,
    /// A point in time, in seconds since the epoch (`now`).
    Time,
    /// A size in bytes (`10KB`).
    Bytes,
    /// A backend or director, carried as its name (a declared backend's
    /// name written bare, `X.backend()`, `req.backend_hint`). It converts
    /// to STRING (its name), not back.
    Backend,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::String => "STRING",
            Type::Int => "INT",
            Type::Duration => "DURATION",
            Type::Bool => "BOOL",
            Type::Ip => "IP",
            Type::Real => "REAL",
            Type::Time => "TIME",
            Type::Bytes => "BYTES",
            Type::Backend => "BACKEND",
        })
    }
}

/// A header name, lower-cased (`req.http.X-Forwarded-For` → `x-forwarded-for`).
///
/// It also holds one value of the host's choosing, made from the name the
/// first time the host asks ([`Header::host_form`]): lacquer keeps its
/// parsed `http::HeaderName` there, so a policy's header reads and writes do
/// not parse the name again on every request. Equality and hashing look at
/// the name only.
#[derive(Clone)]
pub struct Header(Box<Kept>);

/// A name or text of the policy with the host's form of it. Boxed in
/// [`Header`] and [`Literal`] so that the statements and expressions that
/// hold them stay small (a statement was 328 bytes, ~100 in production.vcl:
/// their walk missed the data cache).
#[derive(Clone)]
struct Kept {
    text: Box<str>,
    host: HostForm,
}

impl Kept {
    fn new(text: Box<str>) -> Box<Kept> {
        Box::new(Kept {
            text,
            host: HostForm::default(),
        })
    }

    fn host_form<T: Any + Send + Sync>(&self, make: impl FnOnce(&str) -> T) -> Option<&T> {
        self.host.get(|| make(&self.text))
    }
}

impl Header {
    /// A header name; stored lower-cased.
    pub fn new(name: &str) -> Header {
        Header(Kept::new(name.to_ascii_lowercase().into_boxed_str()))
    }

    /// The lower-cased name.
    pub fn name(&self) -> &str {
        &self.0.text
    }

    /// The host's own form of this name, made by `make` from the
    /// lower-cased name on first use and kept with the compiled policy.
    /// `None` when an earlier call kept a value of another type.
    /// A clone has the name; its host's form is made again on first use.
    pub fn host_form<T: Any + Send + Sync>(&self, make: impl FnOnce(&str) -> T) -> Option<&T> {
        self.0.host_form(make)
    }
}

/// A text literal a policy sets a variable to (`set req.http.X-Device =
/// "mobile";`), with a form of the host's choosing made once
/// ([`Literal::host_form`]): lacquer keeps the header value, so setting it
/// on every request does not allocate and check it again.
#[derive(Clone)]
pub struct Literal(Box<Kept>);

impl Literal {
    /// A literal of this text.
    pub fn new(text: impl Into<Box<str>>) -> Literal {
        Literal(Kept::new(text.into()))
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.0.text
    }

    /// The host's own form of this text, made by `make` on first use and
    /// kept with the compiled policy. `None` when an earlier call kept a
    /// value of another type.
    pub fn host_form<T: Any + Send + Sync>(&self, make: impl FnOnce(&str) -> T) -> Option<&T> {
        self.0.host_form(make)
    }
}

impl fmt::Debug for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Literal").field(&self.text()).finish()
    }
}

impl PartialEq for Header {
    fn eq(&self, other: &Header) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Header {}

impl std::hash::Hash for Header {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Header").field(&self.name()).finish()
    }
}

/// A variable, resolved when the policy is compiled. The host's
/// [`Context`](crate::Context) reads and writes these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Var {
    /// `req.method`
    ReqMethod,
    /// `req.url`
    ReqUrl,
    /// `req.proto`
    ReqProto,
    /// `req.http.NAME`
    ReqHttp(Header),
    /// `req.restarts`
    ReqRestarts,
    /// `req.esi_level`
    ReqEsiLevel,
    /// `req.hash_always_miss`
    ReqHashAlwaysMiss,
    /// `req.ttl`: upper limit on the TTL of an object this request may use.
    ReqTtl,
    /// `req.grace`: upper limit on the grace this request accepts.
    ReqGrace,
    /// `bereq.method`
    BereqMethod,
    /// `bereq.url`
    BereqUrl,
    /// `bereq.proto`
    BereqProto,
    /// `bereq.http.NAME`
    BereqHttp(Header),
    /// `bereq.retries`
    BereqRetries,
    /// `bereq.connect_timeout`
    BereqConnectTimeout,
    /// `bereq.first_byte_timeout`
    BereqFirstByteTimeout,
    /// `bereq.between_bytes_timeout`
    BereqBetweenBytesTimeout,
    /// `bereq.uncacheable`
    BereqUncacheable,
    /// `bereq.is_bgfetch`
    BereqIsBgfetch,
    /// `beresp.status`
    BerespStatus,
    /// `beresp.reason`
    BerespReason,
    /// `beresp.proto`
    BerespProto,
    /// `beresp.http.NAME`
    BerespHttp(Header),
    /// `beresp.ttl`
    BerespTtl,
    /// `beresp.grace`
    BerespGrace,
    /// `beresp.keep`
    BerespKeep,
    /// `beresp.age`
    BerespAge,
    /// `beresp.uncacheable`
    BerespUncacheable,
    /// `beresp.do_esi`
    BerespDoEsi,
    /// `beresp.do_gzip`
    BerespDoGzip,
    /// `beresp.do_brotli` (a lacquer extension)
    BerespDoBrotli,
    /// `beresp.do_zstd` (a lacquer extension)
    BerespDoZstd,
    /// `beresp.do_gunzip`
    BerespDoGunzip,
    /// `beresp.do_stream`: accepted; lacquer always streams.
    BerespDoStream,
    /// `beresp.storage_hint` / `beresp.storage`: accepted; one store.
    BerespStorageHint,
    /// `beresp.was_304`
    BerespWas304,
    /// `beresp.backend`: the backend the fetch was sent to (a director's
    /// choice); `beresp.backend.name` reads the same name as a STRING.
    BerespBackend,
    /// `obj.hits`
    ObjHits,
    /// `obj.age`
    ObjAge,
    /// `obj.ttl`
    ObjTtl,
    /// `obj.grace`
    ObjGrace,
    /// `obj.keep`
    ObjKeep,
    /// `obj.status`
    ObjStatus,
    /// `obj.reason`
    ObjReason,
    /// `obj.http.NAME`
    ObjHttp(Header),
    /// `obj.uncacheable`
    ObjUncacheable,
    /// `resp.status`
    RespStatus,
    /// `resp.reason`
    RespReason,
    /// `resp.proto`
    RespProto,
    /// `resp.http.NAME`
    RespHttp(Header),
    /// `resp.body` (vcl_synth; write-only): replaces what `synthetic(…)`
    /// wrote so far.
    RespBody,
    /// `beresp.body` (vcl_backend_error; write-only): likewise.
    BerespBody,
    /// `client.ip` (read through [`Context::client_ip`](crate::Context::client_ip))
    ClientIp,
    /// `server.hostname`
    ServerHostname,
    /// `server.identity`
    ServerIdentity,
    /// `now` (read through [`Context::now`](crate::Context::now))
    Now,
    /// `server.ip`: the address the request was received on.
    ServerIp,
    /// `local.ip`: the local address of the connection (as `server.ip`).
    LocalIp,
    /// `remote.ip`: the peer of the connection (the proxy, behind a PROXY
    /// protocol load balancer; else as `client.ip`).
    RemoteIp,
    /// `client.identity`: identifies the client (`client.ip` unless set).
    ClientIdentity,
    /// `req.xid`: the request's transaction id.
    ReqXid,
    /// `bereq.xid`: the backend request's transaction id.
    BereqXid,
    /// `req.is_hitmiss`: the request is a miss because of a hit-for-miss
    /// object.
    ReqIsHitmiss,
    /// `req.is_hitpass`: the request is a pass because of a hit-for-pass
    /// object.
    ReqIsHitpass,
    /// `req.backend_hint`: the backend (or director) the request's fetch
    /// will use, by name.
    ReqBackendHint,
    /// `bereq.backend`: the backend (or director) the fetch uses, by name.
    BereqBackend,
}

impl Var {
    /// A header, URL or method: text the host keeps as it is, read through
    /// [`crate::Context::text`].
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            Var::ReqHttp(_)
                | Var::BereqHttp(_)
                | Var::BerespHttp(_)
                | Var::ObjHttp(_)
                | Var::RespHttp(_)
                | Var::ReqUrl
                | Var::BereqUrl
                | Var::ReqMethod
                | Var::BereqMethod
        )
    }
}

/// How a variable is made from its name (header families take the header).
#[derive(Clone, Copy)]
pub(crate) enum Make {
    Plain(fn() -> Var),
    Header(fn(Header) -> Var),
}

/// One row of the variable table.
pub(crate) struct VarDef {
    /// `req.url`, or `req.http.` for a header family.
    pub(crate) name: &'static str,
    pub(crate) ty: Type,
    pub(crate) read: Mask,
    pub(crate) write: Mask,
    pub(crate) make: Make,
    /// What the README says it is.
    pub(crate) doc: &'static str,
}

impl VarDef {
    pub(crate) fn is_header(&self) -> bool {
        matches!(self.make, Make::Header(_))
    }

    /// `req.url`, or `req.http.*`.
    pub(crate) fn display_name(&self) -> String {
        if self.is_header() {
            format!("{}*", self.name)
        } else {
            self.name.to_string()
        }
    }
}

macro_rules! plain {
    ($name:expr, $ty:ident, $read:expr, $write:expr, $var:ident, $doc:expr) => {
        VarDef {
            name: $name,
            ty: Type::$ty,
            read: $read,
            write: $write,
            make: Make::Plain(|| Var::$var),
            doc: $doc,
        }
    };
}

macro_rules! header {
    ($name:expr, $read:expr, $write:expr, $var:ident, $doc:expr) => {
        VarDef {
            name: $name,
            ty: Type::String,
            read: $read,
            write: $write,
            make: Make::Header(Var::$var),
            doc: $doc,
        }
    };
}

const NONE: Mask = Mask::NONE;
const RECV: Mask = Mask::of(&[Sub::Recv]);
const BERESP_ONLY: Mask = Mask::of(&[Sub::BackendResponse]);
const BACKEND_ERROR: Mask = Mask::of(&[Sub::BackendError]);
const HIT: Mask = Mask::of(&[Sub::Hit]);
const DELIVER: Mask = Mask::of(&[Sub::Deliver]);

/// Every variable.
pub(crate) static VARS: &[VarDef] = &[
    plain!(
        "req.method",
        String,
        REQ,
        REQ,
        ReqMethod,
        "the request method"
    ),
    plain!(
        "req.url",
        String,
        REQ,
        REQ,
        ReqUrl,
        "the request path and query"
    ),
    plain!(
        "req.proto",
        String,
        REQ,
        REQ,
        ReqProto,
        "the request protocol (`HTTP/1.1`)"
    ),
    header!("req.http.", REQ, REQ, ReqHttp, "a request header"),
    plain!(
        "req.restarts",
        Int,
        CLIENT,
        NONE,
        ReqRestarts,
        "how many times the request was restarted"
    ),
    plain!(
        "req.esi_level",
        Int,
        CLIENT,
        NONE,
        ReqEsiLevel,
        "0 for a client's request, 1 for an ESI fragment of its page, and so on"
    ),
    plain!(
        "req.hash_always_miss",
        Bool,
        RECV,
        RECV,
        ReqHashAlwaysMiss,
        "ignore cached objects and fetch (the new object replaces them)"
    ),
    plain!(
        "req.ttl",
        Duration,
        CLIENT,
        CLIENT,
        ReqTtl,
        "objects older than this are not fresh for this request (grace still applies)"
    ),
    plain!(
        "req.grace",
        Duration,
        CLIENT,
        CLIENT,
        ReqGrace,
        "the most grace this request accepts"
    ),
    plain!(
        "req.backend_hint",
        Backend,
        CLIENT,
        CLIENT,
        ReqBackendHint,
        "the backend or director the fetch for this request goes to (the first declared backend unless set)"
    ),
    plain!(
        "bereq.method",
        String,
        BEREQ,
        BEREQ,
        BereqMethod,
        "the backend request method"
    ),
    plain!(
        "bereq.url",
        String,
        BEREQ,
        BEREQ,
        BereqUrl,
        "the backend request path and query"
    ),
    plain!(
        "bereq.proto",
        String,
        BEREQ,
        NONE,
        BereqProto,
        "the backend request protocol (always `HTTP/1.1`)"
    ),
    header!(
        "bereq.http.",
        BEREQ,
        BEREQ,
        BereqHttp,
        "a backend request header"
    ),
    plain!(
        "bereq.backend",
        Backend,
        BACKEND,
        BACKEND,
        BereqBackend,
        "the backend or director this fetch goes to (from `req.backend_hint`); set it in vcl_backend_fetch to change it, for a retry too"
    ),
    plain!(
        "bereq.retries",
        Int,
        BACKEND,
        NONE,
        BereqRetries,
        "how many times the fetch was retried"
    ),
    plain!(
        "bereq.connect_timeout",
        Duration,
        BACKEND,
        BACKEND,
        BereqConnectTimeout,
        "this fetch's connect timeout (unset: the backend's)"
    ),
    plain!(
        "bereq.first_byte_timeout",
        Duration,
        BACKEND,
        BACKEND,
        BereqFirstByteTimeout,
        "this fetch's first-byte timeout (unset: the backend's)"
    ),
    plain!(
        "bereq.between_bytes_timeout",
        Duration,
        BACKEND,
        BACKEND,
        BereqBetweenBytesTimeout,
        "this fetch's between-bytes timeout (unset: the backend's)"
    ),
    plain!(
        "bereq.uncacheable",
        Bool,
        BACKEND,
        NONE,
        BereqUncacheable,
        "the fetch is for a pass: nothing will be stored"
    ),
    plain!(
        "bereq.is_bgfetch",
        Bool,
        BACKEND,
        NONE,
        BereqIsBgfetch,
        "the fetch refreshes an object in grace in the background: no client waits for it"
    ),
    plain!(
        "beresp.status",
        Int,
        BERESP,
        BERESP,
        BerespStatus,
        "the backend response status"
    ),
    plain!(
        "beresp.reason",
        String,
        BERESP,
        BERESP,
        BerespReason,
        "the backend response reason phrase (set, it is the phrase sent to clients: stored with the object)"
    ),
    plain!(
        "beresp.proto",
        String,
        BERESP,
        NONE,
        BerespProto,
        "the backend response protocol"
    ),
    header!(
        "beresp.http.",
        BERESP,
        BERESP,
        BerespHttp,
        "a backend response header"
    ),
    plain!(
        "beresp.ttl",
        Duration,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespTtl,
        "how long the object stays fresh"
    ),
    plain!(
        "beresp.grace",
        Duration,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespGrace,
        "how long it may be served stale while refreshed"
    ),
    plain!(
        "beresp.keep",
        Duration,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespKeep,
        "how long it is kept for conditional revalidation"
    ),
    plain!(
        "beresp.age",
        Duration,
        BERESP_ONLY,
        NONE,
        BerespAge,
        "the age of the response"
    ),
    plain!(
        "beresp.uncacheable",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespUncacheable,
        "do not store (hit-for-miss)"
    ),
    plain!(
        "beresp.do_esi",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoEsi,
        "process ESI in the body"
    ),
    plain!(
        "beresp.do_gzip",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoGzip,
        "gzip the body when it is stored (any media type), unless it is coded already"
    ),
    plain!(
        "beresp.do_stream",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoStream,
        "accepted for Varnish VCL; lacquer always streams a body to its clients while it is fetched (reads true)"
    ),
    plain!(
        "beresp.storage_hint",
        String,
        NONE,
        BERESP_ONLY,
        BerespStorageHint,
        "accepted for Varnish VCL (a storage backend's name); lacquer has one store, so it changes nothing"
    ),
    plain!(
        "beresp.do_brotli",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoBrotli,
        "lacquer extension: brotli the body when it is stored (any media type), unless it is coded already; wins over `do_zstd` and `do_gzip`"
    ),
    plain!(
        "beresp.do_zstd",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoZstd,
        "lacquer extension: zstd the body when it is stored (any media type), unless it is coded already; wins over `do_gzip`"
    ),
    plain!(
        "beresp.do_gunzip",
        Bool,
        BERESP_ONLY,
        BERESP_ONLY,
        BerespDoGunzip,
        "store a gzip'd body decoded (wins over `do_gzip`, `do_brotli`, `do_zstd`)"
    ),
    plain!(
        "beresp.was_304",
        Bool,
        BERESP_ONLY,
        NONE,
        BerespWas304,
        "the backend answered a conditional fetch with 304"
    ),
    plain!(
        "beresp.backend",
        Backend,
        BERESP,
        NONE,
        BerespBackend,
        "the backend the fetch was sent to (the one a director chose); unset when none was"
    ),
    plain!(
        "beresp.backend.name",
        String,
        BERESP,
        NONE,
        BerespBackend,
        "`beresp.backend`'s name"
    ),
    plain!(
        "obj.hits",
        Int,
        OBJ,
        NONE,
        ObjHits,
        "how many times the object was delivered from cache, this delivery included (0 on a miss or pass)"
    ),
    plain!(
        "obj.age",
        Duration,
        OBJ,
        NONE,
        ObjAge,
        "the age of the object"
    ),
    plain!(
        "obj.ttl",
        Duration,
        OBJ,
        NONE,
        ObjTtl,
        "its remaining time to live (negative once it expired)"
    ),
    plain!("obj.grace", Duration, OBJ, NONE, ObjGrace, "its grace"),
    plain!("obj.keep", Duration, OBJ, NONE, ObjKeep, "its keep"),
    plain!("obj.status", Int, HIT, NONE, ObjStatus, "its status"),
    plain!(
        "obj.reason",
        String,
        HIT,
        NONE,
        ObjReason,
        "its reason phrase"
    ),
    header!("obj.http.", HIT, NONE, ObjHttp, "one of its headers"),
    plain!(
        "obj.uncacheable",
        Bool,
        DELIVER,
        NONE,
        ObjUncacheable,
        "the response is a pass or hit-for-miss, not a cached object"
    ),
    plain!(
        "resp.status",
        Int,
        RESP,
        RESP,
        RespStatus,
        "the response status"
    ),
    plain!(
        "resp.reason",
        String,
        RESP,
        RESP,
        RespReason,
        "the response reason phrase"
    ),
    plain!(
        "resp.proto",
        String,
        RESP,
        NONE,
        RespProto,
        "the response protocol"
    ),
    header!("resp.http.", RESP, RESP, RespHttp, "a response header"),
    plain!(
        "resp.body",
        String,
        NONE,
        SYNTH,
        RespBody,
        "the synthetic body (write-only): `set` replaces it, `synthetic(…)` appends to it"
    ),
    plain!(
        "beresp.body",
        String,
        NONE,
        BACKEND_ERROR,
        BerespBody,
        "the error page's body in vcl_backend_error (write-only): `set` replaces it"
    ),
    plain!("client.ip", Ip, ALL, NONE, ClientIp, "the client's address"),
    plain!(
        "server.ip",
        Ip,
        ALL,
        NONE,
        ServerIp,
        "the address the request was received on"
    ),
    plain!(
        "local.ip",
        Ip,
        ALL,
        NONE,
        LocalIp,
        "the local address of the connection (as `server.ip`)"
    ),
    plain!(
        "remote.ip",
        Ip,
        ALL,
        NONE,
        RemoteIp,
        "the peer of the connection: the load balancer when the PROXY protocol is on, else as `client.ip`"
    ),
    plain!(
        "client.identity",
        String,
        ALL,
        CLIENT,
        ClientIdentity,
        "identifies the client (for directors that hash on it): `client.ip` unless set"
    ),
    plain!(
        "now",
        Time,
        ALL,
        NONE,
        Now,
        "the current time (`now - 1h`, `std.strftime(now, \"%F\")`); as text, an HTTP date"
    ),
    plain!(
        "req.xid",
        String,
        CLIENT,
        NONE,
        ReqXid,
        "the request's transaction id (a number, unique in the process)"
    ),
    plain!(
        "bereq.xid",
        String,
        BACKEND,
        NONE,
        BereqXid,
        "the backend request's transaction id"
    ),
    plain!(
        "req.is_hitmiss",
        Bool,
        CLIENT,
        NONE,
        ReqIsHitmiss,
        "the request missed because of a hit-for-miss object"
    ),
    plain!(
        "req.is_hitpass",
        Bool,
        CLIENT,
        NONE,
        ReqIsHitpass,
        "the request passed because of a hit-for-pass object"
    ),
    plain!(
        "server.hostname",
        String,
        ALL,
        NONE,
        ServerHostname,
        "the host name of the machine"
    ),
    plain!(
        "server.identity",
        String,
        ALL,
        NONE,
        ServerIdentity,
        "lacquer's identity: the host name (lacquer has no `-i`)"
    ),
];

/// Names from older VCL or common slips, with what to write instead.
static RENAMED: &[(&str, &str)] = &[
    (
        "req.request",
        "did you mean `req.method`? (renamed in VCL 4.0)",
    ),
    (
        "bereq.request",
        "did you mean `bereq.method`? (renamed in VCL 4.0)",
    ),
    (
        "beresp.cacheable",
        "did you mean `beresp.uncacheable`? (VCL 4.0 inverted it)",
    ),
    (
        "obj.response",
        "did you mean `obj.reason`? (renamed in VCL 4.0)",
    ),
    (
        "resp.response",
        "did you mean `resp.reason`? (renamed in VCL 4.0)",
    ),
    (
        "beresp.response",
        "did you mean `beresp.reason`? (renamed in VCL 4.0)",
    ),
    ("req.host", "did you mean `req.http.host`?"),
    ("bereq.host", "did you mean `bereq.http.host`?"),
    (
        "req.backend",
        "backends are chosen in lacquer's settings, not in the policy",
    ),
    (
        "req.backend_hint",
        "backends are chosen in lacquer's settings, not in the policy",
    ),
    (
        "bereq.backend",
        "backends are chosen in lacquer's settings, not in the policy",
    ),
    (
        "beresp.do_stream",
        "lacquer always streams bodies while they are fetched",
    ),
];

/// Looks a variable name up: its table row and the resolved variable.
/// Header families need a non-empty header name.
pub(crate) fn lookup(name: &str) -> Option<(&'static VarDef, Var)> {
    for def in VARS {
        match def.make {
            Make::Plain(make) if def.name == name => return Some((def, make())),
            Make::Header(make) => {
                if let Some(header) = name.strip_prefix(def.name) {
                    if !header.is_empty() && !header.contains('.') {
                        return Some((def, make(Header::new(header))));
                    }
                }
            }
            Make::Plain(_) => {}
        }
    }
    None
}

/// Edit distance (a swap of two neighbours counts as one edit), for
/// "did you mean".
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The closest of `candidates` to `name`, if close enough to suggest.
pub(crate) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The hint under an unknown variable.
pub(crate) fn suggest_var(name: &str) -> String {
    if let Some((_, hint)) = RENAMED.iter().find(|(old, _)| *old == name) {
        return (*hint).to_string();
    }
    // A header family with a typo in its prefix: `req.htpp.Host`.
    let parts: Vec<&str> = name.splitn(3, '.').collect();
    if parts.len() == 3 {
        let prefix = format!("{}.{}.", parts[0], parts[1]);
        let families = VARS.iter().filter(|d| d.is_header()).map(|d| d.name);
        if let Some(family) = closest(&prefix, families) {
            return format!("did you mean `{family}{}`?", parts[2]);
        }
    }
    if let Some(family) = VARS
        .iter()
        .filter(|d| d.is_header())
        .find(|d| d.name.trim_end_matches('.') == name)
    {
        return format!("a header name is missing: `{}NAME`", family.name);
    }
    let plain = VARS.iter().filter(|d| !d.is_header()).map(|d| d.name);
    if let Some(best) = closest(name, plain) {
        return format!("did you mean `{best}`?");
    }
    "not a vcl-lite variable (see the variable table in the README)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_keeps_the_hosts_form_made_once_and_compares_by_name() {
        let h = Header::new("X-Device");
        let made = std::cell::Cell::new(0);
        let make = |name: &str| {
            made.set(made.get() + 1);
            name.len()
        };
        assert_eq!(h.host_form(make), Some(&8));
        assert_eq!(h.host_form(make), Some(&8));
        assert_eq!(made.get(), 1);
        // Another type than the one kept: none.
        assert_eq!(h.host_form(|_| "other"), None);
        // A copy makes its own; equality and hashing see the name only.
        let copy = h.clone();
        assert_eq!(copy.host_form(|_| 1u8), Some(&1));
        assert_eq!(copy, h);
        assert_eq!(format!("{h:?}"), "Header(\"x-device\")");
    }

    #[test]
    fn lookup_resolves_names() {
        assert_eq!(lookup("req.url").map(|v| v.1), Some(Var::ReqUrl));
        assert_eq!(
            lookup("req.http.X-Forwarded-For").map(|v| v.1),
            Some(Var::ReqHttp(Header::new("x-forwarded-for")))
        );
        assert!(lookup("req.http.").is_none());
        assert!(lookup("req.uri").is_none());
        assert!(lookup("req.http.a.b").is_none());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest_var("req.uri"), "did you mean `req.url`?");
        assert_eq!(
            suggest_var("req.htpp.Host"),
            "did you mean `req.http.Host`?"
        );
        assert_eq!(
            suggest_var("req.request"),
            "did you mean `req.method`? (renamed in VCL 4.0)"
        );
        assert_eq!(suggest_var("beresp.TTL"), "did you mean `beresp.ttl`?");
        assert_eq!(
            suggest_var("req.http"),
            "a header name is missing: `req.http.NAME`"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("hsah", "hash"), 1);
        assert_eq!(distance("req.uri", "req.url"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn masks() {
        assert!(CLIENT.contains(Sub::Recv));
        assert!(!CLIENT.contains(Sub::BackendFetch));
        assert_eq!(RESP.describe(), "vcl_deliver and vcl_synth");
        assert_eq!(
            BACKEND.describe(),
            "vcl_backend_fetch, vcl_backend_response and vcl_backend_error"
        );
    }
}
