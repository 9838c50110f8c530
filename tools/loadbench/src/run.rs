//! Running one server through the scenarios: warm-up, measured run, origin counts.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::cli::Options;
use crate::holdings::Held;
use crate::origin::{Origin, OBJ_SIZE};
use crate::probe::{check_esi_page, http_get, http_get_with};
use crate::process::{
    descendants, describe, free_port, peak_rss_kib, process_ticks, CpuSnapshot, RunningServer,
    TempDir, OTHER_CPU_WARN,
};
use crate::proxies::{server_command, STORAGE_MIB};
use crate::scenarios::{Load, Scenario, ServerKind};
use crate::scripts::{
    MIX_HOT_URLS, MIX_SCRIPT, PACE_SCRIPT, RANGE_SCRIPT, SCALE_OUT_URLS, ZIPF_SCRIPT,
};
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
    /// What the cache held after the run (`zipf` only; shown in the table
    /// when there is no note).
    pub(crate) held: Option<Held>,
}

/// Which of a scenario's two wrk runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Untimed, `--warmup` (or `--zipf-warmup`) seconds.
    WarmUp,
    /// The run the table reports.
    Measured,
}

/// 1 - origin requests / client requests, clamped to 0..=1. `None` without
/// a client request to divide by.
pub(crate) fn hit_ratio(origin_requests: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| (1.0 - origin_requests as f64 / requests as f64).clamp(0.0, 1.0))
}

pub(crate) struct ServerOutcome {
    pub(crate) rows: Vec<Row>,
    /// One per server instance: (storage budget in MiB, (KiB, processes counted)).
    pub(crate) peak_rss: Vec<(u64, (u64, usize))>,
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
        // Filled by the warm-up run: a million URLs, most of them evicted again.
        Load::Zipf => Vec::new(),
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

/// Untimed warm-up run of `warmup_secs` (none if 0), then the measured run:
/// returns the measured run's figures, the origin requests it caused and the
/// share of the CPU other processes took meanwhile.
pub(crate) fn measure(
    opts: &Options,
    origin: &Origin,
    label: &str,
    servers: &[u32],
    warmup_secs: u64,
    make_run: impl Fn(&str, u64, Phase) -> WrkRun,
) -> (Result<WrkStats, String>, u64, Option<f64>) {
    if warmup_secs > 0 {
        // Untimed: lets thread pools, connection pools and the like reach
        // steady state before measuring. Results are discarded.
        thread::sleep(SETTLE);
        let run = make_run(&format!("{label} warm-up"), warmup_secs, Phase::WarmUp);
        if let Err(e) = run_wrk(&opts.wrk, &run) {
            eprintln!("[{label}] warm-up: {e}");
        }
    }
    // Let in-flight work (e.g. pass fetches) drain so it isn't counted
    // against this run.
    thread::sleep(SETTLE);
    let run = make_run(label, opts.duration_secs, Phase::Measured);
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
    match &stats {
        Ok(s) => {
            if let Some(note) = s.clock_note(opts.duration_secs) {
                eprintln!("[{label}] warning: {note}");
            }
        }
        Err(e) => eprintln!("[{label}] {e}"),
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

/// The scenarios of `scenarios` run per server, grouped by storage budget
/// (`budget`: `Scenario::storage_mib`, or `--zipf-budget`'s for the server):
/// each group runs on a server instance of its own, started with that
/// budget. The default budget's group comes first; order is kept within a
/// group.
pub(crate) fn budget_groups<'a>(
    scenarios: &[&'a Scenario],
    budget: impl Fn(&Scenario) -> u64,
) -> Vec<(u64, Vec<&'a Scenario>)> {
    let mut groups: Vec<(u64, Vec<&Scenario>)> = Vec::new();
    for &sc in scenarios.iter().filter(|s| s.load != Load::ScaleOut) {
        let mib = budget(sc);
        match groups.iter_mut().find(|(m, _)| *m == mib) {
            Some((_, group)) => group.push(sc),
            None => groups.push((mib, vec![sc])),
        }
    }
    groups.sort_by_key(|(mib, _)| *mib != STORAGE_MIB);
    groups
}

/// Runs `kind` through the scenarios: one server instance per storage
/// budget (`budget_groups`), each stopped before the next starts.
pub(crate) fn bench_server(
    kind: ServerKind,
    opts: &Options,
    origin: &Origin,
) -> Result<ServerOutcome, BenchError> {
    let mut outcome = ServerOutcome {
        rows: Vec::new(),
        peak_rss: Vec::new(),
    };
    let budget = |sc: &Scenario| opts.storage_for(kind, sc);
    for (storage_mib, scenarios) in budget_groups(&opts.scenarios, budget) {
        let (rows, rss) = bench_instance(kind, opts, origin, storage_mib, &scenarios)?;
        outcome.rows.extend(rows);
        outcome.peak_rss.push((storage_mib, rss));
    }
    Ok(outcome)
}

/// One server instance with a storage budget of `storage_mib` MiB through
/// `scenarios`; its rows and peak RSS.
fn bench_instance(
    kind: ServerKind,
    opts: &Options,
    origin: &Origin,
    storage_mib: u64,
    scenarios: &[&Scenario],
) -> Result<(Vec<Row>, (u64, usize)), BenchError> {
    let dir = TempDir::new(kind.name())
        .map_err(|e| BenchError::Failed(format!("create temp dir: {e}")))?;
    let listen = free_port().map_err(BenchError::Failed)?;
    let spec = server_command(
        kind,
        &opts.lacquer_bin,
        listen,
        origin.addr,
        &dir.0,
        storage_mib,
    )
    .map_err(BenchError::Failed)?
    .ok_or(BenchError::NotInstalled)?;
    eprintln!("[{kind}] starting on {listen}: {}", describe(&spec.cmd));
    let mut server = RunningServer::spawn(spec.cmd, listen, dir).map_err(BenchError::Failed)?;
    server.wait_ready().map_err(BenchError::Failed)?;

    let mut rows = Vec::new();
    for &sc in scenarios {
        let label = format!("{kind} {}", sc.name);
        let mut row = Row {
            scenario: sc.name,
            server: kind,
            stats: Outcome::Failed,
            origin_requests: 0,
            other_cpu: None,
            note: None,
            held: None,
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
            Load::Zipf => Some(opts.scripts_dir.join(ZIPF_SCRIPT)),
            _ => opts.pace_ms.map(|_| opts.scripts_dir.join(PACE_SCRIPT)),
        };
        let headers = match sc.load {
            Load::Gzip | Load::EsiGzip => vec!["Accept-Encoding: gzip".to_owned()],
            _ => Vec::new(),
        };
        let make_run = |label: &str, secs, phase| WrkRun {
            url: format!("http://{listen}{}", sc.path),
            script: script.clone().map(|s| (s, script_arg(sc.load, phase))),
            headers: headers.clone(),
            threads: opts.threads,
            connections: opts.connections_for(sc),
            secs,
            label: label.to_owned(),
        };
        let (stats, origin_requests, other_cpu) = measure(
            opts,
            origin,
            &label,
            &[server.pid()],
            opts.warmup_for(sc),
            make_run,
        );
        if let Some(note) = stats
            .as_ref()
            .ok()
            .and_then(|s| s.clock_note(opts.duration_secs))
        {
            row.note.get_or_insert(note);
        }
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
        if sc.load == Load::Zipf {
            match spec.holdings.read() {
                Ok(held) => {
                    eprintln!("[{label}] {}", held.describe());
                    if let Some(note) = held.budget_note(storage_mib) {
                        eprintln!("[{label}] warning: {note}");
                        row.note.get_or_insert(note);
                    }
                    row.held = Some(held);
                }
                Err(e) => eprintln!("[{label}] warning: cannot tell what the cache holds: {e}"),
            }
        }
        rows.push(row);
    }
    let peak_rss = peak_rss_kib(server.pid());
    drop(server);
    Ok((rows, peak_rss))
}

/// The argument a scenario's Lua script gets. `zipf` seeds its random
/// numbers with it: the same per phase, so every server gets the same
/// request streams, and another for the measured run than for the warm-up.
/// The others make up never-seen URLs from it: new for every run.
pub(crate) fn script_arg(load: Load, phase: Phase) -> String {
    match (load, phase) {
        (Load::Zipf, Phase::WarmUp) => "1".to_owned(),
        (Load::Zipf, Phase::Measured) => "2".to_owned(),
        _ => unique_tag(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::SCENARIOS;

    #[test]
    fn hit_ratio_arithmetic() {
        assert_eq!(hit_ratio(0, 0), None);
        assert_eq!(hit_ratio(0, 1000), Some(1.0));
        assert_eq!(hit_ratio(250, 1000), Some(0.75));
        assert_eq!(hit_ratio(1000, 1000), Some(0.0));
        // More origin requests than client requests (ESI fragments, or
        // misses still in flight from the warm-up): floored at 0.
        assert_eq!(hit_ratio(3000, 1000), Some(0.0));
    }

    #[test]
    fn groups_by_budget() {
        let all: Vec<&Scenario> = SCENARIOS.iter().collect();
        let groups = budget_groups(&all, |s| s.storage_mib);
        let names: Vec<(u64, Vec<&str>)> = groups
            .iter()
            .map(|(mib, g)| (*mib, g.iter().map(|s| s.name).collect()))
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0].0, STORAGE_MIB);
        assert!(!names[0].1.contains(&"zipf") && !names[0].1.contains(&"scale-out"));
        assert_eq!(names[0].1.len(), SCENARIOS.len() - 2);
        assert_eq!(names[1], (100, vec!["zipf"]));

        // zipf first on the command line: the default budget's instance still runs first.
        let zipf = SCENARIOS.iter().find(|s| s.name == "zipf").unwrap();
        let hit = SCENARIOS.iter().find(|s| s.name == "hit-1KiB").unwrap();
        let groups = budget_groups(&[zipf, hit], |s| s.storage_mib);
        assert_eq!(groups[0].0, STORAGE_MIB);
        assert_eq!(groups[1].0, 100);
        assert!(budget_groups(&[zipf], |s| s.storage_mib)[0].0 == 100);
        // --zipf-budget: another instance budget, still after the default one.
        let groups = budget_groups(&[zipf, hit], |s| {
            if s.name == "zipf" {
                275
            } else {
                s.storage_mib
            }
        });
        assert_eq!((groups[0].0, groups[1].0), (STORAGE_MIB, 275));
    }

    #[test]
    fn zipf_seeds() {
        assert_eq!(script_arg(Load::Zipf, Phase::WarmUp), "1");
        assert_eq!(script_arg(Load::Zipf, Phase::Measured), "2");
        assert_ne!(
            script_arg(Load::Mix, Phase::Measured),
            script_arg(Load::Mix, Phase::Measured)
        );
    }
}
