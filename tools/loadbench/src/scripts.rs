//! The wrk Lua scripts of the scripted scenarios (`range-1MiB`, `mix-90-10`,
//! `zipf`, `scale-out`).

use std::fs;
use std::path::Path;

/// `mix-90-10`: hot URLs `/obj/hot-1` ..= `/obj/hot-MIX_HOT_URLS`, warmed first.
pub(crate) const MIX_HOT_URLS: u32 = 100;
/// `mix-90-10`: every MIX_MISS_EVERY-th request of each wrk thread is a miss.
pub(crate) const MIX_MISS_EVERY: u32 = 10;
/// `scale-out`: distinct cacheable URLs `/obj/so-0` .. `/obj/so-(N-1)`.
pub(crate) const SCALE_OUT_URLS: u32 = 1000;

/// `range-1MiB`: range size and how many ranges cover the object.
pub(crate) const RANGE_SIZE: u64 = 64 << 10;
pub(crate) const RANGES: u64 = 16;

/// `zipf`: distinct cacheable URLs `/zipf/0` .. `/zipf/(N-1)`, ten times
/// what the scenario's storage budget holds (1 KiB bodies, 100 MiB).
pub(crate) const ZIPF_KEYS: u64 = 1_000_000;
/// `zipf`: the exponent s of the popularity curve, P(rank k) ∝ 1/k^s. Web
/// and CDN traces measure s between about 0.6 and 1.0; 1.0 (the classic Zipf
/// law) is the usual figure for web-cache studies.
pub(crate) const ZIPF_EXPONENT: f64 = 1.0;

pub(crate) const MIX_SCRIPT: &str = "mix-90-10.lua";
pub(crate) const ZIPF_SCRIPT: &str = "zipf.lua";
pub(crate) const RANGE_SCRIPT: &str = "range-64KiB.lua";
pub(crate) const SCALE_OUT_SCRIPT: &str = "scale-out.lua";
/// `--pace`: the script of the scenarios that have none of their own.
pub(crate) const PACE_SCRIPT: &str = "pace.lua";

/// Shared head of the scripts: each wrk thread gets an `id` (0, 1, ...) and
/// seeds its random numbers with it.
pub(crate) const SCRIPT_THREAD_IDS: &str = "\
local threads = 0

function setup(thread)
   thread:set(\"id\", threads)
   threads = threads + 1
end
";

/// `mix-90-10`: every `MIX_MISS_EVERY`-th request of each wrk thread is for a
/// URL never requested before (`/obj/miss-TAG-THREAD-N`, TAG being the
/// script argument, new for every wrk run); the others are for one of the
/// `MIX_HOT_URLS` warmed URLs `/obj/hot-K`, picked at random.
pub(crate) fn mix_script() -> String {
    format!(
        "\
-- mix-90-10, written by benches/load.rs: 1 request in {MIX_MISS_EVERY} is a miss.
{SCRIPT_THREAD_IDS}
local counter = 0
local miss_prefix

function init(args)
   miss_prefix = \"/obj/miss-\" .. (args[1] or tostring(os.time())) .. \"-\" .. id .. \"-\"
   math.randomseed(id + 1)
end

function request()
   counter = counter + 1
   if counter % {MIX_MISS_EVERY} == 0 then
      return wrk.format(\"GET\", miss_prefix .. counter)
   end
   return wrk.format(\"GET\", \"/obj/hot-\" .. math.random({MIX_HOT_URLS}))
end
"
    )
}

/// `scale-out`: each request is for one of `SCALE_OUT_URLS` URLs
/// `/obj/so-K`, picked at random.
pub(crate) fn scale_out_script() -> String {
    format!(
        "\
-- scale-out, written by benches/load.rs: {SCALE_OUT_URLS} distinct URLs, random order.
{SCRIPT_THREAD_IDS}
function init(args)
   math.randomseed(id + 1)
end

function request()
   return wrk.format(\"GET\", \"/obj/so-\" .. math.random(0, {last}))
end
",
        last = SCALE_OUT_URLS - 1
    )
}

/// `zipf`: each request is for `/zipf/K`, K = rank - 1, the rank drawn from
/// a Zipf distribution (exponent `ZIPF_EXPONENT`) over `ZIPF_KEYS` ranks.
/// Each wrk thread computes the cumulative distribution once, in `init`,
/// and draws by binary search on it (20 steps for a million keys). The seed
/// is the script argument (the run's phase, so the warm-up and the measured
/// run draw different streams) and the thread's id: every server is sent
/// the same request streams.
pub(crate) fn zipf_script() -> String {
    format!(
        "\
-- zipf, written by benches/load.rs: Zipf (s = {ZIPF_EXPONENT:?}) over {ZIPF_KEYS} URLs.
{SCRIPT_THREAD_IDS}
local keys = {ZIPF_KEYS}
local cdf = {{}}
local total = 0

function init(args)
   for k = 1, keys do
      total = total + k ^ -{ZIPF_EXPONENT:?}
      cdf[k] = total
   end
   math.randomseed((tonumber(args[1]) or 0) * 1000 + id + 1)
end

function request()
   local u = math.random() * total
   local lo, hi = 1, keys
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then
         lo = mid + 1
      else
         hi = mid
      end
   end
   return wrk.format(\"GET\", \"/zipf/\" .. (lo - 1))
end
"
    )
}

/// `range-1MiB`: each wrk thread asks for the object's `RANGES` ranges of
/// `RANGE_SIZE` bytes in turn, starting at a range of its own.
pub(crate) fn range_script() -> String {
    format!(
        "\
-- range-1MiB, written by benches/load.rs: {RANGES} ranges of {RANGE_SIZE} bytes in turn.
{SCRIPT_THREAD_IDS}
local counter = 0

function init(args)
   counter = id
end

function request()
   local k = counter % {RANGES}
   counter = counter + 1
   local first = k * {RANGE_SIZE}
   local range = \"bytes=\" .. first .. \"-\" .. (first + {RANGE_SIZE} - 1)
   return wrk.format(\"GET\", nil, {{[\"Range\"] = range}})
end
"
    )
}

/// `--pace MS`: wrk waits MS milliseconds before each request a
/// connection sends after its first (the time waited is not in the
/// latency wrk records).
fn pace_function(ms: u32) -> String {
    format!("\nfunction delay()\n   return {ms}\nend\n")
}

/// Writes the scenarios' scripts into `dir`; with `pace_ms`, each ends
/// with the pacing `delay()`, and [`PACE_SCRIPT`] holds it alone.
pub(crate) fn write_scripts(dir: &Path, pace_ms: Option<u32>) -> Result<(), String> {
    let pace = pace_ms.map(pace_function).unwrap_or_default();
    for (name, text) in [
        (MIX_SCRIPT, mix_script()),
        (RANGE_SCRIPT, range_script()),
        (SCALE_OUT_SCRIPT, scale_out_script()),
        (ZIPF_SCRIPT, zipf_script()),
        (
            PACE_SCRIPT,
            "-- --pace, written by benches/load.rs\n".to_owned(),
        ),
    ] {
        let path = dir.join(name);
        fs::write(&path, text + &pace).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_script_draws_over_the_key_space() {
        let lua = zipf_script();
        assert!(lua.contains("local keys = 1000000\n"), "{lua}");
        assert!(lua.contains("total = total + k ^ -1.0\n"), "{lua}");
        // Ranks 1..=keys are URLs 0..keys, what the origin serves.
        assert!(lua.contains("\"/zipf/\" .. (lo - 1)"), "{lua}");
        // Seeded by the run's phase and the thread.
        assert!(lua.contains("math.randomseed((tonumber(args[1]) or 0) * 1000 + id + 1)"));
        assert!(lua.starts_with("-- zipf,") && lua.contains("function setup(thread)"));
        // Balanced braces: no `{{` left over from format!.
        assert!(!lua.contains("{{") && lua.contains("local cdf = {}"));
    }

    #[test]
    fn all_scripts_written() {
        let dir = crate::process::TempDir::new("scripts-test").unwrap();
        write_scripts(&dir.0, None).unwrap();
        for name in [MIX_SCRIPT, RANGE_SCRIPT, SCALE_OUT_SCRIPT, ZIPF_SCRIPT] {
            let text = std::fs::read_to_string(dir.0.join(name)).unwrap();
            assert!(text.contains("function request()"), "{name}");
            assert!(!text.contains("function delay()"), "{name}");
        }
    }

    #[test]
    fn paced_scripts_end_with_the_delay() {
        let dir = crate::process::TempDir::new("scripts-pace-test").unwrap();
        write_scripts(&dir.0, Some(25)).unwrap();
        for name in [
            MIX_SCRIPT,
            RANGE_SCRIPT,
            SCALE_OUT_SCRIPT,
            ZIPF_SCRIPT,
            PACE_SCRIPT,
        ] {
            let text = std::fs::read_to_string(dir.0.join(name)).unwrap();
            assert!(
                text.ends_with("\nfunction delay()\n   return 25\nend\n"),
                "{name}: {text}"
            );
        }
    }

    /// Ten times the budget: the scenario's point.
    #[test]
    fn zipf_key_space_is_ten_budgets() {
        let bodies = ZIPF_KEYS * crate::origin::OBJ_SIZE as u64;
        let budget = crate::scenarios::ZIPF_STORAGE_MIB << 20;
        assert!((9..=11).contains(&(bodies / budget)), "{bodies} / {budget}");
    }
}
