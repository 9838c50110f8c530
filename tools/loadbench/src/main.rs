//! `cargo run -p loadbench --release -- [OPTIONS]`: the load benchmark as a
//! command. It runs the lacquer binary beside its own
//! (`target/release/lacquer`, from `cargo build --release`) unless
//! `LACQUER_BIN` names another. `cargo bench --bench load` builds both.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("lacquer")))
        .unwrap_or_else(|| PathBuf::from("lacquer"));
    loadbench::main(std::env::args_os(), beside)
}
