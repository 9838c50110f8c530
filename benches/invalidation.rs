//! Invalidation benchmark: purge by surrogate key and a 1% ban, measured
//! against a store of 1,000,000 small objects.
//!
//! Run with `cargo bench --bench invalidation [-- --objects N]`; see
//! `benches/README.md`. No network: the bench drives the library directly
//! (`Store`, `BanList`, `lurker::walk`).
//!
//! 1. Fill: N objects, URL `/p/{i}` on host `bench.example`, a 64-byte body,
//!    `Surrogate-Key: k{i % 100000}` (10 objects per key at 1M).
//! 2. Key purge: `purge_tag` hard for 100 keys (`k42` first), timed one by one.
//! 3. Ban of 1%: `req.url ~ "^/p/[0-9]*42$"`, one lurker walk, while a lookup
//!    task (lookup + ban check, as the pipeline does) runs on the other
//!    worker; then the same lookup task with no ban, for as long as the walk
//!    took, as baseline. A second 1% ban (`...43$`) is walked with no
//!    lookups alongside, to show the lurker's time on its own.

use std::env;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, StatusCode};

use lacquer::cache::freshness::Freshness;
use lacquer::cache::object::{KeySpec, Provenance};
use lacquer::cache::store::PurgeMode;
use lacquer::cache::vary::Variant;
use lacquer::cache::{CacheKey, CachedObject, Found, Store};
use lacquer::invalidate::ban_expr::BanExpr;
use lacquer::invalidate::bans::{BanLimits, BanList};
use lacquer::invalidate::lurker;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

/// Same allocator as the `lacquer` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_OBJECTS: u64 = 1_000_000;
const HOST_NAME: &str = "bench.example";
const BODY_LEN: usize = 64;
/// Distinct surrogate keys: `k0` .. `k99999`.
const TAGS: u64 = 100_000;
/// Keys purged in step 2.
const PURGES: usize = 100;
/// Storage budget: far above what 1M small objects weigh, so nothing is evicted.
const BUDGET: u64 = 4 << 30;
/// Variants per URL (the config default).
const MAX_VARIANTS: usize = 32;
/// The 1% ban: every URL whose number ends in 42.
const BAN: &str = r#"req.url ~ "^/p/[0-9]*42$""#;
/// Another 1% ban, for the walk with no lookups alongside: numbers ending in 43.
const BAN_ALONE: &str = r#"req.url ~ "^/p/[0-9]*43$""#;
/// Objects between two yields of the lurker (what `lurker::run` uses).
const LURKER_BATCH: usize = 1000;
/// Lookups between two updates of the shared counters (and stop checks).
const LOOKUP_BATCH: u64 = 256;
/// Lookup task running before the timed window starts.
const LOOKUP_WARMUP: Duration = Duration::from_millis(200);

const USAGE: &str = "\
usage: cargo bench --bench invalidation [-- OPTIONS]

options:
  --objects N   objects stored before purging and banning (default 1000000)
  -h, --help    this text
";

fn parse_args() -> Result<Option<u64>, String> {
    let mut objects = DEFAULT_OBJECTS;
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        match flag.as_str() {
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            "-h" | "--help" => return Ok(None),
            "--objects" => {
                let v = inline
                    .or_else(|| args.next())
                    .ok_or("--objects needs a value")?;
                objects = v
                    .replace('_', "")
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--objects: not a positive integer: {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(objects))
}

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn fill(store: &Store, n: u64) {
    let keys = KeySpec {
        headers: vec![HeaderName::from_static("surrogate-key")],
        strip: true,
        max_keys: 1024,
        ..KeySpec::default()
    };
    let body = Bytes::from(vec![b'x'; BODY_LEN]);
    let now = SystemTime::now();
    let freshness = Freshness {
        ttl: Duration::from_secs(3600),
        ..Freshness::unstored(now)
    };
    for i in 0..n {
        let url = format!("/p/{i}");
        let mut headers = HeaderMap::new();
        headers.insert(
            "surrogate-key",
            HeaderValue::try_from(format!("k{}", i % TAGS)).expect("valid header value"),
        );
        let obj = CachedObject::new(
            StatusCode::OK,
            headers,
            body.clone(),
            freshness.clone(),
            Variant::default(),
            &keys,
            Provenance {
                url: url.as_str().into(),
                host: HOST_NAME.into(),
                ban_stamp: 0,
            },
        );
        store.insert(CacheKey::for_request(HOST_NAME, &url), Arc::new(obj));
    }
}

/// Counters shared with the lookup task.
#[derive(Default)]
struct LookupStats {
    lookups: AtomicU64,
    hits: AtomicU64,
    banned: AtomicU64,
    stop: AtomicBool,
}

/// Looks up random URLs until told to stop, the way `pipeline::lookup` does:
/// `Store::lookup`, then the ban check against the request; a banned object
/// is removed and the lookup is a miss.
///
/// It never yields, so it keeps one of the two workers to itself and the
/// lurker walk runs on the other one. That matches the server, where the
/// lurker runs on the main runtime and lookups on the per-core request
/// runtimes, each on its own thread. A yielding loop would let tokio put
/// both tasks on one worker some runs and not others, and the lookup rate
/// would swing between runs.
fn lookup_loop(store: Store, bans: Arc<BanList>, n: u64, seed: u64, stats: Arc<LookupStats>) {
    let mut rng = Rng(seed);
    let mut req = HeaderMap::new();
    req.insert(HOST, HeaderValue::from_static(HOST_NAME));
    let req = lacquer::http::req_fields::ReqFields::new(req);
    let mut url = String::with_capacity(16);
    loop {
        let (mut hits, mut banned) = (0, 0);
        for _ in 0..LOOKUP_BATCH {
            url.clear();
            url.push_str("/p/");
            url.push_str(&rng.below(n).to_string());
            let key = CacheKey::for_request(HOST_NAME, &url);
            if let Found::Object(obj) = store.lookup(&key, &req) {
                if bans.is_banned(&obj, Some(&req)) {
                    if store.remove_object(&key, &obj) {
                        banned += 1;
                    }
                } else {
                    hits += 1;
                }
            }
        }
        stats.lookups.fetch_add(LOOKUP_BATCH, Ordering::Relaxed);
        stats.hits.fetch_add(hits, Ordering::Relaxed);
        stats.banned.fetch_add(banned, Ordering::Relaxed);
        if stats.stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// What one timed window of the lookup task saw.
struct Window {
    elapsed: Duration,
    lookups: u64,
    hits: u64,
    banned: u64,
}

impl Window {
    fn rate(&self) -> f64 {
        self.lookups as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the lookup task; once it is warm, runs `during` and measures the
/// lookups made while it ran.
async fn with_lookups<T, F>(
    store: &Store,
    bans: &Arc<BanList>,
    n: u64,
    seed: u64,
    during: F,
) -> (T, Window)
where
    F: std::future::Future<Output = T>,
{
    let stats = Arc::new(LookupStats::default());
    let (store, bans, task_stats) = (store.clone(), bans.clone(), stats.clone());
    let task = tokio::spawn(async move { lookup_loop(store, bans, n, seed, task_stats) });
    tokio::time::sleep(LOOKUP_WARMUP).await;
    let snap = |s: &LookupStats| {
        (
            s.lookups.load(Ordering::Relaxed),
            s.hits.load(Ordering::Relaxed),
            s.banned.load(Ordering::Relaxed),
        )
    };
    let (l0, h0, b0) = snap(&stats);
    let t0 = Instant::now();
    let out = during.await;
    let elapsed = t0.elapsed();
    let (l1, h1, b1) = snap(&stats);
    stats.stop.store(true, Ordering::Relaxed);
    task.await.expect("lookup task panicked");
    let window = Window {
        elapsed,
        lookups: l1 - l0,
        hits: h1 - h0,
        banned: b1 - b0,
    };
    (out, window)
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} us")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.3} s", us / 1e6)
    }
}

fn main() -> ExitCode {
    let n = match parse_args() {
        Ok(Some(n)) => n,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut ok = true;

    // 1. Fill.
    eprintln!("filling the store with {n} objects ...");
    let store = Store::new(BUDGET, MAX_VARIANTS);
    let t = Instant::now();
    fill(&store, n);
    let entries = store.entry_count();
    let fill_time = t.elapsed();
    let stored_bytes = store.stored_bytes();
    let rss_filled = proc_status_kib("VmRSS:");
    eprintln!(
        "fill: {} for {entries} entries ({:.0} inserts/s), VmRSS {}",
        fmt_dur(fill_time),
        n as f64 / fill_time.as_secs_f64(),
        mib(rss_filled)
    );
    if entries != n {
        eprintln!("warning: {entries} entries stored, expected {n}");
        ok = false;
    }

    // 2. Key purges: k42, then 99 keys ending in 07, so only k42's objects
    //    are also in the 1% ban below.
    let tags: Vec<u64> = std::iter::once(42)
        .chain((1..PURGES as u64).map(|j| (j * 1000 + 7) % TAGS))
        .collect();
    let mut purge_times = Vec::with_capacity(tags.len());
    let mut purged_objects = 0;
    let mut first_purge = (Duration::ZERO, 0);
    for (j, &tag) in tags.iter().enumerate() {
        // Objects i < n with i % TAGS == tag.
        let expected = if tag < n {
            ((n - 1 - tag) / TAGS + 1) as usize
        } else {
            0
        };
        let name = format!("k{tag}");
        let t = Instant::now();
        let count = store.purge_tag(&name, PurgeMode::Hard);
        let d = t.elapsed();
        if count != expected {
            eprintln!("warning: purge of {name} removed {count} objects, expected {expected}");
            ok = false;
        }
        if j == 0 {
            first_purge = (d, count);
        }
        purged_objects += count;
        purge_times.push(d);
    }
    purge_times.sort();
    let pct = |p: f64| {
        let rank = ((p * purge_times.len() as f64).ceil() as usize).max(1);
        purge_times[rank - 1]
    };
    let (purge_p50, purge_p99, purge_max) = (pct(0.50), pct(0.99), pct(1.0));
    eprintln!(
        "purge k42: {} ({} objects); {} keys, {purged_objects} objects: median {}, p99 {}, max {}",
        fmt_dur(first_purge.0),
        first_purge.1,
        purge_times.len(),
        fmt_dur(purge_p50),
        fmt_dur(purge_p99),
        fmt_dur(purge_max)
    );
    let remaining = store.entry_count();

    // 3. Ban 1%, one lurker walk, lookups alongside.
    let banned_expected = (0..n)
        .filter(|i| i % 100 == 42 && !tags.contains(&(i % TAGS)))
        .count();
    let bans = Arc::new(BanList::new());
    let expr = BanExpr::parse(BAN).expect("ban expression parses");
    eprintln!("ban {BAN} ({banned_expected} objects) and one lurker walk, with lookups ...");
    let (walk, during) = rt.block_on(with_lookups(&store, &bans, n, 1, async {
        bans.add(expr, BanLimits::default())
            .expect("one ban fits the default limits");
        let (store, bans) = (store.clone(), bans.clone());
        let t = Instant::now();
        let walk = tokio::spawn(async move { lurker::walk(&store, &bans, LURKER_BATCH).await })
            .await
            .expect("lurker walk panicked");
        (walk, t.elapsed())
    }));
    let (walk, walk_time) = walk;
    let removed_total = walk.removed + during.banned as usize;
    eprintln!(
        "walk: {} checked {}, removed {} (+{} by lookups), pruned {}, bans left {}; \
         {:.0} lookups/s during the walk",
        fmt_dur(walk_time),
        walk.checked,
        walk.removed,
        during.banned,
        walk.pruned,
        bans.len(),
        during.rate()
    );
    if removed_total != banned_expected || walk.pruned != 1 || !bans.is_empty() {
        eprintln!(
            "warning: expected {banned_expected} objects removed and 1 ban pruned, \
             got {removed_total} and {}",
            walk.pruned
        );
        ok = false;
    }
    let after_ban = store.entry_count();

    // What the walk's snapshot (`Store::objects`) costs on its own.
    let t = Instant::now();
    let snapshot_count = store.objects().count();
    let snapshot_time = t.elapsed();
    eprintln!(
        "store.objects() alone: {} for {snapshot_count} objects",
        fmt_dur(snapshot_time)
    );

    // The same kind of walk with nothing else running: a second 1% ban.
    let alone_expected = (0..n).filter(|i| i % 100 == 43).count();
    eprintln!("ban {BAN_ALONE} ({alone_expected} objects) and one lurker walk, no lookups ...");
    let (alone, alone_time) = rt.block_on(async {
        bans.add(
            BanExpr::parse(BAN_ALONE).expect("ban expression parses"),
            BanLimits::default(),
        )
        .expect("one ban fits the default limits");
        let (store, bans) = (store.clone(), bans.clone());
        let t = Instant::now();
        let walk = tokio::spawn(async move { lurker::walk(&store, &bans, LURKER_BATCH).await })
            .await
            .expect("lurker walk panicked");
        (walk, t.elapsed())
    });
    eprintln!(
        "walk alone: {} checked {}, removed {}, pruned {}",
        fmt_dur(alone_time),
        alone.checked,
        alone.removed,
        alone.pruned
    );
    if alone.removed != alone_expected || alone.pruned != 1 || !bans.is_empty() {
        eprintln!(
            "warning: expected {alone_expected} objects removed and 1 ban pruned, got {} and {}",
            alone.removed, alone.pruned
        );
        ok = false;
    }

    // Baseline: the same lookup task, no ban in force, as long as the walk took.
    eprintln!(
        "baseline: lookups with no ban for {} ...",
        fmt_dur(walk_time)
    );
    let ((), baseline) = rt.block_on(with_lookups(&store, &bans, n, 2, async {
        tokio::time::sleep(walk_time).await
    }));
    let rss_end = proc_status_kib("VmRSS:");
    let hwm = proc_status_kib("VmHWM:");

    // 4. Summary.
    let ratio = during.rate() / baseline.rate();
    println!();
    println!("invalidation bench: {n} objects, 2 tokio workers");
    println!("{:-<72}", "");
    let row = |what: &str, value: String| println!("{what:<44} {value:>27}");
    row("fill: time", fmt_dur(fill_time));
    row(
        "fill: inserts/s",
        format!("{:.0}", n as f64 / fill_time.as_secs_f64()),
    );
    row("fill: entry_count", entries.to_string());
    row(
        "fill: weighed bytes (budget)",
        format!("{:.1} MiB", stored_bytes as f64 / (1 << 20) as f64),
    );
    row("fill: VmRSS", mib(rss_filled));
    row(
        "purge k42 (hard): time",
        format!("{} ({} objects)", fmt_dur(first_purge.0), first_purge.1),
    );
    row(
        &format!("purge, {} keys: median", purge_times.len()),
        fmt_dur(purge_p50),
    );
    row(
        &format!("purge, {} keys: p99", purge_times.len()),
        fmt_dur(purge_p99),
    );
    row(
        &format!("purge, {} keys: max", purge_times.len()),
        fmt_dur(purge_max),
    );
    row("entries after purges", remaining.to_string());
    row(
        "ban 1%: lurker walk time (with lookups)",
        fmt_dur(walk_time),
    );
    row(
        "ban 1%: objects checked / s",
        format!("{:.0}", walk.checked as f64 / walk_time.as_secs_f64()),
    );
    row("ban 1%: checked", walk.checked.to_string());
    row(
        "ban 1%: removed by lurker (+ by lookups)",
        format!("{} (+{})", walk.removed, during.banned),
    );
    row("ban 1%: expected removed", banned_expected.to_string());
    row("ban 1%: bans pruned", walk.pruned.to_string());
    row("entries after ban", after_ban.to_string());
    row(
        "store.objects() snapshot alone",
        format!("{} ({snapshot_count} objects)", fmt_dur(snapshot_time)),
    );
    row("2nd 1% ban, no lookups: walk time", fmt_dur(alone_time));
    row(
        "2nd 1% ban, no lookups: checked / removed",
        format!("{} / {}", alone.checked, alone.removed),
    );
    row(
        "lookups/s during walk",
        format!(
            "{:.0} ({} in {})",
            during.rate(),
            during.lookups,
            fmt_dur(during.elapsed)
        ),
    );
    row(
        "lookups/s no ban (baseline)",
        format!(
            "{:.0} ({} in {})",
            baseline.rate(),
            baseline.lookups,
            fmt_dur(baseline.elapsed)
        ),
    );
    row("during walk / baseline", format!("{ratio:.2}x"));
    row(
        "hit share during walk / baseline",
        format!(
            "{:.1}% / {:.1}%",
            100.0 * during.hits as f64 / during.lookups.max(1) as f64,
            100.0 * baseline.hits as f64 / baseline.lookups.max(1) as f64
        ),
    );
    row("VmRSS at end", mib(rss_end));
    row("VmHWM (peak RSS)", mib(hwm));

    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("some checks failed (see warnings above)");
        ExitCode::FAILURE
    }
}
