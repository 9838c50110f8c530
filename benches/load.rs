//! `cargo bench --bench load [-- OPTIONS]`: the load benchmark. Its code is the
//! `loadbench` tool crate (tools/loadbench/, also runnable as `cargo run -p
//! loadbench --release`); this runs it against the lacquer binary cargo built
//! for the bench, in the release profile. See benches/README.md.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    loadbench::main(
        std::env::args_os(),
        PathBuf::from(env!("CARGO_BIN_EXE_lacquer")),
    )
}
