//! lacquer: a caching HTTP accelerator with ESI assembly.
//!
//! The request lifecycle (recv → hash → lookup → fetch → backend response →
//! deliver) lives in [`pipeline`]; see `docs/LIFECYCLE.md`.
pub mod admin_client;
pub mod background;
pub mod body;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod esi;
pub mod fetch;
pub mod h1;
pub mod http;
pub mod invalidate;
pub mod lifecycle;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod server;
