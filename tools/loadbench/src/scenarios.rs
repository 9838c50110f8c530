//! The scenarios and the servers under test.

use std::fmt;

use crate::origin::{ESI_GZIP_PAGE_PATH, ESI_PAGE_PATH};
use crate::proxies::STORAGE_MIB;

/// `scale-out`: wrk connections unless `--connections` overrides it.
pub(crate) const SCALE_OUT_CONNECTIONS: u32 = 256;

/// How a scenario generates its requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Load {
    /// Every request is for `path`; warmed first if `hit`.
    Url,
    /// Every request is for the ESI page at `path`; page and fragments are warmed.
    Esi,
    /// `Esi` with `Accept-Encoding: gzip`: the page is sent gzip'd.
    EsiGzip,
    /// A wrk Lua script: 90% hot URLs (warmed), 10% URLs never seen before.
    Mix,
    /// `path` (warmed) in 64 KiB ranges, one after the other (a wrk Lua script).
    Ranges,
    /// `path` (warmed) with `Accept-Encoding: gzip`; the origin sends it uncoded.
    Gzip,
    /// Not run per server: HAProxy in front of one, then two lacquer nodes.
    ScaleOut,
    /// A wrk Lua script drawing `/zipf/K` from a Zipf distribution over a key
    /// space ten times the cache budget; the warm-up run fills the cache.
    Zipf,
}

#[derive(PartialEq)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// The URL path given to wrk. Scripted loads (`Mix`, `ScaleOut`) replace it
    /// with their own paths.
    pub(crate) path: &'static str,
    /// Cacheable: warmed before the run, and should not reach the origin during it.
    pub(crate) hit: bool,
    /// wrk connections unless `--connections` overrides it.
    pub(crate) connections: u32,
    pub(crate) load: Load,
    /// Storage budget of every proxy for this scenario, in MiB. Scenarios
    /// with a budget other than [`STORAGE_MIB`] get server instances of
    /// their own (see `run::bench_server`).
    pub(crate) storage_mib: u64,
}

/// `zipf`: the storage budget, a tenth of the key space's bodies
/// (`ZIPF_KEYS` × `ZIPF_OBJ_SIZE` = 1,000,000 KiB ≈ 977 MiB).
pub(crate) const ZIPF_STORAGE_MIB: u64 = 100;

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hit-1KiB",
        path: "/bytes/1024",
        hit: true,
        connections: 256,
        load: Load::Url,
        storage_mib: STORAGE_MIB,
    },
    Scenario {
        name: "hit-16KiB",
        path: "/bytes/16384",
        hit: true,
        connections: 256,
        load: Load::Url,
        storage_mib: STORAGE_MIB,
    },
    // 64 connections are plenty to saturate loopback with 1 MiB bodies; 256 of
    // them only inflates latency (and risks wrk's 2 s timeout) without adding
    // throughput.
    Scenario {
        name: "hit-1MiB",
        path: "/bytes/1048576",
        hit: true,
        connections: 64,
        load: Load::Url,
        storage_mib: STORAGE_MIB,
    },
    // A video player or download manager: 16 ranges of 64 KiB, in turn.
    Scenario {
        name: "range-1MiB",
        path: "/bytes/1048576",
        hit: true,
        connections: 64,
        load: Load::Ranges,
        storage_mib: STORAGE_MIB,
    },
    // Compressible text the origin sends uncoded, for clients that accept
    // gzip: each proxy compresses (lacquer and Varnish once, when storing;
    // nginx at every response).
    Scenario {
        name: "gzip-16KiB",
        path: "/text/16384",
        hit: true,
        connections: 256,
        load: Load::Gzip,
        storage_mib: STORAGE_MIB,
    },
    Scenario {
        name: "pass-1KiB",
        path: "/pass/1024",
        hit: false,
        connections: 256,
        load: Load::Url,
        storage_mib: STORAGE_MIB,
    },
    Scenario {
        name: "esi",
        path: ESI_PAGE_PATH,
        hit: true,
        connections: 256,
        load: Load::Esi,
        storage_mib: STORAGE_MIB,
    },
    // The ESI page for clients that accept gzip: lacquer gzips the page
    // as it is assembled, at each delivery; Varnish stores it gzip'd
    // (do_gzip, for this URL only) and compresses the fragments into it.
    Scenario {
        name: "esi-gzip",
        path: ESI_GZIP_PAGE_PATH,
        hit: true,
        connections: 256,
        load: Load::EsiGzip,
        storage_mib: STORAGE_MIB,
    },
    Scenario {
        name: "mix-90-10",
        path: "/obj/hot-1",
        hit: true,
        connections: 256,
        load: Load::Mix,
        storage_mib: STORAGE_MIB,
    },
    // Hit ratio when the cache is ten times smaller than the working set:
    // eviction and admission policy, on a web-like popularity curve.
    Scenario {
        name: "zipf",
        path: "/zipf/0",
        hit: false,
        connections: 256,
        load: Load::Zipf,
        storage_mib: ZIPF_STORAGE_MIB,
    },
    Scenario {
        name: "scale-out",
        path: "/obj/so-0",
        hit: true,
        connections: SCALE_OUT_CONNECTIONS,
        load: Load::ScaleOut,
        storage_mib: STORAGE_MIB,
    },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ServerKind {
    Lacquer,
    Varnish,
    Nginx,
    /// lacquer running the bench's Varnish VCL (`proxies::varnish_vcl`):
    /// Varnish's built-in VCL plus two lines for ESI and gzip, so it and
    /// `varnish` run the same policy.
    LacquerBuiltin,
    /// lacquer running `vcl-lite/benches/production.vcl` (~300 lines).
    LacquerPolicy,
    /// Varnish running `vcl-lite/benches/production.vcl`.
    VarnishPolicy,
}

/// The servers run when `--only` is not given.
pub(crate) const DEFAULT_SERVERS: [ServerKind; 3] =
    [ServerKind::Lacquer, ServerKind::Varnish, ServerKind::Nginx];

/// Every server `--only` accepts.
pub(crate) const EVERY_SERVER: [ServerKind; 6] = [
    ServerKind::Lacquer,
    ServerKind::Varnish,
    ServerKind::Nginx,
    ServerKind::LacquerBuiltin,
    ServerKind::LacquerPolicy,
    ServerKind::VarnishPolicy,
];

/// The ratios the report prints, `a/b`, for each scenario both ran: lacquer
/// against the others, and what a policy costs each server.
pub(crate) const RATIOS: [(ServerKind, ServerKind); 7] = [
    (ServerKind::Lacquer, ServerKind::Varnish),
    (ServerKind::Lacquer, ServerKind::Nginx),
    (ServerKind::LacquerBuiltin, ServerKind::Varnish),
    (ServerKind::LacquerPolicy, ServerKind::VarnishPolicy),
    (ServerKind::LacquerBuiltin, ServerKind::Lacquer),
    (ServerKind::LacquerPolicy, ServerKind::Lacquer),
    (ServerKind::VarnishPolicy, ServerKind::Varnish),
];

impl ServerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Lacquer => "lacquer",
            ServerKind::Varnish => "varnish",
            ServerKind::Nginx => "nginx",
            ServerKind::LacquerBuiltin => "lacquer-builtin",
            ServerKind::LacquerPolicy => "lacquer-policy",
            ServerKind::VarnishPolicy => "varnish-policy",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        EVERY_SERVER
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// Why this server cannot run scenarios of this kind, if it cannot.
    pub(crate) fn unsupported(self, load: Load) -> Option<&'static str> {
        match (self, load) {
            (ServerKind::Nginx, Load::Esi | Load::EsiGzip) => Some("nginx has no ESI"),
            _ => None,
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
