//! The `scale-out` scenario: HAProxy in front of one, then two lacquer nodes.

use std::net::SocketAddr;

use crate::cli::Options;
use crate::origin::Origin;
use crate::process::{describe, find_program, free_port, RunningServer, TempDir};
use crate::proxies::{lacquer_command, start_haproxy};
use crate::run::{measure, warm, BenchError, Outcome};
use crate::scenarios::{Load, SCENARIOS};
use crate::scripts::{SCALE_OUT_SCRIPT, SCALE_OUT_URLS};
use crate::wrk::{unique_tag, WrkRun};

pub(crate) struct ScaleRow {
    pub(crate) nodes: usize,
    pub(crate) stats: Outcome,
    pub(crate) origin_requests: u64,
    pub(crate) other_cpu: Option<f64>,
    /// Of the `SCALE_OUT_URLS` warm-up GETs, how many reached the origin.
    pub(crate) warm_fetches: u64,
}

pub(crate) fn bench_scale_out(
    opts: &Options,
    origin: &Origin,
) -> Result<Vec<ScaleRow>, BenchError> {
    let haproxy_bin = find_program("haproxy").ok_or(BenchError::NotInstalled)?;
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.load == Load::ScaleOut)
        .expect("the scale-out scenario is in SCENARIOS");
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let dir = TempDir::new(&format!("lacquer-node{i}"))
            .map_err(|e| BenchError::Failed(format!("create temp dir: {e}")))?;
        let listen = free_port().map_err(BenchError::Failed)?;
        let admin = free_port().map_err(BenchError::Failed)?;
        let cmd = lacquer_command(
            &opts.lacquer_bin,
            listen,
            origin.addr,
            admin,
            scenario.storage_mib,
        );
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
        let make_run = |label: &str, secs, _phase| WrkRun {
            url: format!("http://{bind}/"),
            script: Some((script.clone(), unique_tag())),
            threads: opts.threads,
            connections: opts.connections_for(scenario),
            secs,
            label: label.to_owned(),
            headers: Vec::new(),
        };
        let mut pids = vec![haproxy.pid()];
        pids.extend(nodes.iter().map(RunningServer::pid));
        let (stats, origin_requests, other_cpu) =
            measure(opts, origin, &label, &pids, opts.warmup_secs, make_run);
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
