//! Running wrk, showing its progress, and parsing its report.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::{live, spawn_registered};

#[derive(Default)]
pub(crate) struct WrkStats {
    pub(crate) requests_per_sec: f64,
    /// Requests completed during the run (wrk's "N requests in Xs").
    pub(crate) requests: u64,
    /// How long wrk says the run took (the X of "N requests in Xs").
    pub(crate) runtime_secs: Option<f64>,
    /// Microseconds.
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) non_2xx: u64,
    pub(crate) socket_errors: u64,
    /// Response bytes per second (wrk's "Transfer/sec", heads included).
    pub(crate) bytes_per_sec: Option<f64>,
    /// CPU time the server's processes used per request during the run,
    /// in microseconds (user + system, from /proc; filled by `measure`).
    pub(crate) cpu_us_per_request: Option<f64>,
}

impl WrkStats {
    pub(crate) fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    /// A note when wrk's own clock disagrees with the `secs` it was asked
    /// to run by more than half: its req/s (requests over its clock) is
    /// then not the rate the server kept up. Seen once under heavy CPU
    /// contention: a 5 s run whose requests and req/s implied 77 s.
    pub(crate) fn clock_note(&self, secs: u64) -> Option<String> {
        let runtime = self.runtime_secs?;
        let asked = secs as f64;
        ((runtime - asked).abs() > 0.5 * asked).then(|| {
            format!("WRK CLOCK: the {secs} s run took {runtime:.1} s by wrk's clock; req/s is off")
        })
    }
}

/// One wrk invocation.
pub(crate) struct WrkRun {
    pub(crate) url: String,
    /// Lua script (`-s`) and the argument its `init(args)` gets.
    pub(crate) script: Option<(PathBuf, String)>,
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) secs: u64,
    /// Shown in the progress line, e.g. `lacquer hit-1KiB`.
    pub(crate) label: String,
    /// Extra request headers (`-H`), e.g. `Accept-Encoding: gzip`.
    pub(crate) headers: Vec<String>,
}

impl WrkRun {
    pub(crate) fn args(&self) -> Vec<String> {
        // wrk refuses fewer connections than threads.
        let threads = self.threads.min(self.connections);
        let mut args = vec![
            format!("-t{threads}"),
            format!("-c{}", self.connections),
            format!("-d{}s", self.secs),
            "--latency".to_owned(),
        ];
        for h in &self.headers {
            args.push("-H".to_owned());
            args.push(h.clone());
        }
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

    pub(crate) fn describe(&self) -> String {
        format!("wrk {}", self.args().join(" "))
    }
}

/// A tag no earlier run of this process used, for the URLs a script makes up.
pub(crate) fn unique_tag() -> String {
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

pub(crate) fn run_wrk(wrk: &Path, run: &WrkRun) -> Result<WrkStats, String> {
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
pub(crate) struct Progress {
    pub(crate) stop: Option<mpsc::Sender<()>>,
    pub(crate) thread: Option<thread::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(label: &str, secs: u64) -> Self {
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
pub(crate) fn parse_wrk(out: &str) -> Option<WrkStats> {
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
        } else if let Some((n, rest)) = line.split_once(" requests in ") {
            // "123456 requests in 10.00s, 1.23GB read"
            stats.requests = n.trim().parse().unwrap_or(0);
            stats.runtime_secs = rest
                .split(',')
                .next()
                .and_then(|t| parse_latency_us(t.trim()))
                .map(|us| us / 1e6);
        } else if let Some(v) = line.strip_prefix("Transfer/sec:") {
            stats.bytes_per_sec = parse_bytes(v.trim());
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

/// wrk's "1.23GB", "512.00KB", "17B" (binary multiples) → bytes.
pub(crate) fn parse_bytes(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = s[..split].trim().parse().ok()?;
    let scale = match &s[split..] {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(value * scale)
}

/// "850.00us", "1.23ms", "2.00s", "1.50m" → microseconds.
pub(crate) fn parse_latency_us(s: &str) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\
Running 5s test @ http://127.0.0.1:1/zipf/0
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.07ms   30.00ms 500.00ms   95.00%
  Latency Distribution
     50%    9.07ms
     75%   12.00ms
     90%   20.00ms
     99%  405.37ms
  81234 requests in 5.05s, 97.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  16089.00
Transfer/sec:     19.30MB
";

    #[test]
    fn parsed() {
        let s = parse_wrk(OUT).unwrap();
        assert_eq!(s.requests, 81234);
        assert_eq!(s.runtime_secs, Some(5.05));
        assert_eq!(s.requests_per_sec, 16089.0);
        assert_eq!((s.p50_us, s.p99_us), (Some(9070.0), Some(405_370.0)));
        assert_eq!(s.socket_errors, 3);
        assert_eq!(s.clock_note(5), None);
        let note = s.clock_note(2).unwrap();
        assert!(
            note.starts_with("WRK CLOCK: the 2 s run took 5.0 s"),
            "{note}"
        );
        assert!(parse_wrk("no summary").is_none());
    }

    #[test]
    fn runtime_in_minutes() {
        let s = parse_wrk("  10 requests in 1.29m, 1.00KB read\nRequests/sec: 0.13\n").unwrap();
        assert_eq!(s.runtime_secs, Some(77.4));
        assert!(s.clock_note(5).is_some());
    }
}
