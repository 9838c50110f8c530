//! Child processes: starting, watching (CPU, RSS) and stopping them, temp dirs, Ctrl-C.

use std::collections::HashMap;
use std::env;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::probe::http_get;

/// How long a proxy may take to start answering.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a proxy gets to exit after SIGTERM before everything is SIGKILLed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// Child processes currently running (servers and wrk), so that Ctrl-C can
/// stop them and remove their temp dirs: (root pid, temp dir).
pub(crate) static LIVE: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

pub(crate) fn live() -> std::sync::MutexGuard<'static, Vec<(u32, Option<PathBuf>)>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Temp dirs not tied to a child process (the wrk scripts), for Ctrl-C to remove.
pub(crate) static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub(crate) fn scratch() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    SCRATCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On Ctrl-C: stop every live server, remove its temp dir and exit 130.
/// (Children share our process group, so they get the SIGINT too; this is
/// mostly about not leaving temp dirs and stray workers behind.)
pub(crate) fn install_ctrl_c_handler() {
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
pub(crate) fn spawn_registered(cmd: &mut Command, dir: Option<PathBuf>) -> io::Result<Child> {
    // Hold the lock across spawn so a Ctrl-C can't slip in between.
    let mut registry = live();
    let child = cmd.spawn()?;
    registry.push((child.id(), dir));
    Ok(child)
}

pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> io::Result<Self> {
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
pub(crate) struct RunningServer {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: PathBuf,
    // Declared last: dropped after `Drop::drop` has stopped the processes.
    pub(crate) _dir: TempDir,
}

impl RunningServer {
    pub(crate) fn spawn(mut cmd: Command, addr: SocketAddr, dir: TempDir) -> Result<Self, String> {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self) -> String {
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
    pub(crate) fn wait_ready(&mut self) -> Result<(), String> {
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

pub(crate) fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM to `root`, then SIGKILL to whatever of its process tree is still
/// alive after the grace period. Reaps `child` if given.
pub(crate) fn stop_tree(root: u32, mut child: Option<&mut Child>) {
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
pub(crate) fn process_table() -> Vec<(u32, u32, char)> {
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
pub(crate) fn descendants(root: u32) -> Vec<u32> {
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

pub(crate) fn is_alive(pid: u32) -> bool {
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
pub(crate) fn peak_rss_kib(root: u32) -> (u64, usize) {
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
pub(crate) const OTHER_CPU_WARN: f64 = 0.05;

/// CPU time counters, to tell how much of a run's CPU went to processes other
/// than this bench (origin and reaped wrk children included) and the servers.
pub(crate) struct CpuSnapshot {
    /// All CPUs, all states (including idle), in clock ticks.
    pub(crate) total: u64,
    /// All CPUs, busy states only.
    pub(crate) busy: u64,
    /// This process and the servers' trees, including reaped children.
    pub(crate) ours: u64,
}

impl CpuSnapshot {
    pub(crate) fn take(servers: &[u32]) -> Option<Self> {
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
    pub(crate) fn other_share(&self, servers: &[u32]) -> Option<f64> {
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
pub(crate) fn process_ticks(pid: &str) -> u64 {
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

pub(crate) fn free_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map_err(|e| format!("local address: {e}"))
}

/// Finds `name` on PATH, also trying the sbin directories that a non-root
/// PATH often lacks (varnishd and nginx live in /usr/sbin on Debian).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub(crate) fn running_as_root() -> bool {
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

/// A command line as one string, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
