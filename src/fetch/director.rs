//! Directors: which backend a request goes to — round-robin, random, or by
//! hash of the URL (or a header) — skipping sick backends.

use crate::http::req_fields::FieldsRead;
use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::pool::Backend;
use crate::background::Background;
use crate::config::{Config, DirectorKind, ProbeConfig};

/// The backends and how to choose among them.
pub struct Director {
    kind: DirectorKind,
    hash_header: Option<http::HeaderName>,
    backends: Vec<Arc<Backend>>,
    /// Each backend's probe settings, in the order of `backends`.
    probes: Vec<Option<ProbeConfig>>,
    next: AtomicUsize,
    hasher: BuildHasherDefault<DefaultHasher>,
}

impl Director {
    /// Builds the backends of `config`. Nothing runs until the server
    /// starts their [`background`](Director::background) work.
    pub fn new(config: &Config) -> Director {
        let backends = config.backend.iter().map(Backend::new).collect();
        let probes = config.backend.iter().map(|b| b.probe.clone()).collect();
        Director {
            kind: config.director.kind,
            hash_header: config
                .director
                .hash_header
                .as_deref()
                .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
            backends,
            probes,
            next: AtomicUsize::new(0),
            // Unseeded: every node, and every restart, maps a key to the same
            // backend.
            hasher: BuildHasherDefault::default(),
        }
    }

    /// The backends' background work: each one's idle-connection reaper,
    /// and its health probe when it has one. Each ends by itself once its
    /// backend is dropped.
    pub fn background(&self) -> Vec<Background> {
        let mut out = Vec::new();
        for (backend, probe) in self.backends.iter().zip(&self.probes) {
            out.push(Background::new(
                format!("reaper {}", backend.name()),
                backend.reaper(),
            ));
            if let Some(probe) = probe {
                out.push(Background::new(
                    format!("probe {}", backend.name()),
                    super::probe::run(Arc::downgrade(backend), probe.clone()),
                ));
            }
        }
        out
    }

    /// Every backend, healthy or not.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The backend for a request with this URL and headers, or `None` when
    /// all are sick.
    pub fn pick(&self, url: &str, headers: &impl FieldsRead) -> Option<Arc<Backend>> {
        if let [only] = self.backends.as_slice() {
            return only.is_healthy().then(|| only.clone());
        }
        match self.kind {
            DirectorKind::RoundRobin => self.in_turn(self.next.fetch_add(1, Ordering::Relaxed)),
            DirectorKind::Random => self.in_turn(random()),
            DirectorKind::First => {
                let first = self.backends.first()?;
                first.is_healthy().then(|| first.clone())
            }
            DirectorKind::Hash => {
                let key: &[u8] = match &self.hash_header {
                    Some(h) => headers.get(h).map_or(b"", |v| v.as_bytes()),
                    None => url.as_bytes(),
                };
                // Rendezvous hashing: the healthy backend with the highest
                // score for this key; when one falls sick only its keys move.
                self.backends
                    .iter()
                    .filter(|b| b.is_healthy())
                    .max_by_key(|b| self.hasher.hash_one((key, b.name())))
                    .cloned()
            }
        }
    }

    /// The backend named `name` when it is healthy (`req.backend_hint`,
    /// `bereq.backend`); `None` when it is sick or there is none by that
    /// name.
    pub fn named(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .filter(|b| b.is_healthy())
            .cloned()
    }

    /// The first healthy backend from position `start` on.
    fn in_turn(&self, start: usize) -> Option<Arc<Backend>> {
        let n = self.backends.len();
        (0..n)
            .map(|i| &self.backends[(start + i) % n])
            .find(|b| b.is_healthy())
            .cloned()
    }
}

/// A cheap per-thread pseudo-random number (xorshift), enough to spread load.
fn random() -> usize {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x as usize
    })
}
