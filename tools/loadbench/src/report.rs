//! The report printed on stdout.

use std::thread;

use crate::cli::Options;
use crate::origin::OBJ_SIZE;
use crate::process::OTHER_CPU_WARN;
use crate::run::{hit_ratio, Outcome, Row};
use crate::scale_out::ScaleRow;
use crate::scenarios::{ServerKind, RATIOS, SCALE_OUT_CONNECTIONS};
use crate::scripts::SCALE_OUT_URLS;

pub(crate) fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "-".to_owned(),
        Some(us) if us < 1e3 => format!("{us:.0}us"),
        Some(us) if us < 1e6 => format!("{:.2}ms", us / 1e3),
        Some(us) => format!("{:.2}s", us / 1e6),
    }
}

pub(crate) fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// req/s, MiB/s, CPU/req, p50, p99, errors, origin, hit %, other CPU.
pub(crate) fn result_cells(stats: &Outcome, origin: u64, other_cpu: Option<f64>) -> [String; 9] {
    let dash = || "-".to_owned();
    let other = other_cpu.map_or_else(dash, |s| format!("{:.0}%", s * 100.0));
    match stats {
        Outcome::Measured(s) => [
            format!("{:.0}", s.requests_per_sec),
            s.bytes_per_sec
                .map_or_else(dash, |b| format!("{:.1}", b / (1024.0 * 1024.0))),
            s.cpu_us_per_request
                .map_or_else(dash, |us| format!("{us:.1}us")),
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
            dash(),
            dash(),
        ],
    }
}

/// One table line: two leading cells, the result cells, then notes.
pub(crate) fn table_line(first: &str, second: &str, cells: &[String; 9], notes: &str) {
    let [rps, mibs, cpu, p50, p99, errors, origin, hit, other] = cells;
    let line = format!(
        "{first:<10} | {second:<15} | {rps:>10} | {mibs:>8} | {cpu:>9} | {p50:>9} | {p99:>9} | {errors:<24} | {origin:>8} | {hit:>6} | {other:>9} | {notes}"
    );
    println!("{}", line.trim_end());
}

pub(crate) fn table_header(first: &str, second: &str) {
    let head = [
        "req/s",
        "MiB/s",
        "CPU/req",
        "p50",
        "p99",
        "errors",
        "origin",
        "hit %",
        "other CPU",
    ]
    .map(str::to_owned);
    table_line(first, second, &head, "notes");
    println!("{}", "-".repeat(157));
}

pub(crate) fn print_report(
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

pub(crate) fn print_table(opts: &Options, rows: &[Row]) {
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
    println!("MiB/s     = response bytes per second (wrk's Transfer/sec, heads included)");
    println!(
        "CPU/req   = user + system CPU time of the server's processes during the run, per request"
    );
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

pub(crate) fn print_ratios(opts: &Options, rows: &[Row]) {
    let find =
        |sc: &str, kind: ServerKind| rows.iter().find(|r| r.scenario == sc && r.server == kind);
    let mut ratio_lines = Vec::new();
    for (mine, other) in RATIOS {
        for sc in &opts.scenarios {
            let (Some(lrow), Some(orow)) = (find(sc.name, mine), find(sc.name, other)) else {
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
            let cpu = match (l.cpu_us_per_request, o.cpu_us_per_request) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "n/a".to_owned(),
            };
            let pair = format!("{}/{}", mine.name(), other.name());
            ratio_lines.push(format!(
                "{pair:<30} {:<10} req/s {rps:>6}   CPU/req {cpu:>6}   p99 {p99}{caveat}",
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

pub(crate) fn print_scale_out(opts: &Options, rows: &[ScaleRow]) {
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

pub(crate) fn print_rss(rss: &[(ServerKind, (u64, usize))]) {
    println!();
    println!("peak RSS (VmHWM summed over each server's processes):");
    for (kind, (kib, procs)) in rss {
        println!(
            "  {:<15} {:>10}  ({procs} process{})",
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
                    "  lacquer/{:<15} RSS {:.2}x",
                    kind.name(),
                    *l as f64 / *kib as f64
                );
            }
        }
    }
}
