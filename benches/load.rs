//! Load benchmark: lacquer against Varnish and nginx, driven by `wrk`.
//!
//! Run with `cargo bench --bench load [-- OPTIONS]`; see `benches/README.md`.
//!
//! The bench starts an in-process origin (hyper, one tokio thread), then starts
//! each proxy under test in turn as a child process in front of it, warms the
//! cache, and runs one `wrk` pass per scenario. Proxies never run concurrently.

use std::collections::HashMap;
use std::convert::Infallible;
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Storage budget given to every proxy under test, in MiB.
const STORAGE_MIB: u64 = 256;

/// The lacquer command line. This is the one place to adjust if the CLI changes.
fn lacquer_command(bin: &Path, listen: SocketAddr, origin: SocketAddr) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("-a")
        .arg(listen.to_string())
        .arg("-b")
        .arg(origin.to_string())
        .arg("--storage")
        .arg(format!("{STORAGE_MIB}MiB"));
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

// ---------------------------------------------------------------------------
// Scenarios and options
// ---------------------------------------------------------------------------

#[derive(PartialEq)]
struct Scenario {
    name: &'static str,
    path: &'static str,
    /// Cacheable: warmed before the run, and should not reach the origin during it.
    hit: bool,
    /// wrk connections unless `--connections` overrides it.
    connections: u32,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hit-1KiB",
        path: "/bytes/1024",
        hit: true,
        connections: 256,
    },
    Scenario {
        name: "hit-16KiB",
        path: "/bytes/16384",
        hit: true,
        connections: 256,
    },
    // 64 connections are plenty to saturate loopback with 1 MiB bodies; 256 of
    // them only inflates latency (and risks wrk's 2 s timeout) without adding
    // throughput.
    Scenario {
        name: "hit-1MiB",
        path: "/bytes/1048576",
        hit: true,
        connections: 64,
    },
    Scenario {
        name: "pass-1KiB",
        path: "/pass/1024",
        hit: false,
        connections: 256,
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
    connections: Option<u32>,
    threads: u32,
    /// Untimed wrk run before each measured one (0 = none).
    warmup_secs: u64,
    /// `--serve-origin ADDR`: only run the origin, for measuring by hand.
    serve_origin: Option<SocketAddr>,
    /// Path of the wrk binary; set once it has been found.
    wrk: PathBuf,
}

const USAGE: &str = "\
usage: cargo bench --bench load [-- OPTIONS]

options:
  --duration SECS        wrk duration per scenario (default 10)
  --only LIST            servers to run, comma separated: lacquer,varnish,nginx (default all)
  --scenarios LIST       scenarios, comma separated: hit-1KiB,hit-16KiB,hit-1MiB,pass-1KiB (default all)
  --warmup SECS          untimed wrk run before each scenario, 0 to skip (default 2)
  --connections N        wrk connections for every scenario (default 256; 64 for hit-1MiB)
  --threads N            wrk threads (default 2)
  --serve-origin ADDR    only run the origin on ADDR (e.g. 127.0.0.1:8080) until killed,
                         for running the scenarios by hand
  -h, --help             show this help

environment:
  LACQUER_BIN            lacquer binary to run instead of the one cargo built
";

impl Options {
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Self>, String> {
        let mut opts = Options {
            duration_secs: DEFAULT_DURATION_SECS,
            servers: ALL_SERVERS.to_vec(),
            servers_explicit: false,
            scenarios: SCENARIOS.iter().collect(),
            connections: None,
            threads: DEFAULT_WRK_THREADS,
            warmup_secs: DEFAULT_WARMUP_SECS,
            serve_origin: None,
            wrk: PathBuf::from("wrk"),
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

/// Starts the origin on `listener` on a single-threaded runtime in a background thread.
fn start_origin(listener: TcpListener) -> Origin {
    listener
        .set_nonblocking(true)
        .expect("origin: set listener non-blocking");
    let addr = listener.local_addr().expect("origin: local address");
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let body = Bytes::from(vec![b'x'; MAX_BODY]);
    thread::Builder::new()
        .name("origin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin: build tokio runtime");
            rt.block_on(serve_origin(listener, body, counter));
        })
        .expect("origin: spawn thread");
    Origin { addr, requests }
}

async fn serve_origin(listener: TcpListener, body: Bytes, counter: Arc<AtomicU64>) {
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
        let body = body.clone();
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::Relaxed);
                let resp = origin_response(&req, &body);
                async move { Ok::<_, Infallible>(resp) }
            });
            // Connection errors (client resets) are expected under load.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `/bytes/N`: N bytes, cacheable for an hour, with an ETag.
/// `/pass/N`: N bytes, `no-store, private`. The query string is ignored.
fn origin_response<B>(req: &Request<B>, body: &Bytes) -> Response<Full<Bytes>> {
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
    let (cacheable, len) = if let Some(n) = path.strip_prefix("/bytes/") {
        (true, n)
    } else if let Some(n) = path.strip_prefix("/pass/") {
        (false, n)
    } else {
        return simple(StatusCode::NOT_FOUND, "try /bytes/N or /pass/N\n".into());
    };
    let len = match len.parse::<usize>() {
        Ok(n) if n <= body.len() => n,
        _ => {
            let msg = format!("N must be an integer in 0..={}\n", body.len());
            return simple(StatusCode::BAD_REQUEST, msg);
        }
    };

    let mut resp = Response::new(Full::new(body.slice(..len)));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if cacheable {
        let etag = HeaderValue::from_str(&format!("\"bytes-{len}\""))
            .expect("an ETag made of digits is a valid header value");
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
    } else {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store, private"));
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
/// than this bench (origin and reaped wrk children included) and the server.
struct CpuSnapshot {
    /// All CPUs, all states (including idle), in clock ticks.
    total: u64,
    /// All CPUs, busy states only.
    busy: u64,
    /// This process and the server tree, including reaped children.
    ours: u64,
}

impl CpuSnapshot {
    fn take(server: u32) -> Option<Self> {
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
        let mut tree = descendants(server);
        tree.push(server);
        ours += tree
            .iter()
            .map(|pid| process_ticks(&pid.to_string()))
            .sum::<u64>();
        Some(CpuSnapshot { total, busy, ours })
    }

    /// Share (0..=1) of all CPU time since `self` spent by other processes.
    fn other_share(&self, server: u32) -> Option<f64> {
        let now = CpuSnapshot::take(server)?;
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
        ServerKind::Lacquer => {
            let bin = env::var_os("LACQUER_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lacquer")));
            Ok(Some(lacquer_command(&bin, listen, origin)))
        }
        ServerKind::Varnish => {
            let Some(bin) = find_program("varnishd") else {
                return Ok(None);
            };
            // Runs fine as root with the default `-j unix` jail (it drops to
            // the varnish/vcache users); default builtin VCL via -b.
            let mut cmd = Command::new(bin);
            cmd.arg("-F")
                .arg("-n")
                .arg(dir.join("varnish"))
                .arg("-a")
                .arg(listen.to_string())
                .arg("-b")
                .arg(origin.to_string())
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
    body_len: usize,
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
    let status_line = buf[..head_end]
        .split(|&b| b == b'\r')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or_else(|| bad("unreadable status line"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    Ok(SimpleResponse {
        status,
        body_len: buf.len() - head_end - 4,
    })
}

// ---------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------

#[derive(Default)]
struct WrkStats {
    requests_per_sec: f64,
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

fn run_wrk(
    wrk: &Path,
    url: &str,
    threads: u32,
    connections: u32,
    secs: u64,
) -> Result<WrkStats, String> {
    // wrk refuses fewer connections than threads.
    let threads = threads.min(connections);
    let mut cmd = Command::new(wrk);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_registered(&mut cmd, None).map_err(|e| format!("failed to run wrk: {e}"))?;
    let pid = child.id();
    let out = child.wait_with_output();
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
// Running a server through the scenarios
// ---------------------------------------------------------------------------

struct Row {
    scenario: &'static str,
    server: ServerKind,
    stats: Result<WrkStats, String>,
    origin_requests: u64,
    /// Share of all CPU time used by processes outside the bench, server and wrk.
    other_cpu: Option<f64>,
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

    // Warm: one request per hit URL, then check that a second one is a hit.
    for sc in opts.scenarios.iter().filter(|s| s.hit) {
        let resp = http_get(listen, sc.path)
            .map_err(|e| BenchError::Failed(format!("warm-up GET {}: {e}", sc.path)))?;
        let expected: usize = sc
            .path
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if resp.status != 200 || resp.body_len != expected {
            return Err(BenchError::Failed(format!(
                "warm-up GET {}: status {}, {} body bytes (expected 200, {expected})",
                sc.path, resp.status, resp.body_len
            )));
        }
        let before = origin.requests();
        let again = http_get(listen, sc.path);
        if again.is_err() || origin.requests() != before {
            eprintln!(
                "[{kind}] warning: second GET {} was not served from cache",
                sc.path
            );
        }
    }

    let mut rows = Vec::new();
    for sc in &opts.scenarios {
        let conns = opts.connections_for(sc);
        let url = format!("http://{listen}{}", sc.path);
        eprintln!(
            "[{kind}] {}: wrk -t{} -c{conns} -d{}s --latency {url}",
            sc.name,
            opts.threads.min(conns),
            opts.duration_secs
        );
        if opts.warmup_secs > 0 {
            // Untimed: lets thread pools, connection pools and the like reach
            // steady state before measuring. Results are discarded.
            thread::sleep(SETTLE);
            if let Err(e) = run_wrk(&opts.wrk, &url, opts.threads, conns, opts.warmup_secs) {
                eprintln!("[{kind}] {} warm-up: {e}", sc.name);
            }
        }
        // Let in-flight work (e.g. pass fetches) drain so it isn't counted
        // against this run.
        thread::sleep(SETTLE);
        let before = origin.requests();
        let cpu_before = CpuSnapshot::take(server.pid());
        let stats = run_wrk(&opts.wrk, &url, opts.threads, conns, opts.duration_secs);
        let origin_requests = origin.requests() - before;
        let other_cpu = cpu_before.and_then(|b| b.other_share(server.pid()));
        if let Some(share) = other_cpu.filter(|&s| s > OTHER_CPU_WARN) {
            eprintln!(
                "[{kind}] {}: warning: other processes used {:.0}% of the machine's CPU \
                 during this run; its figures are skewed",
                sc.name,
                share * 100.0
            );
        }
        if let Err(e) = &stats {
            eprintln!("[{kind}] {}: {e}", sc.name);
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(BenchError::Failed(format!(
                "exited during {} ({status}); {}",
                sc.name,
                server.log_tail()
            )));
        }
        rows.push(Row {
            scenario: sc.name,
            server: kind,
            stats,
            origin_requests,
            other_cpu,
        });
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

fn print_report(opts: &Options, rows: &[Row], rss: &[(ServerKind, (u64, usize))]) {
    println!();
    if rows.is_empty() {
        println!("no results");
        return;
    }
    let line = |cells: [&str; 8]| {
        println!(
            "{:<10} | {:<8} | {:>10} | {:>9} | {:>9} | {:<24} | {:>8} | {:>9}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
        );
    };
    line([
        "scenario",
        "server",
        "req/s",
        "p50",
        "p99",
        "errors",
        "origin",
        "other CPU",
    ]);
    println!("{}", "-".repeat(108));
    for sc in &opts.scenarios {
        for row in rows.iter().filter(|r| r.scenario == sc.name) {
            let origin = row.origin_requests.to_string();
            let other = row
                .other_cpu
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
            let (rps, p50, p99, errors) = match &row.stats {
                Ok(s) => (
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
                ),
                Err(_) => (
                    "failed".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "wrk failed".to_owned(),
                ),
            };
            line([
                row.scenario,
                row.server.name(),
                &rps,
                &p50,
                &p99,
                &errors,
                &origin,
                &other,
            ]);
        }
    }
    println!(
        "origin    = requests that reached the origin during the run (~0 for hit-* scenarios)"
    );
    println!(
        "other CPU = share of the machine's CPU used by unrelated processes during the run \
         (over {:.0}% skews the figures)",
        OTHER_CPU_WARN * 100.0
    );

    let find = |sc: &str, kind: ServerKind| {
        rows.iter()
            .find(|r| r.scenario == sc && r.server == kind)
            .and_then(|r| r.stats.as_ref().ok())
    };
    let mut ratio_lines = Vec::new();
    for other in [ServerKind::Varnish, ServerKind::Nginx] {
        for sc in &opts.scenarios {
            let (Some(l), Some(o)) = (find(sc.name, ServerKind::Lacquer), find(sc.name, other))
            else {
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
            ratio_lines.push(format!(
                "lacquer/{:<7} {:<10} req/s {rps:>6}   p99 {p99}",
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

    if !rss.is_empty() {
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
            "origin listening on {}: /bytes/N (cacheable), /pass/N (no-store); Ctrl-C to stop",
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
    install_ctrl_c_handler();

    let origin = start_origin(
        TcpListener::bind("127.0.0.1:0").expect("origin: bind a free port on 127.0.0.1"),
    );
    eprintln!("origin listening on {}", origin.addr);

    let mut rows = Vec::new();
    let mut rss = Vec::new();
    let mut failed = false;
    for &kind in &opts.servers {
        match bench_server(kind, &opts, &origin) {
            Ok(outcome) => {
                failed |= outcome.rows.iter().any(|r| r.stats.is_err());
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

    print_report(&opts, &rows, &rss);
    if failed {
        eprintln!("\nsome servers or scenarios failed; see the messages above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
