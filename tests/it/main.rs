//! lacquer's integration tests: one test crate, so one binary to link
//! (Cargo.toml sets `autotests = false` and names this file as the `it`
//! test). Run them all with `cargo test --test it`, one topic with
//! `cargo test --test it expiration::`.
//!
//! To add tests: write `tests/it/<topic>.rs` (start it with a `//!` line on
//! what it covers, then `use crate::common::*;` for the in-process helpers
//! or `use crate::process::*;` for the real binary), and declare it below
//! with `mod <topic>;`. A `tests/<topic>.rs` file outside this directory
//! would not be built at all; `layout::` fails when there is one, or when a
//! file here is not declared.
//!
//! Every test here runs in the same process, at the same time as others
//! (libtest threads): a test that measures the whole process (its resident
//! memory) runs itself in a child process (`common::in_own_process`), and
//! none changes process-wide state (limits, environment, working directory)
//! of this process; tests that need such changes start the real binary
//! (`process::`) under them.

// Shared helpers.
mod common;
mod poll;
mod process;

// Test modules, one per topic.
mod access_log;
mod adversarial_s15;
mod adversarial_s16;
mod adversarial_s17;
mod adversarial_s20;
mod backend_answers;
mod backend_wire;
mod backend_wire_edges;
mod bad_input;
mod ban;
mod ban_limits;
mod cli;
mod cluster;
mod coalescing;
mod compression;
mod conformance;
mod deliver_removals;
mod directors;
mod drain;
mod esi;
mod esi_memory;
mod expiration;
mod failures;
#[cfg(target_os = "linux")]
mod file_descriptors;
mod grace;
mod haproxy;
mod head;
mod hit_heads;
mod invalidation_paths;
mod large_bodies;
mod layout;
mod lifecycle;
mod module_graph;
mod outcome;
mod parity;
mod policy;
mod policy_examples;
mod policy_files;
mod policy_hooks;
mod proxy_trust;
mod proxying;
mod purge;
mod ranges;
mod reload_signal;
mod rfc_defaults;
mod services;
mod smoke;
mod storage;
mod surrogate_keys;
mod uploads;
mod validation;
mod vcl_backends;
mod vcl_directors;
mod vcl_functions;
mod vcl_vmods;
mod websocket;
