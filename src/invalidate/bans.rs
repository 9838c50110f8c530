//! The ban list: bans apply to every object stored before them. Objects are
//! checked lazily at lookup (against the request being served), and a
//! background lurker walks the cache for bans it can decide from the object
//! alone, so the list stays short.
//!
//! Bans are numbered in order. Each object remembers the newest ban it has
//! been checked against (`ban_checked`, starting at the newest ban when it
//! was stored); a ban can be dropped once every stored object has been
//! checked past it.
//!
//! A ban that depends on the request (`req.http.*` other than Host) can only
//! go once every object stored before it has been looked up or has left the
//! cache, so the list is bounded: at most [`BanLimits::max_bans`] bans and
//! [`BanLimits::max_bytes`] bytes, counting each distinct compiled regex
//! once (bans in force share identical patterns) at what it costs
//! ([`BanRegex::charge`]). A ban over either limit is refused
//! ([`BanLimitError`]); nothing already in force is dropped for it.

use crate::http::req_fields::{FieldsRead, ReqFields};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::ban_expr::{BanExpr, BanParseError, BanRegex, BanTarget};
use crate::cache::CachedObject;

/// Bytes charged per ban on top of its expression: the `Ban` and its `Arc`,
/// the list's slot, and the regex table's share.
const BAN_OVERHEAD: usize = 128;

/// How large the ban list may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanLimits {
    /// Most bans in force.
    pub max_bans: usize,
    /// Most bytes charged for the bans in force (expressions plus distinct
    /// compiled regexes).
    pub max_bytes: u64,
}

impl Default for BanLimits {
    /// 10 000 bans, 64 MiB (the settings' defaults).
    fn default() -> Self {
        BanLimits {
            max_bans: 10_000,
            max_bytes: 64 << 20,
        }
    }
}

/// Why a ban was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BanLimitError {
    /// The list holds `max` bans already.
    #[error("ban list full: {max} bans in force (invalidation.max_bans); retry once older bans have been checked and dropped")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The ban would take the list past its byte budget.
    #[error("ban list full: this ban needs {needed} bytes, {in_use} of {max} in use (invalidation.ban_memory); retry once older bans have been checked and dropped")]
    OutOfMemory {
        /// Bytes this ban would add.
        needed: u64,
        /// Bytes charged now.
        in_use: u64,
        /// The limit.
        max: u64,
    },
    /// The ban alone needs more than the whole budget: it can never fit.
    #[error("this ban needs {needed} bytes (its regexes compiled), more than the whole ban budget of {max} bytes (invalidation.ban_memory)")]
    TooLarge {
        /// Bytes this ban would add.
        needed: u64,
        /// The limit.
        max: u64,
    },
}

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
    state: RwLock<State>,
    newest: AtomicU64,
}

/// What the list's lock guards.
#[derive(Debug, Default)]
struct State {
    /// Oldest first.
    bans: Vec<Arc<Ban>>,
    /// Distinct compiled regexes of the bans in force, by pattern, with the
    /// number of conditions using each.
    regexes: HashMap<Box<str>, (Arc<BanRegex>, usize)>,
    /// Bytes charged: every ban's own bytes plus each distinct regex once.
    bytes: u64,
}

impl State {
    /// Counts `ban`'s uses of its regexes (which are already interned).
    fn retain_regexes(&mut self, expr: &BanExpr) {
        for re in expr.regexes() {
            match self.regexes.get_mut(re.pattern()) {
                Some((_, uses)) => *uses += 1,
                None => {
                    self.bytes += re.charge() as u64;
                    self.regexes.insert(re.pattern().into(), (re.clone(), 1));
                }
            }
        }
    }

    /// Forgets `ban`: its own bytes, and the regexes no other ban uses.
    fn release(&mut self, ban: &Ban) {
        self.bytes = self.bytes.saturating_sub(own_charge(&ban.expr));
        for re in ban.expr.regexes() {
            if let Some((_, uses)) = self.regexes.get_mut(re.pattern()) {
                *uses -= 1;
                if *uses == 0 {
                    self.regexes.remove(re.pattern());
                    self.bytes = self.bytes.saturating_sub(re.charge() as u64);
                }
            }
        }
    }
}

/// Bytes of a ban without its regexes.
fn own_charge(expr: &BanExpr) -> u64 {
    (BAN_OVERHEAD + expr.own_bytes()) as u64
}

/// A stored object as a ban sees it; `req` is the request being served (at
/// lookup) or `None` (the lurker: only object-decidable bans apply).
struct Target<'a> {
    obj: &'a CachedObject,
    req: Option<&'a ReqFields>,
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
        self.obj.header_named(name)?.to_str().ok()
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses a ban expression, reusing the compiled regexes of the bans in
    /// force for identical patterns (so a repeated pattern costs no new
    /// compilation and no new memory).
    pub fn parse(&self, text: &str) -> Result<BanExpr, BanParseError> {
        BanExpr::parse_with(text, &|pattern| {
            self.read().regexes.get(pattern).map(|(re, _)| re.clone())
        })
    }

    /// Adds a ban within `limits`. An older identical ban is dropped: the
    /// new one covers every object the old one did. Refused, with nothing
    /// changed, when the list would hold more than `limits.max_bans` bans
    /// or be charged more than `limits.max_bytes`.
    pub fn add(&self, mut expr: BanExpr, limits: BanLimits) -> Result<Arc<Ban>, BanLimitError> {
        let mut state = self.write();
        // Share the regexes already held (a pattern compiled twice by two
        // racing parses keeps one copy).
        expr.intern_regexes(|re| match state.regexes.get(re.pattern()) {
            Some((held, _)) => held.clone(),
            None => re.clone(),
        });
        let mut needed = own_charge(&expr);
        let mut fresh: Vec<&str> = Vec::new();
        for re in expr.regexes() {
            if !state.regexes.contains_key(re.pattern()) && !fresh.contains(&re.pattern()) {
                fresh.push(re.pattern());
                needed += re.charge() as u64;
            }
        }
        let supersedes = state.bans.iter().any(|b| b.expr == expr);
        if !supersedes && state.bans.len() >= limits.max_bans {
            return Err(BanLimitError::TooMany {
                max: limits.max_bans,
            });
        }
        if needed > limits.max_bytes {
            return Err(BanLimitError::TooLarge {
                needed,
                max: limits.max_bytes,
            });
        }
        if state.bytes + needed > limits.max_bytes {
            return Err(BanLimitError::OutOfMemory {
                needed,
                in_use: state.bytes,
                max: limits.max_bytes,
            });
        }
        let id = self.newest.load(Ordering::Acquire) + 1;
        state.bytes += own_charge(&expr);
        state.retain_regexes(&expr);
        if supersedes {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.bans)
                .into_iter()
                .partition(|b| b.expr == expr);
            state.bans = kept;
            for b in &gone {
                state.release(b);
            }
        }
        let ban = Arc::new(Ban {
            id,
            expr,
            created: SystemTime::now(),
        });
        state.bans.push(ban.clone());
        self.newest.store(id, Ordering::Release);
        Ok(ban)
    }

    /// Whether `obj` is banned. With `req`, every ban is decided (lookup);
    /// without, only bans decidable from the object alone (the lurker).
    /// Records how far the object has been checked.
    pub fn is_banned(&self, obj: &CachedObject, req: Option<&ReqFields>) -> bool {
        let checked = obj.ban_checked.load(Ordering::Acquire);
        let newest = self.newest();
        if checked >= newest {
            return false;
        }
        let target = Target { obj, req };
        let state = self.read();
        let bans = &state.bans;
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
        let mut state = self.write();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.bans)
            .into_iter()
            .partition(|b| b.id <= min_checked);
        state.bans = kept;
        for b in &gone {
            state.release(b);
        }
        gone.len()
    }

    /// The bans in force, oldest first.
    pub fn list(&self) -> Vec<Arc<Ban>> {
        self.read().bans.clone()
    }

    /// Number of bans in force.
    pub fn len(&self) -> usize {
        self.read().bans.len()
    }

    /// Bytes charged for the bans in force: each ban's expression plus each
    /// distinct compiled regex once.
    pub fn bytes(&self) -> u64 {
        self.read().bytes
    }

    /// Distinct compiled regexes held by the bans in force.
    pub fn regex_count(&self) -> usize {
        self.read().regexes.len()
    }

    /// True with no ban in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: BanLimits = BanLimits {
        max_bans: usize::MAX,
        max_bytes: u64::MAX,
    };

    fn add(list: &BanList, text: &str, limits: BanLimits) -> Result<Arc<Ban>, BanLimitError> {
        let expr = list.parse(text).expect("parses");
        list.add(expr, limits)
    }

    #[test]
    fn identical_patterns_share_one_regex_and_its_charge() {
        let list = BanList::new();
        add(&list, r#"req.http.a ~ "\w{20}""#, NO_LIMIT).expect("added");
        let one = list.bytes();
        assert!(one > 1 << 20, "{one}");
        let b = add(
            &list,
            r#"req.http.b ~ "\w{20}" && req.http.c ~ "\w{20}""#,
            NO_LIMIT,
        )
        .expect("added");
        assert_eq!(list.regex_count(), 1);
        assert!(list.bytes() - one < 4096, "{one} then {}", list.bytes());
        // Both conditions of the second ban point at the first ban's regex.
        let first = &list.list()[0];
        let held = first.expr.regexes().next().expect("a regex");
        assert!(b.expr.regexes().all(|r| Arc::ptr_eq(r, held)));
        // Dropping the first keeps the regex for the second.
        assert_eq!(list.prune(first.id), 1);
        assert_eq!(list.regex_count(), 1);
        assert!(list.bytes() > 1 << 20);
        assert_eq!(list.prune(b.id), 1);
        assert_eq!((list.regex_count(), list.bytes()), (0, 0));
    }

    #[test]
    fn limits_refuse_without_changing_anything() {
        let list = BanList::new();
        let small = BanLimits {
            max_bans: 2,
            max_bytes: 2 << 20,
        };
        add(&list, "req.url ~ ^/a", small).expect("added");
        add(&list, "req.url ~ ^/b", small).expect("added");
        let (bytes, newest) = (list.bytes(), list.newest());
        assert_eq!(
            add(&list, "req.url ~ ^/c", small).unwrap_err(),
            BanLimitError::TooMany { max: 2 }
        );
        // An identical ban replaces its older self, so it fits.
        add(&list, "req.url ~ ^/a", small).expect("supersedes");
        assert_eq!(list.len(), 2);
        assert_eq!(list.bytes(), bytes);
        let roomy = BanLimits {
            max_bans: 10,
            ..small
        };
        let huge = r#"req.http.x ~ "\w{20}" && req.http.y ~ "\w{19}""#;
        assert!(matches!(
            add(&list, huge, roomy),
            Err(BanLimitError::TooLarge { .. })
        ));
        add(&list, r#"req.http.x ~ "\w{20}""#, roomy).expect("fits");
        assert!(matches!(
            add(&list, r#"req.http.y ~ "\w{19}""#, roomy),
            Err(BanLimitError::OutOfMemory { .. })
        ));
        assert_eq!(list.len(), 3);
        assert_eq!(list.newest(), newest + 2);
        assert!(list.bytes() <= roomy.max_bytes);
    }

    #[test]
    fn small_regexes_are_charged_little() {
        let list = BanList::new();
        for i in 0..1000 {
            add(&list, &format!("req.url ~ ^/p/{i}/"), BanLimits::default()).expect("fits");
        }
        assert!(list.bytes() < 16 << 20, "{} bytes", list.bytes());
    }
}
