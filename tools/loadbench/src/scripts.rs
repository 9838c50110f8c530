//! The wrk Lua scripts of the scripted scenarios (`mix-90-10`, `scale-out`).

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

pub(crate) const MIX_SCRIPT: &str = "mix-90-10.lua";
pub(crate) const RANGE_SCRIPT: &str = "range-64KiB.lua";
pub(crate) const SCALE_OUT_SCRIPT: &str = "scale-out.lua";

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

pub(crate) fn write_scripts(dir: &Path) -> Result<(), String> {
    for (name, text) in [
        (MIX_SCRIPT, mix_script()),
        (RANGE_SCRIPT, range_script()),
        (SCALE_OUT_SCRIPT, scale_out_script()),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}
