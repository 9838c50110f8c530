//! The ban list: bans apply to every object stored before them. Objects are
//! checked lazily at lookup (against the request being served), and a
//! background lurker walks the cache for bans it can decide from the object
//! alone, so the list stays short.
//!
//! Bans are numbered in order. Each object remembers the newest ban it has
//! been checked against (`ban_checked`, starting at the newest ban when it
//! was stored); a ban can be dropped once every stored object has been
//! checked past it.

use http::HeaderMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::ban_expr::{BanExpr, BanTarget};
use crate::cache::CachedObject;

/// One ban.
#[derive(Debug)]
pub struct Ban {
    /// Sequence number: applies to objects checked only up to a lower one.
    pub id: u64,
    /// The expression.
    pub expr: BanExpr,
    /// When it was added.
    pub created: SystemTime,
}

/// The bans in force, oldest first.
#[derive(Debug, Default)]
pub struct BanList {
    bans: RwLock<Vec<Arc<Ban>>>,
    newest: AtomicU64,
}

/// A stored object as a ban sees it; `req` is the request being served (at
/// lookup) or `None` (the lurker: only object-decidable bans apply).
struct Target<'a> {
    obj: &'a CachedObject,
    req: Option<&'a HeaderMap>,
}

impl BanTarget for Target<'_> {
    fn url(&self) -> &str {
        &self.obj.url
    }

    fn req_header(&self, name: &str) -> Option<&str> {
        if name == "host" {
            return Some(&self.obj.host);
        }
        self.req?.get(name)?.to_str().ok()
    }

    fn status(&self) -> u16 {
        self.obj.status.as_u16()
    }

    fn obj_header(&self, name: &str) -> Option<&str> {
        self.obj.header(name)?.to_str().ok()
    }
}

impl BanList {
    /// An empty list.
    pub fn new() -> BanList {
        BanList::default()
    }

    /// The newest ban's number (0 with none yet): stamped on objects as
    /// they are stored.
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::Acquire)
    }

    /// Adds a ban. An older identical ban is dropped: the new one covers
    /// every object the old one did.
    pub fn add(&self, expr: BanExpr) -> Arc<Ban> {
        let mut bans = self.bans.write().unwrap_or_else(|p| p.into_inner());
        let id = self.newest.load(Ordering::Acquire) + 1;
        bans.retain(|b| b.expr != expr);
        let ban = Arc::new(Ban {
            id,
            expr,
            created: SystemTime::now(),
        });
        bans.push(ban.clone());
        self.newest.store(id, Ordering::Release);
        ban
    }

    /// Whether `obj` is banned. With `req`, every ban is decided (lookup);
    /// without, only bans decidable from the object alone (the lurker).
    /// Records how far the object has been checked.
    pub fn is_banned(&self, obj: &CachedObject, req: Option<&HeaderMap>) -> bool {
        let checked = obj.ban_checked.load(Ordering::Acquire);
        let newest = self.newest();
        if checked >= newest {
            return false;
        }
        let target = Target { obj, req };
        let bans = self.bans.read().unwrap_or_else(|p| p.into_inner());
        // Undecided (request-dependent) bans keep the object's mark below them.
        let mut undecided: Option<u64> = None;
        for ban in bans.iter().filter(|b| b.id > checked) {
            if req.is_none() && !ban.expr.lurker_friendly() {
                undecided.get_or_insert(ban.id);
                continue;
            }
            if ban.expr.matches(&target) {
                return true;
            }
        }
        let mark = undecided.map_or(newest, |id| id - 1);
        obj.ban_checked.fetch_max(mark, Ordering::AcqRel);
        false
    }

    /// Drops the bans every stored object has been checked past
    /// (`min_checked`: the lowest `ban_checked` in the cache, or the newest
    /// ban when the cache is empty). Returns how many went.
    pub fn prune(&self, min_checked: u64) -> usize {
        let mut bans = self.bans.write().unwrap_or_else(|p| p.into_inner());
        let before = bans.len();
        bans.retain(|b| b.id > min_checked);
        before - bans.len()
    }

    /// The bans in force, oldest first.
    pub fn list(&self) -> Vec<Arc<Ban>> {
        self.bans.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Number of bans in force.
    pub fn len(&self) -> usize {
        self.bans.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True with no ban in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
