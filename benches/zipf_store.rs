//! Hit ratio of lacquer's `Store` alone on the load bench's `zipf` trace:
//! Zipf (s = 1.0) over 1,000,000 URLs of 1 KiB, a 100 MiB budget. No
//! network and one thread: the eviction and admission policy (moka) and the
//! per-object charge, without the proxy around them.
//!
//! Run with `cargo bench --bench zipf_store [-- --budget MIB --requests N]`;
//! see `benches/README.md`. Each request is a `Store::lookup`; a miss
//! stores the object the bench origin would have sent. The hit ratio is
//! printed per window of requests (the first window fills the cache), next
//! to what an LRU cache of as many objects would get (Che's approximation)
//! and the best a cache of that size can do (always the most popular keys).

use std::env;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST};
use http::{HeaderMap, StatusCode};

use lacquer::cache::freshness::Freshness;
use lacquer::cache::object::{KeySpec, Provenance};
use lacquer::cache::vary::Variant;
use lacquer::cache::{CacheKey, CachedObject, Found, Store};

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

/// Same allocator as the `lacquer` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What tools/loadbench uses for `zipf` (`ZIPF_KEYS`, `ZIPF_EXPONENT`,
/// `OBJ_SIZE`, `ZIPF_STORAGE_MIB`).
const KEYS: usize = 1_000_000;
const EXPONENT: f64 = 1.0;
const BODY_LEN: usize = 1024;
const DEFAULT_BUDGET_MIB: u64 = 100;
const DEFAULT_REQUESTS: u64 = 10_000_000;
/// Ends of the windows the hit ratio is reported for, while below `--requests`.
const WINDOWS: [u64; 5] = [700_000, 1_500_000, 3_000_000, 10_000_000, 30_000_000];
const HOST_NAME: &str = "127.0.0.1:8080";
/// The config default.
const MAX_VARIANTS: usize = 32;

const USAGE: &str = "\
usage: cargo bench --bench zipf_store [-- OPTIONS]

options:
  --budget MIB    storage budget (default 100, as the load bench's zipf)
  --requests N    requests in all (default 10000000)
  -h, --help      this text
";

struct Args {
    budget_mib: u64,
    requests: u64,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut out = Args {
        budget_mib: DEFAULT_BUDGET_MIB,
        requests: DEFAULT_REQUESTS,
    };
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<u64, String> {
            let v = inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))?;
            v.replace('_', "")
                .parse()
                .ok()
                .filter(|&n: &u64| n > 0 && n <= 1 << 40)
                .ok_or_else(|| format!("{name}: not a positive integer: {v:?}"))
        };
        match flag.as_str() {
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            "-h" | "--help" => return Ok(None),
            "--budget" => out.budget_mib = value("--budget")?,
            "--requests" => out.requests = value("--requests")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(out))
}

/// The probability of each rank, most popular first.
fn zipf_probabilities() -> Vec<f64> {
    let weights: Vec<f64> = (1..=KEYS).map(|k| (k as f64).powf(-EXPONENT)).collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// Hit ratio of an LRU cache of `objects` under independent requests with
/// probabilities `p` (Che's approximation: the characteristic time T with
/// Σ 1 − e^(−pᵢT) = objects, then Σ pᵢ(1 − e^(−pᵢT))).
fn lru_model(p: &[f64], objects: f64) -> f64 {
    let occupancy = |t: f64| p.iter().map(|q| 1.0 - (-q * t).exp()).sum::<f64>();
    let (mut lo, mut hi) = (1.0f64, 1e12f64);
    for _ in 0..60 {
        let mid = (lo * hi).sqrt();
        if occupancy(mid) < objects {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = (lo * hi).sqrt();
    p.iter().map(|q| q * (1.0 - (-q * t).exp())).sum()
}

/// The object the bench origin sends for `/zipf/K`.
fn origin_object(url: &str, body: &Bytes, keys: &KeySpec) -> CachedObject {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    headers.insert(ETAG, HeaderValue::from_static("\"zipf-1024\""));
    let freshness = Freshness {
        ttl: Duration::from_secs(3600),
        ..Freshness::unstored(SystemTime::now())
    };
    CachedObject::new(
        StatusCode::OK,
        headers,
        body.clone(),
        freshness,
        Variant::default(),
        keys,
        Provenance {
            url: url.into(),
            host: HOST_NAME.into(),
            ban_stamp: 0,
        },
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let p = zipf_probabilities();
    let mut cdf = Vec::with_capacity(KEYS);
    let mut sum = 0.0;
    for q in &p {
        sum += q;
        cdf.push(sum);
    }
    let store = Store::new(args.budget_mib << 20, MAX_VARIANTS);
    let keys = KeySpec::default();
    let body = Bytes::from(vec![b'x'; BODY_LEN]);
    let mut req = HeaderMap::new();
    req.insert(HOST, HeaderValue::from_static(HOST_NAME));
    let mut rng = Rng(1);
    let mut url = String::with_capacity(16);

    println!(
        "zipf_store: {KEYS} keys of {BODY_LEN} bytes, Zipf s = {EXPONENT:?}, budget {} MiB, one thread",
        args.budget_mib
    );
    println!(
        "{:>10} | {:>7} | {:>8} | {:>10} | {:>9} | {:>6} | {:>7}",
        "requests", "hit %", "objects", "charged", "each", "LRU %", "best %"
    );
    let mut ends: Vec<u64> = WINDOWS
        .iter()
        .copied()
        .filter(|&w| w < args.requests)
        .collect();
    ends.push(args.requests);
    let started = Instant::now();
    let mut done = 0u64;
    for end in ends {
        let from = done;
        let mut hits = 0u64;
        while done < end {
            let u = rng.unit() * sum;
            let rank = cdf.partition_point(|&c| c < u).min(KEYS - 1);
            url.clear();
            url.push_str("/zipf/");
            url.push_str(&rank.to_string());
            let key = CacheKey::for_request(HOST_NAME, &url);
            if let Found::Object(_) = store.lookup(&key, &req) {
                hits += 1;
            } else {
                store.insert(key, Arc::new(origin_object(&url, &body, &keys)));
            }
            done += 1;
        }
        let objects = store.entry_count();
        let charged = store.stored_bytes();
        let best: f64 = p[..(objects as usize).min(KEYS)].iter().sum();
        println!(
            "{:>10} | {:>6.1}% | {:>8} | {:>6.1} MiB | {:>7} B | {:>5.1}% | {:>6.1}%",
            end,
            hits as f64 / (end - from) as f64 * 100.0,
            objects,
            charged as f64 / (1024.0 * 1024.0),
            charged.checked_div(objects).unwrap_or(0),
            lru_model(&p, objects as f64) * 100.0,
            best * 100.0
        );
    }
    println!(
        "hit % is over the requests since the line above; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
