//! Load benchmark: lacquer against Varnish and nginx, driven by `wrk`.
//!
//! Run with `cargo bench --bench load [-- OPTIONS]` (benches/load.rs calls
//! [`main`] with the lacquer binary cargo built), or `cargo run -p loadbench
//! --release -- [OPTIONS]`; see `benches/README.md`.
//!
//! The bench starts an in-process origin (hyper, one tokio thread), then starts
//! each proxy under test in turn as a child process in front of it, warms the
//! cache, and runs one `wrk` pass per scenario. Proxies never run concurrently.
//! The `scale-out` scenario then puts HAProxy in front of one and then two
//! lacquer nodes.

mod cli;
mod holdings;
mod origin;
mod probe;
mod process;
mod proxies;
mod report;
mod run;
mod scale_out;
mod scenarios;
mod scripts;
mod wrk;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use crate::cli::Options;
use crate::origin::{start_origin, ESI_FRAGMENTS, ESI_PAGE_PATH, OBJ_SIZE};
use crate::process::{find_program, install_ctrl_c_handler, scratch, TempDir};
use crate::report::print_report;
use crate::run::{bench_server, BenchError, Outcome};
use crate::scale_out::bench_scale_out;
use crate::scenarios::{Load, ServerKind};
use crate::scripts::{write_scripts, ZIPF_KEYS};

/// Runs the benchmark with the command line `args` (program name first) and
/// returns the process's exit status. `lacquer_bin` is the lacquer binary
/// under test unless `LACQUER_BIN` names another.
pub fn main(args: impl IntoIterator<Item = OsString>, lacquer_bin: PathBuf) -> ExitCode {
    let mut opts = Options::parse(args, lacquer_bin);
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
             (cacheable, {OBJ_SIZE} bytes), /zipf/K (the same, K < {ZIPF_KEYS}), {ESI_PAGE_PATH} (ESI page), /frag/1..{ESI_FRAGMENTS}; \
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
    if let Err(e) = write_scripts(&scripts.0, opts.pace_ms) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    opts.scripts_dir = scripts.0.clone();

    let origin = start_origin(
        TcpListener::bind("127.0.0.1:0").expect("origin: bind a free port on 127.0.0.1"),
    );
    eprintln!("origin listening on {}", origin.addr);

    for round in 0..opts.rounds {
        if opts.rounds > 1 {
            let order: Vec<String> = opts
                .servers_in_round(round)
                .iter()
                .map(ToString::to_string)
                .collect();
            println!(
                "\n# round {} of {} (servers in this order: {})",
                round + 1,
                opts.rounds,
                order.join(", ")
            );
        }
        let mut rows = Vec::new();
        let mut rss = Vec::new();
        let per_server = opts.scenarios.iter().any(|s| s.load != Load::ScaleOut);
        for kind in opts
            .servers_in_round(round)
            .into_iter()
            .filter(|_| per_server)
        {
            match bench_server(kind, &opts, &origin) {
                Ok(outcome) => {
                    failed |= outcome
                        .rows
                        .iter()
                        .any(|r| matches!(r.stats, Outcome::Failed));
                    rows.extend(outcome.rows);
                    rss.extend(
                        outcome
                            .peak_rss
                            .into_iter()
                            .map(|(mib, peak)| (kind, mib, peak)),
                    );
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

        // The table keeps the servers in the order given, whatever the round's.
        let given = |kind: ServerKind| opts.servers.iter().position(|&k| k == kind);
        rows.sort_by_key(|r| given(r.server));
        rss.sort_by_key(|&(kind, _, _)| given(kind));
        print_report(&opts, &rows, &rss, &scale_rows);
    }
    drop(scripts);
    if failed {
        eprintln!("\nsome servers or scenarios failed; see the messages above");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
