//! Command-line options: parsed with clap ([`Cli`]), then resolved into the
//! [`Options`] the rest of the tool reads.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::scenarios::{Load, Scenario, ServerKind, DEFAULT_SERVERS, SCENARIOS};

const DEFAULT_DURATION_SECS: u64 = 10;
const DEFAULT_WARMUP_SECS: u64 = 2;
/// `zipf`'s warm-up fills a cache from empty and lets its eviction reach
/// steady state. Varnish, the slowest to fill (it holds the most objects
/// in the budget, ~80,000, and misses at ~15,000 req/s), needs about 30 s.
const DEFAULT_ZIPF_WARMUP_SECS: u64 = 30;
const DEFAULT_WRK_THREADS: u32 = 2;

/// The options as typed.
#[derive(Parser)]
#[command(
    name = "loadbench",
    about = "Load benchmark: lacquer against Varnish and nginx (and HAProxy in front of \
             one vs two lacquer nodes), driven by wrk. All traffic stays on 127.0.0.1.",
    override_usage = "cargo bench --bench load [-- OPTIONS]\n       \
                      cargo run -p loadbench --release -- [OPTIONS]",
    after_help = "environment:\n  \
                  LACQUER_BIN            lacquer binary to run instead of the one cargo built\n\n\
                  Results go to stdout; progress (a line updated every second) goes to stderr."
)]
struct Cli {
    /// wrk duration per scenario, in seconds
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_DURATION_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// servers to run, comma separated: lacquer,varnish,nginx [default: these three];
    /// also lacquer-builtin (lacquer on the bench's Varnish VCL), lacquer-policy and
    /// varnish-policy (both on vcl-lite/benches/production.vcl)
    #[arg(long, value_name = "LIST", value_parser = parse_servers)]
    only: Option<::std::vec::Vec<ServerKind>>,
    /// scenarios, comma separated: hit-1KiB,hit-16KiB,hit-1MiB,range-1MiB,gzip-16KiB,pass-1KiB,esi,esi-gzip,mix-90-10,zipf,scale-out
    /// [default: all; scale-out only if haproxy is installed]
    #[arg(long, value_name = "LIST", value_parser = parse_scenarios)]
    scenarios: Option<::std::vec::Vec<&'static Scenario>>,
    /// untimed wrk run before each scenario, in seconds; 0 to skip
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_WARMUP_SECS)]
    warmup: u64,
    /// untimed wrk run before the zipf scenario, filling its cache, in seconds; 0 to skip
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_ZIPF_WARMUP_SECS)]
    zipf_warmup: u64,
    /// zipf's storage budget per server instead of 100 MiB, e.g.
    /// lacquer=275,varnish=100 (to compare at equal objects held)
    #[arg(long, value_name = "LIST", value_parser = parse_budgets)]
    zipf_budget: Option<::std::vec::Vec<(ServerKind, u64)>>,
    /// wrk connections for every scenario [default: 256; 64 for hit-1MiB]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    connections: Option<u32>,
    /// full runs, each with its own report; the servers go in the given
    /// order in odd rounds and in reverse in even ones, so a machine whose
    /// speed drifts weighs on every server alike
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// each connection waits MS milliseconds between an answer and its next
    /// request (wrk's `delay()`): every server is offered the same load, at
    /// most connections x 1000 / MS requests a second, so p99 is measured
    /// with neither the server nor wrk saturated
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pace: Option<u32>,
    /// wrk threads
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WRK_THREADS,
          value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
    /// only run the origin on ADDR (e.g. 127.0.0.1:8080) until killed, for
    /// running the scenarios by hand
    #[arg(long, value_name = "ADDR", value_parser = parse_loopback)]
    serve_origin: Option<SocketAddr>,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What the run is asked to do.
pub(crate) struct Options {
    pub(crate) duration_secs: u64,
    pub(crate) servers: Vec<ServerKind>,
    /// True when `--only` was given: a missing proxy binary is then an error.
    pub(crate) servers_explicit: bool,
    pub(crate) scenarios: Vec<&'static Scenario>,
    /// True when `--scenarios` was given: a missing HAProxy is then an error
    /// for `scale-out`.
    pub(crate) scenarios_explicit: bool,
    pub(crate) connections: Option<u32>,
    pub(crate) threads: u32,
    /// `--rounds`: full runs, alternating the servers' order.
    pub(crate) rounds: u32,
    /// `--pace`: milliseconds each connection waits between requests.
    pub(crate) pace_ms: Option<u32>,
    /// Untimed wrk run before each measured one (0 = none).
    pub(crate) warmup_secs: u64,
    /// `zipf`'s untimed wrk run, instead of `warmup_secs` (0 = none).
    pub(crate) zipf_warmup_secs: u64,
    /// `--zipf-budget`: `zipf`'s storage budget for these servers, in MiB.
    pub(crate) zipf_budgets: Vec<(ServerKind, u64)>,
    /// `--serve-origin ADDR`: only run the origin, for measuring by hand.
    pub(crate) serve_origin: Option<SocketAddr>,
    /// The lacquer binary under test.
    pub(crate) lacquer_bin: PathBuf,
    /// Path of the wrk binary; set once it has been found.
    pub(crate) wrk: PathBuf,
    /// Where the wrk Lua scripts are; set once they have been written.
    pub(crate) scripts_dir: PathBuf,
}

impl Options {
    /// Parses the command line (`args` includes the program name). On
    /// `--help` or an error, clap prints and exits (status 0, or 2 on error).
    /// `lacquer_bin` is used unless `LACQUER_BIN` is set.
    pub(crate) fn parse(
        args: impl IntoIterator<Item = std::ffi::OsString>,
        lacquer_bin: PathBuf,
    ) -> Self {
        let cli = Cli::parse_from(args);
        Options {
            duration_secs: cli.duration,
            servers_explicit: cli.only.is_some(),
            servers: cli.only.unwrap_or_else(|| DEFAULT_SERVERS.to_vec()),
            scenarios_explicit: cli.scenarios.is_some(),
            scenarios: cli.scenarios.unwrap_or_else(|| SCENARIOS.iter().collect()),
            connections: cli.connections,
            threads: cli.threads,
            rounds: cli.rounds,
            pace_ms: cli.pace,
            warmup_secs: cli.warmup,
            zipf_warmup_secs: cli.zipf_warmup,
            zipf_budgets: cli.zipf_budget.unwrap_or_default(),
            serve_origin: cli.serve_origin,
            lacquer_bin: std::env::var_os("LACQUER_BIN")
                .map(PathBuf::from)
                .unwrap_or(lacquer_bin),
            wrk: PathBuf::from("wrk"),
            scripts_dir: PathBuf::new(),
        }
    }

    /// The servers in round `round` (0-based): as given, then reversed,
    /// and so on.
    pub(crate) fn servers_in_round(&self, round: u32) -> Vec<ServerKind> {
        let mut servers = self.servers.clone();
        if round % 2 == 1 {
            servers.reverse();
        }
        servers
    }

    pub(crate) fn connections_for(&self, scenario: &Scenario) -> u32 {
        self.connections.unwrap_or(scenario.connections)
    }

    /// `kind`'s storage budget for `scenario`, in MiB.
    pub(crate) fn storage_for(&self, kind: ServerKind, scenario: &Scenario) -> u64 {
        let set = self.zipf_budgets.iter().find(|(k, _)| *k == kind);
        match (scenario.load, set) {
            (Load::Zipf, Some((_, mib))) => *mib,
            _ => scenario.storage_mib,
        }
    }

    /// Seconds of the untimed wrk run before `scenario`'s measured run.
    pub(crate) fn warmup_for(&self, scenario: &Scenario) -> u64 {
        match scenario.load {
            Load::Zipf => self.zipf_warmup_secs,
            _ => self.warmup_secs,
        }
    }
}

fn parse_servers(s: &str) -> Result<Vec<ServerKind>, String> {
    parse_list(s, |s| {
        ServerKind::parse(s).ok_or_else(|| format!("unknown server `{s}`"))
    })
}

fn parse_scenarios(s: &str) -> Result<Vec<&'static Scenario>, String> {
    parse_list(s, |s| {
        SCENARIOS
            .iter()
            .find(|sc| sc.name.eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown scenario `{s}`"))
    })
}

/// `SERVER=MIB,...`, MIB in 1..=1048576.
fn parse_budgets(s: &str) -> Result<Vec<(ServerKind, u64)>, String> {
    let budgets = parse_list(s, |part| {
        let (name, mib) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: needs SERVER=MIB"))?;
        let kind = ServerKind::parse(name.trim())
            .ok_or_else(|| format!("unknown server `{}`", name.trim()))?;
        let mib = mib
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|m| (1..=1 << 20).contains(m))
            .ok_or_else(|| format!("`{part}`: MIB must be an integer in 1..=1048576"))?;
        Ok((kind, mib))
    })?;
    for (i, (kind, _)) in budgets.iter().enumerate() {
        if budgets[..i].iter().any(|(k, _)| k == kind) {
            return Err(format!("{kind} given twice"));
        }
    }
    Ok(budgets)
}

fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .trim()
        .parse()
        .map_err(|_| format!("needs IP:PORT, got `{s}`"))?;
    if !addr.ip().is_loopback() {
        return Err("only loopback addresses are bound".to_owned());
    }
    Ok(addr)
}

/// A comma-separated list, duplicates dropped, order kept; empty is an error.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadbench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!((cli.duration, cli.warmup, cli.threads), (10, 2, 2));
        assert_eq!(cli.zipf_warmup, 30);
        assert!(cli.only.is_none() && cli.scenarios.is_none() && cli.connections.is_none());
        assert!(cli.zipf_budget.is_none());
    }

    #[test]
    fn lists_and_values() {
        let cli = parse(&[
            "--bench",
            "--duration=3",
            "--only",
            "Lacquer, varnish,lacquer",
            "--scenarios",
            "hit-1kib,esi",
            "--serve-origin",
            "127.0.0.1:8080",
            "--zipf-warmup",
            "0",
            "--zipf-budget",
            "lacquer=275, varnish = 100",
        ])
        .unwrap();
        assert_eq!(cli.zipf_warmup, 0);
        assert_eq!(
            cli.zipf_budget.unwrap(),
            vec![(ServerKind::Lacquer, 275), (ServerKind::Varnish, 100)]
        );
        assert_eq!(cli.duration, 3);
        assert_eq!(
            cli.only.unwrap(),
            vec![ServerKind::Lacquer, ServerKind::Varnish]
        );
        let names: Vec<_> = cli.scenarios.unwrap().iter().map(|s| s.name).collect();
        assert_eq!(names, ["hit-1KiB", "esi"]);
        assert_eq!(cli.serve_origin.unwrap().port(), 8080);
    }

    #[test]
    fn zipf_budget_per_server() {
        let args = ["loadbench", "--zipf-budget", "lacquer=275"].map(std::ffi::OsString::from);
        let opts = Options::parse(args, PathBuf::from("lacquer"));
        let sc = |name: &str| SCENARIOS.iter().find(|s| s.name == name).unwrap();
        assert_eq!(opts.storage_for(ServerKind::Lacquer, sc("zipf")), 275);
        assert_eq!(opts.storage_for(ServerKind::Varnish, sc("zipf")), 100);
        assert_eq!(opts.storage_for(ServerKind::Lacquer, sc("hit-1KiB")), 256);
        assert_eq!(opts.warmup_for(sc("zipf")), 30);
        assert_eq!(opts.warmup_for(sc("hit-1KiB")), 2);
    }

    #[test]
    fn rounds_alternate_the_servers_order() {
        let args = [
            "loadbench",
            "--rounds",
            "3",
            "--only",
            "lacquer,varnish,nginx",
        ]
        .map(std::ffi::OsString::from);
        let opts = Options::parse(args, PathBuf::from("lacquer"));
        assert_eq!(opts.rounds, 3);
        use ServerKind::{Lacquer, Nginx, Varnish};
        assert_eq!(opts.servers_in_round(0), [Lacquer, Varnish, Nginx]);
        assert_eq!(opts.servers_in_round(1), [Nginx, Varnish, Lacquer]);
        assert_eq!(opts.servers_in_round(2), [Lacquer, Varnish, Nginx]);
        let one = Options::parse(["loadbench"].map(std::ffi::OsString::from), "l".into());
        assert_eq!(one.rounds, 1);
    }

    #[test]
    fn rejected() {
        for args in [
            &["--duration", "0"][..],
            &["--threads", "x"],
            &["--zipf-warmup", "-1"],
            &["--zipf-budget", "lacquer"],
            &["--zipf-budget", "lacquer=0"],
            &["--zipf-budget", "squid=100"],
            &["--zipf-budget", "lacquer=1,lacquer=2"],
            &["--zipf-budget", "nginx=1x"],
            &["--only", "squid"],
            &["--scenarios", ","],
            &["--serve-origin", "192.0.2.1:80"],
            &["--rounds", "0"],
            &["--rounds", "21"],
            &["--frobnicate"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
