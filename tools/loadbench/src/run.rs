//! Running one server through the scenarios: warm-up, measured run, origin counts.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::cli::Options;
use crate::origin::{Origin, OBJ_SIZE};
use crate::probe::{check_esi_page, http_get, http_get_with};
use crate::process::{
    descendants, describe, free_port, peak_rss_kib, process_ticks, CpuSnapshot, RunningServer,
    TempDir, OTHER_CPU_WARN,
};
use crate::proxies::server_command;
use crate::scenarios::{Load, Scenario, ServerKind};
use crate::scripts::{MIX_HOT_URLS, MIX_SCRIPT, RANGE_SCRIPT, SCALE_OUT_URLS};
use crate::wrk::{run_wrk, unique_tag, WrkRun, WrkStats};

/// Pause before each wrk run.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);

pub(crate) enum Outcome {
    Measured(WrkStats),
    /// wrk or the warm-up failed; the message went to stderr.
    Failed,
    /// The server can't do this scenario (nginx and ESI); shown in the table.
    NotApplicable(&'static str),
}

impl Outcome {
    pub(crate) fn stats(&self) -> Option<&WrkStats> {
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

pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) server: ServerKind,
    pub(crate) stats: Outcome,
    pub(crate) origin_requests: u64,
    /// Share of all CPU time used by processes outside the bench, server and wrk.
    pub(crate) other_cpu: Option<f64>,
    /// What went wrong with this row, if anything (shown in the table).
    pub(crate) note: Option<String>,
}

/// 1 - origin requests / client requests, clamped to 0..=1. `None` without
/// a client request to divide by.
pub(crate) fn hit_ratio(origin_requests: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| (1.0 - origin_requests as f64 / requests as f64).clamp(0.0, 1.0))
}

pub(crate) struct ServerOutcome {
    pub(crate) rows: Vec<Row>,
    /// (KiB, processes counted)
    pub(crate) peak_rss: (u64, usize),
}

pub(crate) enum BenchError {
    NotInstalled,
    Failed(String),
}

/// Expected body length of `/bytes/N` and `/pass/N`.
pub(crate) fn path_len(path: &str) -> Option<usize> {
    path.rsplit('/').next().and_then(|n| n.parse().ok())
}

/// Fills the cache of the proxy at `addr` for `sc`: one GET per URL the
/// scenario expects to hit, then a second GET, warning on stderr if that one
/// reached the origin. `Ok(Some(note))` when the proxy answered but its
/// answer is wrong in a way that doesn't stop the measurement (ESI page not
/// assembled); `Err` when the scenario can't be run.
pub(crate) fn warm(
    label: &str,
    addr: SocketAddr,
    sc: &Scenario,
    origin: &Origin,
) -> Result<Option<String>, String> {
    let paths: Vec<(String, Option<usize>)> = match sc.load {
        Load::Url | Load::Ranges | Load::Gzip if sc.hit => {
            vec![(sc.path.to_owned(), path_len(sc.path))]
        }
        Load::Url | Load::Ranges | Load::Gzip => Vec::new(),
        // The assembled size depends on the proxy; check_esi_page checks the content.
        Load::Esi | Load::EsiGzip => vec![(sc.path.to_owned(), None)],
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
        if matches!(sc.load, Load::Esi | Load::EsiGzip) {
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
    if matches!(sc.load, Load::Gzip | Load::EsiGzip) {
        // What wrk will get: gzip, or the comparison is not one.
        let coded = http_get_with(addr, sc.path, "Accept-Encoding: gzip\r\n")
            .map_err(|e| format!("warm-up GET {} (gzip): {e}", sc.path))?;
        if !coded
            .header("content-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
        {
            let e = format!("{} is not gzip'd for a client that accepts gzip", sc.path);
            eprintln!("[{label}] warning: {e}");
            note = Some(e);
        } else if path_len(sc.path).is_some_and(|n| coded.body.len() >= n) {
            note = Some("gzip body not smaller".to_owned());
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
pub(crate) fn measure(
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
    let server_before = server_ticks(servers);
    let mut stats = run_wrk(&opts.wrk, &run);
    let server_ticks = server_ticks(servers).saturating_sub(server_before);
    if let Ok(s) = &mut stats {
        s.cpu_us_per_request = cpu_per_request_us(server_ticks, s.requests);
    }
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

/// CPU clock ticks (user + system) of the servers' process trees.
fn server_ticks(servers: &[u32]) -> u64 {
    let mut tree: Vec<u32> = servers.iter().flat_map(|&s| descendants(s)).collect();
    tree.extend_from_slice(servers);
    tree.iter().map(|pid| process_ticks(&pid.to_string())).sum()
}

/// Ticks (of `CLK_TCK`, 100 per second on Linux) over `requests`, in
/// microseconds per request.
fn cpu_per_request_us(ticks: u64, requests: u64) -> Option<f64> {
    const TICKS_PER_SEC: f64 = 100.0;
    (requests > 0).then(|| ticks as f64 / TICKS_PER_SEC * 1e6 / requests as f64)
}

pub(crate) fn bench_server(
    kind: ServerKind,
    opts: &Options,
    origin: &Origin,
) -> Result<ServerOutcome, BenchError> {
    let dir = TempDir::new(kind.name())
        .map_err(|e| BenchError::Failed(format!("create temp dir: {e}")))?;
    let listen = free_port().map_err(BenchError::Failed)?;
    let cmd = server_command(kind, &opts.lacquer_bin, listen, origin.addr, &dir.0)
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
        let script = match sc.load {
            Load::Mix => Some(opts.scripts_dir.join(MIX_SCRIPT)),
            Load::Ranges => Some(opts.scripts_dir.join(RANGE_SCRIPT)),
            _ => None,
        };
        let headers = match sc.load {
            Load::Gzip | Load::EsiGzip => vec!["Accept-Encoding: gzip".to_owned()],
            _ => Vec::new(),
        };
        let make_run = |label: &str, secs| WrkRun {
            url: format!("http://{listen}{}", sc.path),
            script: script.clone().map(|s| (s, unique_tag())),
            headers: headers.clone(),
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
