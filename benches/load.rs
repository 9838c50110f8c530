//! Load benchmark: lacquer against Varnish and nginx, driven by `wrk`.
//!
//! Run with `cargo bench --bench load [-- OPTIONS]`; see `benches/README.md`.
//!
//! The bench starts an in-process origin (hyper, one tokio thread), then starts
//! each proxy under test in turn as a child process in front of it, warms the
//! cache, and runs one `wrk` pass per scenario. Proxies never run concurrently.
//! The `scale-out` scenario then puts HAProxy in front of one and then two
//! lacquer nodes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Storage budget given to every proxy under test, in MiB.
const STORAGE_MIB: u64 = 256;

/// The lacquer command line. This is the one place to adjust if the CLI changes.
/// The admin listener gets a free port too (its default, 6082, would clash
/// between the two nodes of `scale-out`).
fn lacquer_command(
    bin: &Path,
    listen: SocketAddr,
    origin: SocketAddr,
    admin: SocketAddr,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("-a")
        .arg(listen.to_string())
        .arg("-b")
        .arg(origin.to_string())
        .arg("--storage")
        .arg(format!("{STORAGE_MIB}MiB"))
        .arg("-T")
        .arg(admin.to_string());
    cmd
}

/// Largest body the origin serves; `/bytes/N` above this answers 400.
const MAX_BODY: usize = 16 << 20;
const DEFAULT_DURATION_SECS: u64 = 10;
const DEFAULT_WARMUP_SECS: u64 = 2;
const DEFAULT_WRK_THREADS: u32 = 2;
/// How long a proxy may take to start answering.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a proxy gets to exit after SIGTERM before everything is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Pause before each wrk run.
const SETTLE: Duration = Duration::from_secs(1);

/// Body size of `/obj/*` and of each ESI fragment.
const OBJ_SIZE: usize = 1024;
/// Size of the ESI page as the origin sends it, `<esi:include>` tags included.
const ESI_PAGE_SIZE: usize = 10 * 1024;
/// Fragments included by the ESI page: `/frag/1` ..= `/frag/ESI_FRAGMENTS`.
const ESI_FRAGMENTS: usize = 3;
const ESI_PAGE_PATH: &str = "/esi/page";
/// `mix-90-10`: hot URLs `/obj/hot-1` ..= `/obj/hot-MIX_HOT_URLS`, warmed first.
const MIX_HOT_URLS: u32 = 100;
/// `mix-90-10`: every MIX_MISS_EVERY-th request of each wrk thread is a miss.
const MIX_MISS_EVERY: u32 = 10;
/// `scale-out`: distinct cacheable URLs `/obj/so-0` .. `/obj/so-(N-1)`.
const SCALE_OUT_URLS: u32 = 1000;
/// `scale-out`: wrk connections unless `--connections` overrides it.
const SCALE_OUT_CONNECTIONS: u32 = 256;

// ---------------------------------------------------------------------------
// Scenarios and options
// ---------------------------------------------------------------------------

/// How a scenario generates its requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Load {
    /// Every request is for `path`; warmed first if `hit`.
    Url,
    /// Every request is for the ESI page at `path`; page and fragments are warmed.
    Esi,
    /// A wrk Lua script: 90% hot URLs (warmed), 10% URLs never seen before.
    Mix,
    /// Not run per server: HAProxy in front of one, then two lacquer nodes.
    ScaleOut,
}

#[derive(PartialEq)]
struct Scenario {
    name: &'static str,
    /// The URL path given to wrk. Scripted loads (`Mix`, `ScaleOut`) replace it
    /// with their own paths.
    path: &'static str,
    /// Cacheable: warmed before the run, and should not reach the origin during it.
    hit: bool,
    /// wrk connections unless `--connections` overrides it.
    connections: u32,
    load: Load,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hit-1KiB",
        path: "/bytes/1024",
        hit: true,
        connections: 256,
        load: Load::Url,
    },
    Scenario {
        name: "hit-16KiB",
        path: "/bytes/16384",
        hit: true,
        connections: 256,
        load: Load::Url,
    },
    // 64 connections are plenty to saturate loopback with 1 MiB bodies; 256 of
    // them only inflates latency (and risks wrk's 2 s timeout) without adding
    // throughput.
    Scenario {
        name: "hit-1MiB",
        path: "/bytes/1048576",
        hit: true,
        connections: 64,
        load: Load::Url,
    },
    Scenario {
        name: "pass-1KiB",
        path: "/pass/1024",
        hit: false,
        connections: 256,
        load: Load::Url,
    },
    Scenario {
        name: "esi",
        path: ESI_PAGE_PATH,
        hit: true,
        connections: 256,
        load: Load::Esi,
    },
    Scenario {
        name: "mix-90-10",
        path: "/obj/hot-1",
        hit: true,
        connections: 256,
        load: Load::Mix,
    },
    Scenario {
        name: "scale-out",
        path: "/obj/so-0",
        hit: true,
        connections: SCALE_OUT_CONNECTIONS,
        load: Load::ScaleOut,
    },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerKind {
    Lacquer,
    Varnish,
    Nginx,
}

const ALL_SERVERS: [ServerKind; 3] = [ServerKind::Lacquer, ServerKind::Varnish, ServerKind::Nginx];

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Lacquer => "lacquer",
            ServerKind::Varnish => "varnish",
            ServerKind::Nginx => "nginx",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        ALL_SERVERS
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// Why this server cannot run scenarios of this kind, if it cannot.
    fn unsupported(self, load: Load) -> Option<&'static str> {
        match (self, load) {
            (ServerKind::Nginx, Load::Esi) => Some("nginx has no ESI"),
            _ => None,
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

struct Options {
    duration_secs: u64,
    servers: Vec<ServerKind>,
    /// True when `--only` was given: a missing proxy binary is then an error.
    servers_explicit: bool,
    scenarios: Vec<&'static Scenario>,
    /// True when `--scenarios` was given: a missing HAProxy is then an error
    /// for `scale-out`.
    scenarios_explicit: bool,
    connections: Option<u32>,
    threads: u32,
    /// Untimed wrk run before each measured one (0 = none).
    warmup_secs: u64,
    /// `--serve-origin ADDR`: only run the origin, for measuring by hand.
    serve_origin: Option<SocketAddr>,
    /// Path of the wrk binary; set once it has been found.
    wrk: PathBuf,
    /// Where the wrk Lua scripts are; set once they have been written.
    scripts_dir: PathBuf,
}

const USAGE: &str = "\
usage: cargo bench --bench load [-- OPTIONS]

options:
  --duration SECS        wrk duration per scenario (default 10)
  --only LIST            servers to run, comma separated: lacquer,varnish,nginx (default all)
  --scenarios LIST       scenarios, comma separated (default all; scale-out only if
                         haproxy is installed): hit-1KiB,hit-16KiB,hit-1MiB,pass-1KiB,
                         esi,mix-90-10,scale-out
  --warmup SECS          untimed wrk run before each scenario, 0 to skip (default 2)
  --connections N        wrk connections for every scenario (default 256; 64 for hit-1MiB)
  --threads N            wrk threads (default 2)
  --serve-origin ADDR    only run the origin on ADDR (e.g. 127.0.0.1:8080) until killed,
                         for running the scenarios by hand
  -h, --help             show this help

environment:
  LACQUER_BIN            lacquer binary to run instead of the one cargo built

Results go to stdout; progress (a line updated every second) goes to stderr.
";

impl Options {
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Self>, String> {
        let mut opts = Options {
            duration_secs: DEFAULT_DURATION_SECS,
            servers: ALL_SERVERS.to_vec(),
            servers_explicit: false,
            scenarios: SCENARIOS.iter().collect(),
            scenarios_explicit: false,
            connections: None,
            threads: DEFAULT_WRK_THREADS,
            warmup_secs: DEFAULT_WARMUP_SECS,
            serve_origin: None,
            wrk: PathBuf::from("wrk"),
            scripts_dir: PathBuf::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|a| format!("argument is not UTF-8: {a:?}"))?;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => args
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| format!("{name} needs a value")),
                }
            };
            match flag.as_str() {
                // cargo passes `--bench` to every bench binary it runs.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--duration" => {
                    opts.duration_secs = parse_positive(&value("--duration")?, "--duration")?;
                }
                "--warmup" => {
                    let v = value("--warmup")?;
                    opts.warmup_secs = v.trim().parse().map_err(|_| {
                        format!("--warmup must be a whole number of seconds, got `{v}`")
                    })?;
                }
                "--serve-origin" => {
                    let v = value("--serve-origin")?;
                    let addr: SocketAddr = v
                        .parse()
                        .map_err(|_| format!("--serve-origin needs IP:PORT, got `{v}`"))?;
                    if !addr.ip().is_loopback() {
                        return Err("--serve-origin only binds loopback addresses".to_owned());
                    }
                    opts.serve_origin = Some(addr);
                }
                "--connections" => {
                    let n = parse_positive(&value("--connections")?, "--connections")?;
                    opts.connections = Some(
                        u32::try_from(n).map_err(|_| "--connections is too large".to_owned())?,
                    );
                }
                "--threads" => {
                    let n = parse_positive(&value("--threads")?, "--threads")?;
                    opts.threads =
                        u32::try_from(n).map_err(|_| "--threads is too large".to_owned())?;
                }
                "--only" => {
                    opts.servers = parse_list(&value("--only")?, |s| {
                        ServerKind::parse(s).ok_or_else(|| format!("unknown server `{s}`"))
                    })?;
                    opts.servers_explicit = true;
                }
                "--scenarios" => {
                    opts.scenarios = parse_list(&value("--scenarios")?, |s| {
                        SCENARIOS
                            .iter()
                            .find(|sc| sc.name.eq_ignore_ascii_case(s))
                            .ok_or_else(|| format!("unknown scenario `{s}`"))
                    })?;
                    opts.scenarios_explicit = true;
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(Some(opts))
    }

    fn connections_for(&self, scenario: &Scenario) -> u32 {
        self.connections.unwrap_or(scenario.connections)
    }
}

fn parse_positive(s: &str, name: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name} must be a positive integer, got `{s}`")),
    }
}

fn parse_list<T: PartialEq>(
    s: &str,
    mut item: impl FnMut(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = item(part)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(format!("empty list `{s}`"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Origin
// ---------------------------------------------------------------------------

struct Origin {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl Origin {
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Everything the origin serves, built once.
struct Bodies {
    /// `MAX_BODY` bytes of `x`: `/bytes/N`, `/pass/N` and `/obj/*` are slices of it.
    filler: Bytes,
    /// `/esi/page`.
    esi_page: Bytes,
    /// `/frag/1` ..= `/frag/ESI_FRAGMENTS`, in order.
    fragments: Vec<Bytes>,
}

impl Bodies {
    fn new() -> Self {
        Bodies {
            filler: Bytes::from(vec![b'x'; MAX_BODY]),
            esi_page: Bytes::from(esi_page()),
            fragments: (1..=ESI_FRAGMENTS)
                .map(|n| Bytes::from(esi_fragment(n)))
                .collect(),
        }
    }
}

/// The `ESI_PAGE_SIZE`-byte HTML page: filler paragraphs with one
/// `<esi:include src="/frag/N"/>` between each two of them.
fn esi_page() -> Vec<u8> {
    let head = "<!DOCTYPE html>\n<html><head><title>lacquer ESI bench</title></head><body>\n";
    let tail = "</body></html>\n";
    let includes: Vec<String> = (1..=ESI_FRAGMENTS)
        .map(|n| format!("<esi:include src=\"/frag/{n}\"/>\n"))
        .collect();
    let fixed = head.len() + tail.len() + includes.iter().map(String::len).sum::<usize>();
    let filler = ESI_PAGE_SIZE - fixed;
    let gaps = ESI_FRAGMENTS + 1;
    let mut page = String::with_capacity(ESI_PAGE_SIZE);
    page.push_str(head);
    for gap in 0..gaps {
        // The last paragraph takes the remainder, so the page is exactly ESI_PAGE_SIZE.
        let len = if gap + 1 == gaps {
            filler - filler / gaps * (gaps - 1)
        } else {
            filler / gaps
        };
        // "<p>" + text + "</p>\n"
        page.push_str("<p>");
        page.push_str(&"lorem ipsum ".repeat(len / 12 + 1)[..len - 8]);
        page.push_str("</p>\n");
        if let Some(include) = includes.get(gap) {
            page.push_str(include);
        }
    }
    page.push_str(tail);
    assert_eq!(page.len(), ESI_PAGE_SIZE, "ESI page size");
    page.into_bytes()
}

/// Fragment `n`: `OBJ_SIZE` bytes of HTML, different for each `n`.
fn esi_fragment(n: usize) -> Vec<u8> {
    let open = format!("<div class=\"frag-{n}\">");
    let close = "</div>\n";
    let fill = char::from(b'a' + (n % 26) as u8);
    let mut frag = open.clone();
    frag.push_str(&fill.to_string().repeat(OBJ_SIZE - open.len() - close.len()));
    frag.push_str(close);
    assert_eq!(frag.len(), OBJ_SIZE, "ESI fragment size");
    frag.into_bytes()
}

/// Starts the origin on `listener` on a single-threaded runtime in a background thread.
fn start_origin(listener: TcpListener) -> Origin {
    listener
        .set_nonblocking(true)
        .expect("origin: set listener non-blocking");
    let addr = listener.local_addr().expect("origin: local address");
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let bodies = Arc::new(Bodies::new());
    thread::Builder::new()
        .name("origin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin: build tokio runtime");
            rt.block_on(serve_origin(listener, bodies, counter));
        })
        .expect("origin: spawn thread");
    Origin { addr, requests }
}

async fn serve_origin(listener: TcpListener, bodies: Arc<Bodies>, counter: Arc<AtomicU64>) {
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("origin: register listener with tokio");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE; back off instead of spinning.
                eprintln!("origin: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let bodies = Arc::clone(&bodies);
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::Relaxed);
                let resp = origin_response(&req, &bodies);
                async move { Ok::<_, Infallible>(resp) }
            });
            // Connection errors (client resets) are expected under load.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The origin's routes (the query string is ignored):
/// - `/bytes/N`: N bytes, cacheable for an hour, with an ETag.
/// - `/pass/N`: N bytes, `no-store, private`.
/// - `/obj/KEY`: `OBJ_SIZE` bytes for any non-empty KEY, cacheable for an hour.
/// - `/esi/page`: the ESI page, cacheable, with `Surrogate-Control: content="ESI/1.0"`.
/// - `/frag/N` (N in 1..=3): an ESI fragment, cacheable.
///
/// Cacheable responses answer a matching `If-None-Match` with 304.
fn origin_response<B>(req: &Request<B>, bodies: &Bodies) -> Response<Full<Bytes>> {
    let simple = |status: StatusCode, msg: String| {
        let mut resp = Response::new(Full::new(Bytes::from(msg)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return simple(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
    }
    let path = req.uri().path();
    let sized = |n: &str| {
        n.parse::<usize>()
            .ok()
            .filter(|&n| n <= bodies.filler.len())
            .map(|n| bodies.filler.slice(..n))
    };
    let bad_len = || {
        let msg = format!("N must be an integer in 0..={}\n", bodies.filler.len());
        simple(StatusCode::BAD_REQUEST, msg)
    };
    let octets = HeaderValue::from_static("application/octet-stream");
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    let fragment = path
        .strip_prefix("/frag/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=ESI_FRAGMENTS).contains(n));
    // (body, content type, ETag for cacheable responses, ESI page?)
    let (body, content_type, etag, esi) = if let Some(n) = path.strip_prefix("/bytes/") {
        let Some(body) = sized(n) else {
            return bad_len();
        };
        let etag = format!("bytes-{}", body.len());
        (body, octets, Some(etag), false)
    } else if let Some(n) = path.strip_prefix("/pass/") {
        let Some(body) = sized(n) else {
            return bad_len();
        };
        (body, octets, None, false)
    } else if path
        .strip_prefix("/obj/")
        .is_some_and(|key| !key.is_empty())
    {
        let body = bodies.filler.slice(..OBJ_SIZE);
        (body, octets, Some(format!("obj-{OBJ_SIZE}")), false)
    } else if path == ESI_PAGE_PATH {
        let body = bodies.esi_page.clone();
        (body, html, Some("esi-page".to_owned()), true)
    } else if let Some(n) = fragment {
        let body = bodies.fragments[n - 1].clone();
        (body, html, Some(format!("frag-{n}")), false)
    } else {
        let msg = "try /bytes/N, /pass/N, /obj/KEY, /esi/page or /frag/1..3\n";
        return simple(StatusCode::NOT_FOUND, msg.into());
    };

    let mut resp = Response::new(Full::new(body));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if esi {
        // The Edge Architecture handshake: lacquer processes ESI on it; the
        // bench's VCL turns it into `beresp.do_esi` for Varnish.
        headers.insert(
            HeaderName::from_static("surrogate-control"),
            HeaderValue::from_static("content=\"ESI/1.0\""),
        );
    }
    let Some(etag) = etag else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store, private"));
        return resp;
    };
    let etag = HeaderValue::from_str(&format!("\"{etag}\""))
        .expect("an ETag made of letters, digits and dashes is a valid header value");
    let not_modified = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.as_bytes() == etag.as_bytes())
        });
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    headers.insert(ETAG, etag);
    if not_modified {
        resp.headers_mut().remove(CONTENT_TYPE);
        *resp.body_mut() = Full::new(Bytes::new());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    resp
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// Child processes currently running (servers and wrk), so that Ctrl-C can
/// stop them and remove their temp dirs: (root pid, temp dir).
static LIVE: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<(u32, Option<PathBuf>)>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Temp dirs not tied to a child process (the wrk scripts), for Ctrl-C to remove.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn scratch() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    SCRATCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On Ctrl-C: stop every live server, remove its temp dir and exit 130.
/// (Children share our process group, so they get the SIGINT too; this is
/// mostly about not leaving temp dirs and stray workers behind.)
fn install_ctrl_c_handler() {
    let spawned = thread::Builder::new().name("ctrl-c".into()).spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("\ninterrupted: stopping servers");
            let entries = std::mem::take(&mut *live());
            for (pid, dir) in entries {
                stop_tree(pid, None);
                if let Some(dir) = dir {
                    let _ = fs::remove_dir_all(dir);
                }
            }
            for dir in std::mem::take(&mut *scratch()) {
                let _ = fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        }
    });
    if let Err(e) = spawned {
        eprintln!("warning: no Ctrl-C handler: {e}");
    }
}

/// Spawns `cmd` and records it in [`LIVE`]; the caller unregisters it.
fn spawn_registered(cmd: &mut Command, dir: Option<PathBuf>) -> io::Result<Child> {
    // Hold the lock across spawn so a Ctrl-C can't slip in between.
    let mut registry = live();
    let child = cmd.spawn()?;
    registry.push((child.id(), dir));
    Ok(child)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = env::temp_dir().join(format!(
            "lacquer-bench-{}-{tag}-{nanos:x}",
            std::process::id()
        ));
        fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        scratch().retain(|d| *d != self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A proxy child process. Dropping it stops the whole process tree (TERM, then
/// KILL after a grace period) and then removes its temp dir.
struct RunningServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    // Declared last: dropped after `Drop::drop` has stopped the processes.
    _dir: TempDir,
}

impl RunningServer {
    fn spawn(mut cmd: Command, addr: SocketAddr, dir: TempDir) -> Result<Self, String> {
        let log = dir.0.join("server.log");
        let out = fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = spawn_registered(&mut cmd, Some(dir.0.clone()))
            .map_err(|e| format!("failed to start {program}: {e}"))?;
        Ok(RunningServer {
            child,
            addr,
            log,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n    ");
        if tail.is_empty() {
            "(log is empty)".to_owned()
        } else {
            format!("last log lines:\n    {tail}")
        }
    }

    /// Waits until a request through the proxy succeeds.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_err = String::from("no attempt made");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "exited during startup ({status}); {}",
                    self.log_tail()
                ));
            }
            match http_get(self.addr, "/pass/1") {
                Ok(resp) if resp.status == 200 => return Ok(()),
                Ok(resp) => last_err = format!("status {}", resp.status),
                Err(e) => last_err = e.to_string(),
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "not ready after {STARTUP_TIMEOUT:?} (last attempt: {last_err}); {}",
            self.log_tail()
        ))
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let pid = self.pid();
        live().retain(|(p, _)| *p != pid);
        stop_tree(pid, Some(&mut self.child));
    }
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM to `root`, then SIGKILL to whatever of its process tree is still
/// alive after the grace period. Reaps `child` if given.
fn stop_tree(root: u32, mut child: Option<&mut Child>) {
    let mut tree = descendants(root);
    tree.push(root);
    send_signal(root, "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        if let Some(c) = child.as_deref_mut() {
            let _ = c.try_wait();
        }
        if !tree.iter().any(|&pid| is_alive(pid)) || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    for &pid in &tree {
        if is_alive(pid) {
            send_signal(pid, "KILL");
        }
    }
    if let Some(c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// (pid, ppid, state) of every process, from /proc/*/stat.
fn process_table() -> Vec<(u32, u32, char)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ..."; comm may contain spaces and parens.
            let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = rest.next()?.chars().next()?;
            let ppid = rest.next()?.parse().ok()?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// All descendants of `root` (not including it).
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid, _) in process_table() {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Some(kids) = children.get(&pid) {
            out.extend_from_slice(kids);
            stack.extend_from_slice(kids);
        }
    }
    out
}

fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Peak RSS (VmHWM) in KiB summed over `root` and all its descendants, and the
/// number of processes counted.
fn peak_rss_kib(root: u32) -> (u64, usize) {
    let mut pids = descendants(root);
    pids.push(root);
    let mut total = 0;
    let mut counted = 0;
    for pid in pids {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let hwm = status.lines().find_map(|l| {
            l.strip_prefix("VmHWM:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        });
        if let Some(kib) = hwm {
            total += kib;
            counted += 1;
        }
    }
    (total, counted)
}

/// Above this share of the machine's CPU used by outside processes during a
/// measured run, the run is flagged.
const OTHER_CPU_WARN: f64 = 0.05;

/// CPU time counters, to tell how much of a run's CPU went to processes other
/// than this bench (origin and reaped wrk children included) and the servers.
struct CpuSnapshot {
    /// All CPUs, all states (including idle), in clock ticks.
    total: u64,
    /// All CPUs, busy states only.
    busy: u64,
    /// This process and the servers' trees, including reaped children.
    ours: u64,
}

impl CpuSnapshot {
    fn take(servers: &[u32]) -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        // user + nice + system + steal. irq/softirq time is left out: it is
        // not charged to any process, and on loopback it is mostly our own
        // traffic. guest time is already counted in user.
        let busy = field(0) + field(1) + field(2) + field(7);
        let total = busy + field(3) + field(4) + field(5) + field(6);
        let mut ours = process_ticks("self");
        let mut tree: Vec<u32> = servers.iter().flat_map(|&s| descendants(s)).collect();
        tree.extend_from_slice(servers);
        ours += tree
            .iter()
            .map(|pid| process_ticks(&pid.to_string()))
            .sum::<u64>();
        Some(CpuSnapshot { total, busy, ours })
    }

    /// Share (0..=1) of all CPU time since `self` spent by other processes.
    fn other_share(&self, servers: &[u32]) -> Option<f64> {
        let now = CpuSnapshot::take(servers)?;
        let total = now.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let busy = now.busy.saturating_sub(self.busy);
        let ours = now.ours.saturating_sub(self.ours);
        Some(busy.saturating_sub(ours) as f64 / total as f64)
    }
}

/// utime + stime + cutime + cstime of `/proc/{pid}/stat`, in clock ticks.
fn process_ticks(pid: &str) -> u64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    // After "pid (comm)": state is index 0, utime 11, stime 12, cutime 13, cstime 14.
    stat[close + 1..]
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map_err(|e| format!("local address: {e}"))
}

/// Finds `name` on PATH, also trying the sbin directories that a non-root
/// PATH often lacks (varnishd and nginx live in /usr/sbin on Debian).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn running_as_root() -> bool {
    // Second field of "Uid:" is the effective uid.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Starting the proxies
// ---------------------------------------------------------------------------

/// Builds the command for `kind`, or `Ok(None)` if its binary isn't installed.
fn server_command(
    kind: ServerKind,
    listen: SocketAddr,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Option<Command>, String> {
    match kind {
        ServerKind::Lacquer => Ok(Some(lacquer_command(
            &lacquer_bin(),
            listen,
            origin,
            free_port()?,
        ))),
        ServerKind::Varnish => {
            let Some(bin) = find_program("varnishd") else {
                return Ok(None);
            };
            let vcl = dir.join("bench.vcl");
            fs::write(&vcl, varnish_vcl(origin))
                .map_err(|e| format!("write {}: {e}", vcl.display()))?;
            // Runs fine as root with the default `-j unix` jail (it drops to
            // the varnish/vcache users).
            let mut cmd = Command::new(bin);
            cmd.arg("-F")
                .arg("-n")
                .arg(dir.join("varnish"))
                .arg("-a")
                .arg(listen.to_string())
                .arg("-f")
                .arg(vcl)
                .arg("-s")
                .arg(format!("malloc,{STORAGE_MIB}m"));
            Ok(Some(cmd))
        }
        ServerKind::Nginx => {
            let Some(bin) = find_program("nginx") else {
                return Ok(None);
            };
            let conf = dir.join("nginx.conf");
            fs::write(&conf, nginx_config(listen, origin, dir, running_as_root()))
                .map_err(|e| format!("write {}: {e}", conf.display()))?;
            let mut prefix = dir.as_os_str().to_owned();
            prefix.push("/");
            let mut cmd = Command::new(bin);
            cmd.arg("-p").arg(prefix).arg("-c").arg(conf);
            Ok(Some(cmd))
        }
    }
}

fn lacquer_bin() -> PathBuf {
    env::var_os("LACQUER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lacquer")))
}

/// What `varnishd -b ORIGIN` does (the builtin VCL), plus ESI for responses
/// that carry the `Surrogate-Control: content="ESI/1.0"` handshake. Nothing
/// returns from the subroutine, so the builtin `vcl_backend_response` still
/// runs after it.
fn varnish_vcl(origin: SocketAddr) -> String {
    format!(
        "\
vcl 4.1;

backend origin {{
    .host = \"{ip}\";
    .port = \"{port}\";
}}

sub vcl_backend_response {{
    if (beresp.http.Surrogate-Control ~ \"ESI/1.0\") {{
        unset beresp.http.Surrogate-Control;
        set beresp.do_esi = true;
    }}
}}
",
        ip = origin.ip(),
        port = origin.port()
    )
}

/// nginx as a caching proxy: honours origin Cache-Control (no
/// `proxy_cache_valid`), keeps upstream connections alive, and does not cap
/// client keep-alive at nginx's default 1000 requests per connection.
fn nginx_config(listen: SocketAddr, origin: SocketAddr, dir: &Path, root: bool) -> String {
    let d = dir.display();
    // As root, workers would run as `nobody` and could not write the cache dir.
    let user = if root { "user root;\n" } else { "" };
    format!(
        "\
daemon off;
master_process on;
worker_processes 2;
{user}pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;

    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;

    proxy_cache_path {d}/cache levels=1:2 keys_zone=bench:16m max_size={STORAGE_MIB}m inactive=1h use_temp_path=off;

    upstream origin {{
        server {origin};
        keepalive 64;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache bench;
        }}
    }}
}}
"
    )
}

// ---------------------------------------------------------------------------
// HTTP client for readiness and warm-up
// ---------------------------------------------------------------------------

struct SimpleResponse {
    status: u16,
    /// The body, de-chunked if it came with `Transfer-Encoding: chunked`.
    body: Vec<u8>,
}

/// One `GET` over a fresh connection with `Connection: close`.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<SimpleResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: lacquer-bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let bad = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of response head"))?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let raw = &buf[head_end + 4..];
    let body = if chunked {
        dechunk(raw).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        raw.to_vec()
    };
    Ok(SimpleResponse { status, body })
}

/// Decodes a complete `Transfer-Encoding: chunked` body (trailers ignored).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&data[..line_end]).ok()?;
        // "SIZE[;extensions]"
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        let chunk = data.get(..size)?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..)?;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks that the ESI page fetched through a proxy was assembled: every
/// fragment's bytes are in it and no `<esi:` markup is left. `Err` says what
/// is wrong.
fn check_esi_page(body: &[u8]) -> Result<(), String> {
    let raw_tags = contains(body, b"<esi:");
    let missing: Vec<String> = (1..=ESI_FRAGMENTS)
        .filter(|&n| !contains(body, &esi_fragment(n)))
        .map(|n| format!("/frag/{n}"))
        .collect();
    match (raw_tags, missing.is_empty()) {
        (false, true) => Ok(()),
        (true, _) if missing.len() == ESI_FRAGMENTS => Err(format!(
            "ESI NOT PROCESSED: page delivered raw ({} bytes, `<esi:` tags left, no fragment)",
            body.len()
        )),
        _ => Err(format!(
            "ESI INCOMPLETE: {} bytes, `<esi:` tags left: {}, fragments missing: {}",
            body.len(),
            if raw_tags { "yes" } else { "no" },
            if missing.is_empty() {
                "none".to_owned()
            } else {
                missing.join(" ")
            }
        )),
    }
}

// ---------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------

#[derive(Default)]
struct WrkStats {
    requests_per_sec: f64,
    /// Requests completed during the run (wrk's "N requests in Xs").
    requests: u64,
    /// Microseconds.
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    non_2xx: u64,
    socket_errors: u64,
}

impl WrkStats {
    fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// One wrk invocation.
struct WrkRun {
    url: String,
    /// Lua script (`-s`) and the argument its `init(args)` gets.
    script: Option<(PathBuf, String)>,
    threads: u32,
    connections: u32,
    secs: u64,
    /// Shown in the progress line, e.g. `lacquer hit-1KiB`.
    label: String,
}

impl WrkRun {
    fn args(&self) -> Vec<String> {
        // wrk refuses fewer connections than threads.
        let threads = self.threads.min(self.connections);
        let mut args = vec![
            format!("-t{threads}"),
            format!("-c{}", self.connections),
            format!("-d{}s", self.secs),
            "--latency".to_owned(),
        ];
        if let Some((script, _)) = &self.script {
            args.push("-s".to_owned());
            args.push(script.display().to_string());
        }
        args.push(self.url.clone());
        if let Some((_, arg)) = &self.script {
            args.push("--".to_owned());
            args.push(arg.clone());
        }
        args
    }

    fn describe(&self) -> String {
        format!("wrk {}", self.args().join(" "))
    }
}

/// A tag no earlier run of this process used, for the URLs a script makes up.
fn unique_tag() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:x}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn run_wrk(wrk: &Path, run: &WrkRun) -> Result<WrkStats, String> {
    let mut cmd = Command::new(wrk);
    cmd.args(run.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_registered(&mut cmd, None).map_err(|e| format!("failed to run wrk: {e}"))?;
    let pid = child.id();
    let progress = Progress::start(&run.label, run.secs);
    let out = child.wait_with_output();
    drop(progress);
    live().retain(|(p, _)| *p != pid);
    let out = out.map_err(|e| format!("waiting for wrk: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_wrk(&stdout).ok_or_else(|| format!("could not parse wrk output:\n{stdout}"))
}

/// A progress line on stderr, `[LABEL] n/N s`, redrawn in place every second
/// until dropped. On a terminal the line is erased at the end; otherwise it is
/// ended with a newline so the next message starts on a line of its own.
struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Progress {
    fn start(label: &str, secs: u64) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let label = label.to_owned();
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let start = Instant::now();
                loop {
                    let elapsed = start.elapsed().as_secs();
                    eprint!("\r[{label}] {}/{secs} s", elapsed.min(secs));
                    let _ = io::stderr().flush();
                    let next_tick = start + Duration::from_secs(elapsed + 1);
                    match stopped.recv_timeout(next_tick.saturating_duration_since(Instant::now()))
                    {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                if io::stderr().is_terminal() {
                    eprint!("\r\x1b[K");
                } else {
                    eprintln!();
                }
            })
            .ok();
        Progress {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Parses `wrk --latency` output. `None` if there is no `Requests/sec` line.
fn parse_wrk(out: &str) -> Option<WrkStats> {
    let mut stats = WrkStats::default();
    let mut have_rps = false;
    let mut in_distribution = false;
    for line in out.lines().map(str::trim) {
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((pct, value)) = line.split_once('%') {
                if let Ok(pct) = pct.trim().parse::<f64>() {
                    let us = parse_latency_us(value.trim());
                    if pct == 50.0 {
                        stats.p50_us = us;
                    } else if pct == 99.0 {
                        stats.p99_us = us;
                    }
                    continue;
                }
            }
            in_distribution = false;
        }
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            stats.requests_per_sec = v.trim().parse().ok()?;
            have_rps = true;
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            // "123456 requests in 10.00s, 1.23GB read"
            stats.requests = n.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            stats.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            stats.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    have_rps.then_some(stats)
}

/// "850.00us", "1.23ms", "2.00s", "1.50m" → microseconds.
fn parse_latency_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = s[..split].trim().parse().ok()?;
    let scale = match &s[split..] {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * scale)
}

// ---------------------------------------------------------------------------
// wrk Lua scripts
// ---------------------------------------------------------------------------

const MIX_SCRIPT: &str = "mix-90-10.lua";
const SCALE_OUT_SCRIPT: &str = "scale-out.lua";

/// Shared head of the scripts: each wrk thread gets an `id` (0, 1, ...) and
/// seeds its random numbers with it.
const SCRIPT_THREAD_IDS: &str = "\
local threads = 0

function setup(thread)
   thread:set(\"id\", threads)
   threads = threads + 1
end
";

/// `mix-90-10`: every `MIX_MISS_EVERY`-th request of each wrk thread is for a
/// URL never requested before (`/obj/miss-TAG-THREAD-N`, TAG being the
/// script argument, new for every wrk run); the others are for one of the
/// `MIX_HOT_URLS` warmed URLs `/obj/hot-K`, picked at random.
fn mix_script() -> String {
    format!(
        "\
-- mix-90-10, written by benches/load.rs: 1 request in {MIX_MISS_EVERY} is a miss.
{SCRIPT_THREAD_IDS}
local counter = 0
local miss_prefix

function init(args)
   miss_prefix = \"/obj/miss-\" .. (args[1] or tostring(os.time())) .. \"-\" .. id .. \"-\"
   math.randomseed(id + 1)
end

function request()
   counter = counter + 1
   if counter % {MIX_MISS_EVERY} == 0 then
      return wrk.format(\"GET\", miss_prefix .. counter)
   end
   return wrk.format(\"GET\", \"/obj/hot-\" .. math.random({MIX_HOT_URLS}))
end
"
    )
}

/// `scale-out`: each request is for one of `SCALE_OUT_URLS` URLs
/// `/obj/so-K`, picked at random.
fn scale_out_script() -> String {
    format!(
        "\
-- scale-out, written by benches/load.rs: {SCALE_OUT_URLS} distinct URLs, random order.
{SCRIPT_THREAD_IDS}
function init(args)
   math.randomseed(id + 1)
end

function request()
   return wrk.format(\"GET\", \"/obj/so-\" .. math.random(0, {last}))
end
",
        last = SCALE_OUT_URLS - 1
    )
}

fn write_scripts(dir: &Path) -> Result<(), String> {
    for (name, text) in [
        (MIX_SCRIPT, mix_script()),
        (SCALE_OUT_SCRIPT, scale_out_script()),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running a server through the scenarios
// ---------------------------------------------------------------------------

enum Outcome {
    Measured(WrkStats),
    /// wrk or the warm-up failed; the message went to stderr.
    Failed,
    /// The server can't do this scenario (nginx and ESI); shown in the table.
    NotApplicable(&'static str),
}

impl Outcome {
    fn stats(&self) -> Option<&WrkStats> {
        match self {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

impl From<Result<WrkStats, String>> for Outcome {
    fn from(r: Result<WrkStats, String>) -> Self {
        r.map_or(Outcome::Failed, Outcome::Measured)
    }
}

struct Row {
    scenario: &'static str,
    server: ServerKind,
    stats: Outcome,
    origin_requests: u64,
    /// Share of all CPU time used by processes outside the bench, server and wrk.
    other_cpu: Option<f64>,
    /// What went wrong with this row, if anything (shown in the table).
    note: Option<String>,
}

/// 1 - origin requests / client requests, clamped to 0..=1. `None` without
/// a client request to divide by.
fn hit_ratio(origin_requests: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| (1.0 - origin_requests as f64 / requests as f64).clamp(0.0, 1.0))
}

struct ServerOutcome {
    rows: Vec<Row>,
    /// (KiB, processes counted)
    peak_rss: (u64, usize),
}

enum BenchError {
    NotInstalled,
    Failed(String),
}

/// Expected body length of `/bytes/N` and `/pass/N`.
fn path_len(path: &str) -> Option<usize> {
    path.rsplit('/').next().and_then(|n| n.parse().ok())
}

/// Fills the cache of the proxy at `addr` for `sc`: one GET per URL the
/// scenario expects to hit, then a second GET, warning on stderr if that one
/// reached the origin. `Ok(Some(note))` when the proxy answered but its
/// answer is wrong in a way that doesn't stop the measurement (ESI page not
/// assembled); `Err` when the scenario can't be run.
fn warm(
    label: &str,
    addr: SocketAddr,
    sc: &Scenario,
    origin: &Origin,
) -> Result<Option<String>, String> {
    let paths: Vec<(String, Option<usize>)> = match sc.load {
        Load::Url if sc.hit => vec![(sc.path.to_owned(), path_len(sc.path))],
        Load::Url => Vec::new(),
        // The assembled size depends on the proxy; check_esi_page checks the content.
        Load::Esi => vec![(sc.path.to_owned(), None)],
        Load::Mix => (1..=MIX_HOT_URLS)
            .map(|k| (format!("/obj/hot-{k}"), Some(OBJ_SIZE)))
            .collect(),
        Load::ScaleOut => (0..SCALE_OUT_URLS)
            .map(|k| (format!("/obj/so-{k}"), Some(OBJ_SIZE)))
            .collect(),
    };
    let mut note = None;
    let mut uncached = Vec::new();
    for (path, expected) in &paths {
        let resp = http_get(addr, path).map_err(|e| format!("warm-up GET {path}: {e}"))?;
        if resp.status != 200 || expected.is_some_and(|n| resp.body.len() != n) {
            let expected = expected.map_or_else(String::new, |n| format!(", {n}"));
            return Err(format!(
                "warm-up GET {path}: status {}, {} body bytes (expected 200{expected})",
                resp.status,
                resp.body.len()
            ));
        }
        let before = origin.requests();
        let again = http_get(addr, path);
        if !again.as_ref().is_ok_and(|r| r.status == 200) || origin.requests() != before {
            uncached.push(path.as_str());
        }
        if sc.load == Load::Esi {
            // Check the cached copy too: that is what wrk will get.
            let checked = check_esi_page(&resp.body).and_then(|()| match &again {
                Ok(r) => check_esi_page(&r.body).map_err(|e| format!("second GET: {e}")),
                Err(e) => Err(format!("second GET failed: {e}")),
            });
            if let Err(e) = checked {
                eprintln!("[{label}] warning: {e}");
                note = Some(e);
            }
        }
    }
    if !uncached.is_empty() {
        eprintln!(
            "[{label}] warning: {} of {} warm-up URLs reached the origin again on a \
             second GET (not cached?), e.g. {}",
            uncached.len(),
            paths.len(),
            uncached[0]
        );
    }
    Ok(note)
}

/// Untimed warm-up run (if `--warmup` is not 0), then the measured run:
/// returns the measured run's figures, the origin requests it caused and the
/// share of the CPU other processes took meanwhile.
fn measure(
    opts: &Options,
    origin: &Origin,
    label: &str,
    servers: &[u32],
    make_run: impl Fn(&str, u64) -> WrkRun,
) -> (Result<WrkStats, String>, u64, Option<f64>) {
    if opts.warmup_secs > 0 {
        // Untimed: lets thread pools, connection pools and the like reach
        // steady state before measuring. Results are discarded.
        thread::sleep(SETTLE);
        let run = make_run(&format!("{label} warm-up"), opts.warmup_secs);
        if let Err(e) = run_wrk(&opts.wrk, &run) {
            eprintln!("[{label}] warm-up: {e}");
        }
    }
    // Let in-flight work (e.g. pass fetches) drain so it isn't counted
    // against this run.
    thread::sleep(SETTLE);
    let run = make_run(label, opts.duration_secs);
    eprintln!("[{label}] {}", run.describe());
    let before = origin.requests();
    let cpu_before = CpuSnapshot::take(servers);
    let stats = run_wrk(&opts.wrk, &run);
    let origin_requests = origin.requests() - before;
    let other_cpu = cpu_before.and_then(|b| b.other_share(servers));
    if let Some(share) = other_cpu.filter(|&s| s > OTHER_CPU_WARN) {
        eprintln!(
            "[{label}] warning: other processes used {:.0}% of the machine's CPU \
             during this run; its figures are skewed",
            share * 100.0
        );
    }
    if let Err(e) = &stats {
        eprintln!("[{label}] {e}");
    }
    (stats, origin_requests, other_cpu)
}

fn bench_server(
    kind: ServerKind,
    opts: &Options,
    origin: &Origin,
) -> Result<ServerOutcome, BenchError> {
    let dir = TempDir::new(kind.name())
        .map_err(|e| BenchError::Failed(format!("create temp dir: {e}")))?;
    let listen = free_port().map_err(BenchError::Failed)?;
    let cmd = server_command(kind, listen, origin.addr, &dir.0)
        .map_err(BenchError::Failed)?
        .ok_or(BenchError::NotInstalled)?;
    eprintln!("[{kind}] starting on {listen}: {}", describe(&cmd));
    let mut server = RunningServer::spawn(cmd, listen, dir).map_err(BenchError::Failed)?;
    server.wait_ready().map_err(BenchError::Failed)?;

    let mut rows = Vec::new();
    for &sc in opts.scenarios.iter().filter(|s| s.load != Load::ScaleOut) {
        let label = format!("{kind} {}", sc.name);
        let mut row = Row {
            scenario: sc.name,
            server: kind,
            stats: Outcome::Failed,
            origin_requests: 0,
            other_cpu: None,
            note: None,
        };
        if let Some(why) = kind.unsupported(sc.load) {
            eprintln!("[{label}] skipped: {why}");
            row.stats = Outcome::NotApplicable(why);
            rows.push(row);
            continue;
        }
        match warm(&label, listen, sc, origin) {
            Ok(note) => row.note = note,
            Err(e) => {
                eprintln!("[{label}] error: {e}");
                row.note = Some(e);
                rows.push(row);
                continue;
            }
        }
        let mix = opts.scripts_dir.join(MIX_SCRIPT);
        let make_run = |label: &str, secs| WrkRun {
            url: format!("http://{listen}{}", sc.path),
            script: (sc.load == Load::Mix).then(|| (mix.clone(), unique_tag())),
            threads: opts.threads,
            connections: opts.connections_for(sc),
            secs,
            label: label.to_owned(),
        };
        let (stats, origin_requests, other_cpu) =
            measure(opts, origin, &label, &[server.pid()], make_run);
        row.stats = stats.into();
        row.origin_requests = origin_requests;
        row.other_cpu = other_cpu;
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(BenchError::Failed(format!(
                "exited during {} ({status}); {}",
                sc.name,
                server.log_tail()
            )));
        }
        rows.push(row);
    }
    let peak_rss = peak_rss_kib(server.pid());
    drop(server);
    Ok(ServerOutcome { rows, peak_rss })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Scale-out: HAProxy in front of one, then two lacquer nodes
// ---------------------------------------------------------------------------

struct ScaleRow {
    nodes: usize,
    stats: Outcome,
    origin_requests: u64,
    other_cpu: Option<f64>,
    /// Of the `SCALE_OUT_URLS` warm-up GETs, how many reached the origin.
    warm_fetches: u64,
}

/// HAProxy in front of `nodes`, hashing the URI on a consistent-hash ring as a
/// cache cluster would. The one-node and two-node runs use this same config,
/// only the `server` lines differ.
fn haproxy_config(bind: SocketAddr, nodes: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "\
global
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    maxconn 4096

frontend cache
    bind {bind}
    default_backend lacquer

backend lacquer
    balance uri
    hash-type consistent
"
    );
    for (i, node) in nodes.iter().enumerate() {
        cfg.push_str(&format!("    server node{} {node}\n", i + 1));
    }
    cfg
}

fn start_haproxy(
    bin: &Path,
    bind: SocketAddr,
    nodes: &[SocketAddr],
) -> Result<RunningServer, String> {
    let dir = TempDir::new("haproxy").map_err(|e| format!("create temp dir: {e}"))?;
    let cfg = dir.0.join("haproxy.cfg");
    fs::write(&cfg, haproxy_config(bind, nodes))
        .map_err(|e| format!("write {}: {e}", cfg.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&cfg).arg("-db");
    eprintln!(
        "[scale-out] haproxy on {bind} -> {} lacquer node{}: {}",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        describe(&cmd)
    );
    let mut haproxy = RunningServer::spawn(cmd, bind, dir).map_err(|e| format!("haproxy: {e}"))?;
    haproxy.wait_ready().map_err(|e| format!("haproxy: {e}"))?;
    Ok(haproxy)
}

fn bench_scale_out(opts: &Options, origin: &Origin) -> Result<Vec<ScaleRow>, BenchError> {
    let haproxy_bin = find_program("haproxy").ok_or(BenchError::NotInstalled)?;
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let dir = TempDir::new(&format!("lacquer-node{i}"))
            .map_err(|e| BenchError::Failed(format!("create temp dir: {e}")))?;
        let listen = free_port().map_err(BenchError::Failed)?;
        let admin = free_port().map_err(BenchError::Failed)?;
        let cmd = lacquer_command(&lacquer_bin(), listen, origin.addr, admin);
        eprintln!(
            "[scale-out] lacquer node {i} on {listen}: {}",
            describe(&cmd)
        );
        let mut node = RunningServer::spawn(cmd, listen, dir)
            .map_err(|e| BenchError::Failed(format!("lacquer node {i}: {e}")))?;
        node.wait_ready()
            .map_err(|e| BenchError::Failed(format!("lacquer node {i}: {e}")))?;
        nodes.push(node);
    }
    let node_addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    // The same address for both runs: proxies key their cache on the Host
    // header too, and wrk and the warm-up send the address as Host.
    let bind = free_port().map_err(BenchError::Failed)?;

    let script = opts.scripts_dir.join(SCALE_OUT_SCRIPT);
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.load == Load::ScaleOut)
        .expect("the scale-out scenario is in SCENARIOS");
    let mut rows = Vec::new();
    for count in [1, 2] {
        let label = format!(
            "scale-out {count} node{}",
            if count == 1 { "" } else { "s" }
        );
        let mut haproxy =
            start_haproxy(&haproxy_bin, bind, &node_addrs[..count]).map_err(BenchError::Failed)?;
        let mut row = ScaleRow {
            nodes: count,
            stats: Outcome::Failed,
            origin_requests: 0,
            other_cpu: None,
            warm_fetches: 0,
        };
        // Node 1 has every URL from the one-node run; with two nodes, the
        // URLs the ring gives to node 2 are misses there. About half of them
        // reaching the origin shows that both nodes get traffic.
        let before = origin.requests();
        if let Err(e) = warm(&label, bind, scenario, origin) {
            eprintln!("[{label}] error: {e}");
            rows.push(row);
            continue;
        }
        row.warm_fetches = origin.requests() - before;
        eprintln!(
            "[{label}] warm-up: {} of {SCALE_OUT_URLS} URLs fetched from the origin",
            row.warm_fetches
        );
        let make_run = |label: &str, secs| WrkRun {
            url: format!("http://{bind}/"),
            script: Some((script.clone(), unique_tag())),
            threads: opts.threads,
            connections: opts.connections_for(scenario),
            secs,
            label: label.to_owned(),
        };
        let mut pids = vec![haproxy.pid()];
        pids.extend(nodes.iter().map(RunningServer::pid));
        let (stats, origin_requests, other_cpu) = measure(opts, origin, &label, &pids, make_run);
        row.stats = stats.into();
        row.origin_requests = origin_requests;
        row.other_cpu = other_cpu;
        for (what, server) in std::iter::once(("haproxy", &mut haproxy))
            .chain(nodes.iter_mut().map(|n| ("lacquer node", n)))
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(BenchError::Failed(format!(
                    "{what} exited during {label} ({status}); {}",
                    server.log_tail()
                )));
            }
        }
        rows.push(row);
        // Stopped before the nodes, and before the next run binds the same address.
        drop(haproxy);
    }
    drop(nodes);
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 1e3 => format!("{us:.0}us"),
        Some(us) if us < 1e6 => format!("{:.2}ms", us / 1e3),
        Some(us) => format!("{:.2}s", us / 1e6),
    }
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// req/s, p50, p99, errors, origin, hit %, other CPU.
fn result_cells(stats: &Outcome, origin: u64, other_cpu: Option<f64>) -> [String; 7] {
    let dash = || "-".to_owned();
    let other = other_cpu.map_or_else(dash, |s| format!("{:.0}%", s * 100.0));
    match stats {
        Outcome::Measured(s) => [
            format!("{:.0}", s.requests_per_sec),
            fmt_latency(s.p50_us),
            fmt_latency(s.p99_us),
            if s.errors() == 0 {
                "0".to_owned()
            } else {
                format!(
                    "{} (non-2xx {}, sock {})",
                    s.errors(),
                    s.non_2xx,
                    s.socket_errors
                )
            },
            origin.to_string(),
            hit_ratio(origin, s.requests).map_or_else(dash, |h| format!("{:.1}%", h * 100.0)),
            other,
        ],
        Outcome::Failed => [
            "failed".to_owned(),
            dash(),
            dash(),
            "failed".to_owned(),
            dash(),
            dash(),
            other,
        ],
        Outcome::NotApplicable(_) => [
            "n/a".to_owned(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ],
    }
}

/// One table line: two leading cells, the result cells, then notes.
fn table_line(first: &str, second: &str, cells: &[String; 7], notes: &str) {
    let [rps, p50, p99, errors, origin, hit, other] = cells;
    let line = format!(
        "{first:<10} | {second:<8} | {rps:>10} | {p50:>9} | {p99:>9} | {errors:<24} | {origin:>8} | {hit:>6} | {other:>9} | {notes}"
    );
    println!("{}", line.trim_end());
}

fn table_header(first: &str, second: &str) {
    let head = [
        "req/s",
        "p50",
        "p99",
        "errors",
        "origin",
        "hit %",
        "other CPU",
    ]
    .map(str::to_owned);
    table_line(first, second, &head, "notes");
    println!("{}", "-".repeat(126));
}

fn print_report(
    opts: &Options,
    rows: &[Row],
    rss: &[(ServerKind, (u64, usize))],
    scale_out: &[ScaleRow],
) {
    println!();
    if rows.is_empty() && scale_out.is_empty() {
        println!("no results");
        return;
    }
    if !rows.is_empty() {
        print_table(opts, rows);
        print_ratios(opts, rows);
    }
    if !scale_out.is_empty() {
        print_scale_out(opts, scale_out);
    }
    if !rss.is_empty() {
        print_rss(rss);
    }
}

fn print_table(opts: &Options, rows: &[Row]) {
    table_header("scenario", "server");
    for sc in &opts.scenarios {
        for row in rows.iter().filter(|r| r.scenario == sc.name) {
            let cells = result_cells(&row.stats, row.origin_requests, row.other_cpu);
            let notes = match (&row.stats, &row.note) {
                (_, Some(note)) => note.as_str(),
                (Outcome::NotApplicable(why), None) => why,
                _ => "",
            };
            table_line(row.scenario, row.server.name(), &cells, notes);
        }
    }
    println!("origin    = requests that reached the origin during the run (~0 for hit-* and esi)");
    println!(
        "hit %     = 1 - origin / requests made by wrk, floored at 0; for esi, requests are \
         pages and fragment fetches count as origin requests"
    );
    println!(
        "other CPU = share of the machine's CPU used by unrelated processes during the run \
         (over {:.0}% skews the figures)",
        OTHER_CPU_WARN * 100.0
    );
}

fn print_ratios(opts: &Options, rows: &[Row]) {
    let find =
        |sc: &str, kind: ServerKind| rows.iter().find(|r| r.scenario == sc && r.server == kind);
    let mut ratio_lines = Vec::new();
    for other in [ServerKind::Varnish, ServerKind::Nginx] {
        for sc in &opts.scenarios {
            let (Some(lrow), Some(orow)) =
                (find(sc.name, ServerKind::Lacquer), find(sc.name, other))
            else {
                continue;
            };
            let (Some(l), Some(o)) = (lrow.stats.stats(), orow.stats.stats()) else {
                continue;
            };
            let rps = if o.requests_per_sec > 0.0 {
                format!("{:.2}x", l.requests_per_sec / o.requests_per_sec)
            } else {
                "n/a".to_owned()
            };
            let p99 = match (l.p99_us, o.p99_us) {
                (Some(a), Some(b)) if b > 0.0 => format!(
                    "{} vs {} ({:.2}x)",
                    fmt_latency(Some(a)),
                    fmt_latency(Some(b)),
                    a / b
                ),
                (a, b) => format!("{} vs {}", fmt_latency(a), fmt_latency(b)),
            };
            let warned: Vec<&str> = [lrow, orow]
                .iter()
                .filter(|r| r.note.is_some())
                .map(|r| r.server.name())
                .collect();
            let caveat = if warned.is_empty() {
                String::new()
            } else {
                format!(
                    "   (not comparable: see the notes of {})",
                    warned.join(" and ")
                )
            };
            ratio_lines.push(format!(
                "lacquer/{:<7} {:<10} req/s {rps:>6}   p99 {p99}{caveat}",
                other.name(),
                sc.name
            ));
        }
    }
    if !ratio_lines.is_empty() {
        println!();
        for line in ratio_lines {
            println!("{line}");
        }
    }
}

fn print_scale_out(opts: &Options, rows: &[ScaleRow]) {
    let connections = opts.connections.unwrap_or(SCALE_OUT_CONNECTIONS);
    println!();
    println!(
        "scale-out: wrk ({connections} connections) -> HAProxy (balance uri, hash-type consistent) \
         -> lacquer nodes; {SCALE_OUT_URLS} URLs of {OBJ_SIZE} bytes in random order"
    );
    table_header("scenario", "nodes");
    for row in rows {
        let cells = result_cells(&row.stats, row.origin_requests, row.other_cpu);
        let notes = format!(
            "warm-up fetched {} of {SCALE_OUT_URLS} URLs",
            row.warm_fetches
        );
        table_line("scale-out", &row.nodes.to_string(), &cells, &notes);
    }
    let rps = |n: usize| {
        rows.iter()
            .find(|r| r.nodes == n)
            .and_then(|r| r.stats.stats())
            .map(|s| s.requests_per_sec)
    };
    if let (Some(one), Some(two)) = (rps(1), rps(2)) {
        if one > 0.0 {
            println!("2 nodes / 1 node          req/s {:.2}x", two / one);
        }
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "caveat: wrk, HAProxy, both lacquer nodes and the origin all ran on this machine's \
         {cores} CPU core{}. A second node on the same cores adds no CPU, so this ratio \
         shows the cost of spreading the cache over two processes, not the scale-out \
         that a second machine would give.",
        if cores == 1 { "" } else { "s" }
    );
}

fn print_rss(rss: &[(ServerKind, (u64, usize))]) {
    println!();
    println!("peak RSS (VmHWM summed over each server's processes):");
    for (kind, (kib, procs)) in rss {
        println!(
            "  {:<8} {:>10}  ({procs} process{})",
            kind.name(),
            fmt_mib(*kib),
            if *procs == 1 { "" } else { "es" }
        );
    }
    let lacquer = rss.iter().find(|(k, _)| *k == ServerKind::Lacquer);
    for (kind, (kib, _)) in rss.iter().filter(|(k, _)| *k != ServerKind::Lacquer) {
        if let Some((_, (l, _))) = lacquer {
            if *kib > 0 {
                println!(
                    "  lacquer/{:<7} RSS {:.2}x",
                    kind.name(),
                    *l as f64 / *kib as f64
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let mut opts = match Options::parse(env::args_os().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = opts.serve_origin {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let origin = start_origin(listener);
        eprintln!(
            "origin listening on {}: /bytes/N (cacheable), /pass/N (no-store), /obj/KEY \
             (cacheable, {OBJ_SIZE} bytes), {ESI_PAGE_PATH} (ESI page), /frag/1..{ESI_FRAGMENTS}; \
             Ctrl-C to stop",
            origin.addr
        );
        loop {
            thread::park();
        }
    }
    if let Some(wrk) = find_program("wrk") {
        opts.wrk = wrk;
    } else {
        eprintln!(
            "error: `wrk` was not found on PATH; this benchmark drives load with it.\n\
             Install it (Debian/Ubuntu: `apt-get install wrk`) and run again."
        );
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    let scale_out = opts.scenarios.iter().any(|s| s.load == Load::ScaleOut);
    if scale_out && !opts.servers.contains(&ServerKind::Lacquer) {
        // Only lacquer runs behind HAProxy.
        eprintln!("[scale-out] skipped: it runs lacquer only, and --only leaves lacquer out");
        opts.scenarios.retain(|s| s.load != Load::ScaleOut);
    } else if scale_out && find_program("haproxy").is_none() {
        if opts.scenarios_explicit {
            eprintln!(
                "[scale-out] error: haproxy is not installed (not found on PATH or in /usr/sbin)"
            );
            failed = true;
        } else {
            eprintln!("[scale-out] skipped: haproxy is not installed");
        }
        opts.scenarios.retain(|s| s.load != Load::ScaleOut);
    }
    install_ctrl_c_handler();

    let scripts = match TempDir::new("scripts") {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: create temp dir: {e}");
            return ExitCode::FAILURE;
        }
    };
    scratch().push(scripts.0.clone());
    if let Err(e) = write_scripts(&scripts.0) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    opts.scripts_dir = scripts.0.clone();

    let origin = start_origin(
        TcpListener::bind("127.0.0.1:0").expect("origin: bind a free port on 127.0.0.1"),
    );
    eprintln!("origin listening on {}", origin.addr);

    let mut rows = Vec::new();
    let mut rss = Vec::new();
    let per_server = opts.scenarios.iter().any(|s| s.load != Load::ScaleOut);
    for &kind in opts.servers.iter().filter(|_| per_server) {
        match bench_server(kind, &opts, &origin) {
            Ok(outcome) => {
                failed |= outcome
                    .rows
                    .iter()
                    .any(|r| matches!(r.stats, Outcome::Failed));
                rows.extend(outcome.rows);
                rss.push((kind, outcome.peak_rss));
            }
            Err(BenchError::NotInstalled) if !opts.servers_explicit => {
                eprintln!("[{kind}] skipped: not installed");
            }
            Err(BenchError::NotInstalled) => {
                eprintln!("[{kind}] error: not installed (not found on PATH)");
                failed = true;
            }
            Err(BenchError::Failed(e)) => {
                eprintln!("[{kind}] error: {e}");
                failed = true;
            }
        }
    }

    let mut scale_rows = Vec::new();
    if opts.scenarios.iter().any(|s| s.load == Load::ScaleOut) {
        match bench_scale_out(&opts, &origin) {
            Ok(r) => {
                failed |= r.iter().any(|r| matches!(r.stats, Outcome::Failed));
                scale_rows = r;
            }
            Err(BenchError::NotInstalled) => {
                eprintln!("[scale-out] error: haproxy is not installed");
                failed = true;
            }
            Err(BenchError::Failed(e)) => {
                eprintln!("[scale-out] error: {e}");
                failed = true;
            }
        }
    }

    print_report(&opts, &rows, &rss, &scale_rows);
    drop(scripts);
    if failed {
        eprintln!("\nsome servers or scenarios failed; see the messages above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
