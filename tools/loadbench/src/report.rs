//! The report printed on stdout.

use std::thread;

use crate::cli::Options;
use crate::holdings::thousands;
use crate::origin::OBJ_SIZE;
use crate::process::OTHER_CPU_WARN;
use crate::proxies::STORAGE_MIB;
use crate::run::{hit_ratio, Outcome, Row};
use crate::scale_out::ScaleRow;
use crate::scenarios::{
    Load, Scenario, ServerKind, RATIOS, SCALE_OUT_CONNECTIONS, ZIPF_STORAGE_MIB,
};
use crate::scripts::{SCALE_OUT_URLS, ZIPF_EXPONENT, ZIPF_KEYS};

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
    rss: &[(ServerKind, u64, (u64, usize))],
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
            let held = row.held.map(|h| h.describe());
            let notes = match (&row.stats, &row.note, &held) {
                (_, Some(note), _) => note.as_str(),
                (Outcome::NotApplicable(why), None, _) => why,
                (_, None, Some(held)) => held.as_str(),
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
    if opts.scenarios.iter().any(|s| s.load == Load::Zipf) {
        println!(
            "zipf      = {} keys of {OBJ_SIZE} bytes, Zipf s = {ZIPF_EXPONENT:?}, \
             each server on a {ZIPF_STORAGE_MIB} MiB budget{}; notes: what it held after the run",
            thousands(ZIPF_KEYS),
            budget_overrides(&opts.zipf_budgets)
        );
    }
    println!(
        "other CPU = share of the machine's CPU used by unrelated processes during the run \
         (over {:.0}% skews the figures)",
        OTHER_CPU_WARN * 100.0
    );
    if let Some(ms) = opts.pace_ms {
        println!(
            "paced     = each connection waited {ms} ms between an answer and its next request \
             (at most connections x {:.0} req/s offered to every server): req/s is the offered \
             load when a server keeps up; compare p50, p99 and CPU/req",
            1000.0 / f64::from(ms)
        );
    }
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
            ratio_lines.extend(ratio_line(sc, lrow, orow));
        }
    }
    for sc in opts.scenarios.iter().filter(|s| s.load == Load::Zipf) {
        let Some(lrow) = find(sc.name, ServerKind::Lacquer) else {
            continue;
        };
        for other in [ServerKind::Varnish, ServerKind::Nginx] {
            ratio_lines.extend(find(sc.name, other).and_then(|orow| zipf_goal(lrow, orow)));
        }
    }
    if !ratio_lines.is_empty() {
        println!();
        for line in ratio_lines {
            println!("{line}");
        }
    }
}

/// `a/b  SCENARIO  req/s …  CPU/req …  p99 …`, plus the hit ratios for
/// `zipf`; `None` unless both rows were measured.
pub(crate) fn ratio_line(sc: &Scenario, lrow: &Row, orow: &Row) -> Option<String> {
    let (l, o) = (lrow.stats.stats()?, orow.stats.stats()?);
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
    let caveat = caveat(lrow, orow);
    let cpu = match (l.cpu_us_per_request, o.cpu_us_per_request) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".to_owned(),
    };
    let hit = match (sc.load, hit_points(lrow, orow)) {
        (Load::Zipf, Some((a, b))) => format!(
            "   hit % {:.1} vs {:.1} ({:+.1} points)",
            a * 100.0,
            b * 100.0,
            (a - b) * 100.0
        ),
        _ => String::new(),
    };
    let pair = format!("{}/{}", lrow.server.name(), orow.server.name());
    Some(format!(
        "{pair:<30} {:<10} req/s {rps:>6}   CPU/req {cpu:>6}   p99 {p99}{hit}{caveat}",
        sc.name
    ))
}

/// `   (not comparable: see the notes of …)` when either row has a note.
fn caveat(lrow: &Row, orow: &Row) -> String {
    let warned: Vec<&str> = [lrow, orow]
        .iter()
        .filter(|r| r.note.is_some())
        .map(|r| r.server.name())
        .collect();
    if warned.is_empty() {
        String::new()
    } else {
        format!(
            "   (not comparable: see the notes of {})",
            warned.join(" and ")
        )
    }
}

/// The hit ratios (0..=1) of two measured rows.
pub(crate) fn hit_points(a: &Row, b: &Row) -> Option<(f64, f64)> {
    let ratio = |r: &Row| hit_ratio(r.origin_requests, r.stats.stats()?.requests);
    Some((ratio(a)?, ratio(b)?))
}

/// `zipf`'s goal (issue 16): lacquer's hit ratio at least `ZIPF_GOAL_POINTS`
/// above the other's, and `ZIPF_GOAL_RPS` times its req/s.
pub(crate) fn zipf_goal(lrow: &Row, orow: &Row) -> Option<String> {
    let (l, o) = (lrow.stats.stats()?, orow.stats.stats()?);
    let (lh, oh) = hit_points(lrow, orow)?;
    let points = (lh - oh) * 100.0;
    let rps = (o.requests_per_sec > 0.0).then(|| l.requests_per_sec / o.requests_per_sec);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    Some(format!(
        "zipf goal vs {}: hit ratio +{ZIPF_GOAL_POINTS:.0} points {} ({points:+.1}), \
         req/s {ZIPF_GOAL_RPS:.1}x {} ({}){}",
        orow.server.name(),
        verdict(points >= ZIPF_GOAL_POINTS),
        verdict(rps.is_some_and(|r| r >= ZIPF_GOAL_RPS)),
        rps.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}x")),
        caveat(lrow, orow)
    ))
}

/// Issue 16's `zipf` goal: hit ratio points above the other server's.
pub(crate) const ZIPF_GOAL_POINTS: f64 = 5.0;
/// Issue 16's `zipf` goal: req/s against the other server's.
pub(crate) const ZIPF_GOAL_RPS: f64 = 1.5;

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

/// Peak RSS per server instance: (server, storage budget in MiB, (KiB, processes)).
pub(crate) fn print_rss(rss: &[(ServerKind, u64, (u64, usize))]) {
    println!();
    println!("peak RSS (VmHWM summed over each server's processes):");
    for (kind, mib, (kib, procs)) in rss {
        println!(
            "  {:<28} {:>10}  ({procs} process{})",
            rss_label(*kind, *mib),
            fmt_mib(*kib),
            if *procs == 1 { "" } else { "es" }
        );
    }
    for (lacquer, mib, (l, _)) in rss.iter().filter(|(k, ..)| *k == ServerKind::Lacquer) {
        // The default budget's instances with each other, the others (zipf's,
        // whose budgets --zipf-budget may set apart) with each other.
        let default = *mib == STORAGE_MIB;
        for (kind, other_mib, (kib, _)) in rss
            .iter()
            .filter(|(k, m, _)| *k != ServerKind::Lacquer && (*m == STORAGE_MIB) == default)
        {
            if *kib > 0 {
                let pair = format!(
                    "{}/{}",
                    rss_label(*lacquer, *mib),
                    rss_label(*kind, *other_mib)
                );
                println!("  {pair:<28} RSS {:.2}x", *l as f64 / *kib as f64);
            }
        }
    }
}

/// ` (--zipf-budget: lacquer 275 MiB)`, or nothing without the option.
pub(crate) fn budget_overrides(budgets: &[(ServerKind, u64)]) -> String {
    if budgets.is_empty() {
        return String::new();
    }
    let list: Vec<String> = budgets
        .iter()
        .map(|(kind, mib)| format!("{kind} {mib} MiB"))
        .collect();
    format!(" (--zipf-budget: {})", list.join(", "))
}

/// `varnish`, or `varnish (100 MiB)` for an instance run with another
/// budget than the default.
pub(crate) fn rss_label(kind: ServerKind, storage_mib: u64) -> String {
    if storage_mib == STORAGE_MIB {
        kind.name().to_owned()
    } else {
        format!("{} ({storage_mib} MiB)", kind.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::SCENARIOS;
    use crate::wrk::WrkStats;

    fn row(server: ServerKind, rps: f64, requests: u64, origin: u64) -> Row {
        Row {
            scenario: "zipf",
            server,
            stats: Outcome::Measured(WrkStats {
                requests_per_sec: rps,
                requests,
                p99_us: Some(2000.0),
                ..WrkStats::default()
            }),
            origin_requests: origin,
            other_cpu: None,
            note: None,
            held: None,
        }
    }

    fn scenario(name: &str) -> &'static Scenario {
        SCENARIOS.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn zipf_ratio_line_has_hit_points() {
        let l = row(ServerKind::Lacquer, 60_000.0, 600_000, 120_000); // 80.0%
        let v = row(ServerKind::Varnish, 30_000.0, 300_000, 75_000); // 75.0%
        let line = ratio_line(scenario("zipf"), &l, &v).unwrap();
        assert!(line.starts_with("lacquer/varnish"), "{line}");
        assert!(line.contains("req/s  2.00x"), "{line}");
        assert!(line.contains("hit % 80.0 vs 75.0 (+5.0 points)"), "{line}");
        // Other scenarios: no hit column.
        let line = ratio_line(scenario("mix-90-10"), &l, &v).unwrap();
        assert!(!line.contains("points"), "{line}");
        // A failed row: no line.
        let mut failed = row(ServerKind::Varnish, 0.0, 0, 0);
        failed.stats = Outcome::Failed;
        assert_eq!(ratio_line(scenario("zipf"), &l, &failed), None);
    }

    #[test]
    fn zipf_goal_verdicts() {
        let l = row(ServerKind::Lacquer, 45_000.0, 450_000, 90_000); // 80.0%
        let v = row(ServerKind::Varnish, 30_000.0, 300_000, 75_000); // 75.0%
        assert_eq!(
            zipf_goal(&l, &v).unwrap(),
            "zipf goal vs varnish: hit ratio +5 points met (+5.0), req/s 1.5x met (1.50x)"
        );
        let worse = row(ServerKind::Lacquer, 40_000.0, 400_000, 120_000); // 70.0%
        assert_eq!(
            zipf_goal(&worse, &v).unwrap(),
            "zipf goal vs varnish: hit ratio +5 points NOT met (-5.0), req/s 1.5x NOT met (1.33x)"
        );
        let idle = row(ServerKind::Nginx, 0.0, 0, 0);
        assert_eq!(zipf_goal(&l, &idle), None);
        let mut noted = row(ServerKind::Varnish, 30_000.0, 300_000, 75_000);
        noted.note = Some("CACHE NOT FULL".to_owned());
        assert!(zipf_goal(&l, &noted)
            .unwrap()
            .ends_with("(1.50x)   (not comparable: see the notes of varnish)"));
    }

    #[test]
    fn overrides_listed() {
        assert_eq!(budget_overrides(&[]), "");
        assert_eq!(
            budget_overrides(&[(ServerKind::Lacquer, 275), (ServerKind::Nginx, 50)]),
            " (--zipf-budget: lacquer 275 MiB, nginx 50 MiB)"
        );
    }

    #[test]
    fn rss_labels() {
        assert_eq!(rss_label(ServerKind::Varnish, STORAGE_MIB), "varnish");
        assert_eq!(rss_label(ServerKind::Nginx, 100), "nginx (100 MiB)");
    }
}
