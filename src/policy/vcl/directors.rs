//! The policy's directors (vmod directors, made in `vcl_init`) with their
//! state: which backend each chooses, skipping sick ones, as the probes
//! see them. Rebuilt with the policy on every reload (a round-robin starts
//! again at its first backend).

use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::atomic::{AtomicUsize, Ordering};

use vcl_lite::{Director, DirectorKind};

/// Whether a declared backend is healthy (`None`: lacquer has no backend
/// by that name, which counts as sick).
pub(super) type Health<'h> = &'h dyn Fn(&str) -> Option<bool>;

/// One director and its state.
struct State {
    def: Director,
    /// Round-robin: the next turn. Fallback with `sticky`: the member used
    /// last.
    turn: AtomicUsize,
}

/// The directors of a policy.
pub(super) struct Directors {
    list: Vec<State>,
    /// The first declared backend: `req.backend_hint` until it is set.
    default: Option<String>,
    /// Unseeded: every node, and every restart, maps a key alike.
    hasher: BuildHasherDefault<DefaultHasher>,
}

impl std::fmt::Debug for Directors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|s| &s.def.name))
            .finish()
    }
}

impl Directors {
    /// The directors `program` made in `vcl_init`; `default` is the
    /// backend requests go to unless the policy says otherwise.
    pub(super) fn new(program: &vcl_lite::Program, default: Option<String>) -> Directors {
        Directors {
            list: program
                .directors()
                .iter()
                .map(|d| State {
                    def: d.clone(),
                    turn: AtomicUsize::new(0),
                })
                .collect(),
            default,
            hasher: BuildHasherDefault::default(),
        }
    }

    /// `req.backend_hint` before the policy sets it.
    pub(super) fn default_backend(&self) -> Option<&str> {
        self.default.as_deref()
    }

    fn find(&self, name: &str) -> Option<&State> {
        self.list.iter().find(|s| s.def.name == name)
    }

    /// Whether `name` (a backend or a director) is healthy: a director is
    /// when one of its members is.
    pub(super) fn healthy(&self, name: &str, health: Health<'_>) -> bool {
        self.healthy_at(name, health, 0)
    }

    fn healthy_at(&self, name: &str, health: Health<'_>, depth: usize) -> bool {
        match self.find(name) {
            // Members are declared before their director: no cycles; the
            // depth bound is only a guard.
            Some(d) if depth <= self.list.len() => d
                .def
                .members
                .iter()
                .any(|m| self.healthy_at(&m.name, health, depth + 1)),
            Some(_) => false,
            None => health(name).unwrap_or(false),
        }
    }

    /// The backend that `name` stands for: itself when it is a backend,
    /// else the one the director chooses (hash and shard by `key`);
    /// `None` when the director has none healthy.
    pub(super) fn resolve(&self, name: &str, key: &str, health: Health<'_>) -> Option<String> {
        self.resolve_at(name, key, health, 0)
    }

    fn resolve_at(
        &self,
        name: &str,
        key: &str,
        health: Health<'_>,
        depth: usize,
    ) -> Option<String> {
        let Some(d) = self.find(name) else {
            return Some(name.to_string());
        };
        if depth > self.list.len() {
            return None;
        }
        let members = &d.def.members;
        let usable = |i: usize| {
            let m = &members[i];
            m.weight > 0.0 && self.healthy_at(&m.name, health, depth + 1)
        };
        let chosen = match d.def.kind {
            DirectorKind::RoundRobin => {
                let n = members.len();
                let start = d.turn.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|i| (start + i) % n.max(1)).find(|&i| usable(i))
            }
            DirectorKind::Fallback => {
                let start = if d.def.sticky {
                    d.turn.load(Ordering::Relaxed)
                } else {
                    0
                };
                let n = members.len();
                let found = (0..n)
                    .map(|i| (start + i) % n.max(1))
                    .find(|&i| usable(i))
                    .or_else(|| (0..n).find(|&i| usable(i)));
                if d.def.sticky {
                    if let Some(i) = found {
                        d.turn.store(i, Ordering::Relaxed);
                    }
                }
                found
            }
            DirectorKind::Random => {
                let total: f64 = (0..members.len())
                    .filter(|&i| usable(i))
                    .map(|i| members[i].weight)
                    .sum();
                let mut at = vcl_lite::stdlib::random(0.0, total);
                (0..members.len())
                    .filter(|&i| usable(i))
                    .find(|&i| {
                        at -= members[i].weight;
                        at < 0.0
                    })
                    .or_else(|| (0..members.len()).rev().find(|&i| usable(i)))
            }
            DirectorKind::Hash | DirectorKind::Shard => self.rendezvous(members, key, usable),
        }?;
        self.resolve_at(&members[chosen].name, key, health, depth + 1)
    }

    /// Weighted rendezvous hashing: each usable member scores the key; the
    /// highest wins. A key keeps its member while that one is usable, and
    /// when one falls sick only its keys move.
    fn rendezvous(
        &self,
        members: &[vcl_lite::Member],
        key: &str,
        usable: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        (0..members.len())
            .filter(|&i| usable(i))
            .map(|i| {
                let h = self.hasher.hash_one((key, &members[i].name));
                // A uniform number in (0, 1) from the hash; the weighted
                // score -w / ln(u) keeps each member's share proportional
                // to its weight.
                let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (i, -members[i].weight / u.ln())
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The directors with their backends, for `lacquer check`:
    /// `rr = random(web1, web2*2)`, `fb = fallback(a, b) sticky`.
    pub(super) fn describe(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|s| {
                let members: Vec<String> = s
                    .def
                    .members
                    .iter()
                    .map(|m| {
                        if (m.weight - 1.0).abs() < f64::EPSILON {
                            m.name.clone()
                        } else {
                            format!("{}*{}", m.name, m.weight)
                        }
                    })
                    .collect();
                let sticky = if s.def.sticky { " sticky" } else { "" };
                format!(
                    "{} = {}({}){sticky}",
                    s.def.name,
                    s.def.kind.name(),
                    members.join(", ")
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn directors(init: &str) -> Directors {
        let src = format!(
            r#"vcl 4.1; import directors;
            backend a {{ .host = "127.0.0.1"; }} backend b {{ .host = "127.0.0.1"; }} backend c {{ .host = "127.0.0.1"; }}
            sub vcl_init {{ {init} }}"#
        );
        let program = vcl_lite::compile(&src, "t.vcl").expect("compiles");
        Directors::new(&program, Some("a".into()))
    }

    fn up<'s>(sick: &'s [&'s str]) -> impl Fn(&str) -> Option<bool> + 's {
        move |name: &str| Some(!sick.contains(&name))
    }

    #[test]
    fn round_robin_and_fallback_skip_sick_members() {
        let d = directors(
            "new rr = directors.round_robin(); rr.add_backend(a); rr.add_backend(b);
             new fb = directors.fallback(); fb.add_backend(a); fb.add_backend(b);
             new st = directors.fallback(sticky = true); st.add_backend(a); st.add_backend(b);
             new nest = directors.fallback(); nest.add_backend(rr); nest.add_backend(c);",
        );
        let all = up(&[]);
        let picks: Vec<_> = (0..4).filter_map(|_| d.resolve("rr", "", &all)).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
        let a_sick = up(&["a"]);
        assert_eq!(d.resolve("rr", "", &a_sick).as_deref(), Some("b"));
        assert_eq!(d.resolve("rr", "", &a_sick).as_deref(), Some("b"));
        assert_eq!(d.resolve("fb", "", &all).as_deref(), Some("a"));
        assert_eq!(d.resolve("fb", "", &a_sick).as_deref(), Some("b"));
        assert_eq!(d.resolve("fb", "", &up(&["a", "b"])), None);
        assert!(!d.healthy("fb", &up(&["a", "b"])));
        assert!(d.healthy("nest", &up(&["a", "b"])));
        assert_eq!(
            d.resolve("nest", "", &up(&["a", "b"])).as_deref(),
            Some("c")
        );
        // Sticky: keeps to b once a was sick, until b is sick in turn.
        assert_eq!(d.resolve("st", "", &all).as_deref(), Some("a"));
        assert_eq!(d.resolve("st", "", &a_sick).as_deref(), Some("b"));
        assert_eq!(d.resolve("st", "", &all).as_deref(), Some("b"));
        assert_eq!(d.resolve("st", "", &up(&["b"])).as_deref(), Some("a"));
        assert_eq!(
            d.resolve("fb", "", &all).as_deref(),
            Some("a"),
            "not sticky"
        );
        assert!(
            d.describe()[2].ends_with("fallback(a, b) sticky"),
            "{:?}",
            d.describe()
        );
        // A backend stands for itself, sick or not (the fetch fails then).
        assert_eq!(d.resolve("c", "", &up(&["c"])).as_deref(), Some("c"));
    }

    #[test]
    fn shard_keeps_keys_and_moves_only_a_sick_backends() {
        let d = directors(
            "new s = directors.shard(); s.add_backend(a); s.add_backend(b); s.add_backend(c);",
        );
        let all = up(&[]);
        let before: HashMap<String, String> = (0..300)
            .map(|i| {
                let k = format!("/k/{i}");
                let b = d.resolve("s", &k, &all).expect("healthy");
                (k, b)
            })
            .collect();
        for (k, b) in &before {
            assert_eq!(d.resolve("s", k, &all).as_ref(), Some(b), "stable");
        }
        let per = |name: &str| before.values().filter(|b| *b == name).count();
        assert!(
            per("a") > 60 && per("b") > 60 && per("c") > 60,
            "{before:?}"
        );
        let b_sick = up(&["b"]);
        for (k, b) in &before {
            let now = d.resolve("s", k, &b_sick).expect("healthy");
            if b == "b" {
                assert_ne!(now, "b");
            } else {
                assert_eq!(&now, b, "a healthy backend's key moved");
            }
        }
    }

    #[test]
    fn random_and_hash_follow_weights() {
        let d = directors(
            "new r = directors.random(); r.add_backend(a, 3); r.add_backend(b, 1); r.add_backend(c, 0);
             new h = directors.hash(); h.add_backend(a, 1); h.add_backend(b, 3);",
        );
        let all = up(&[]);
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..2000 {
            *count
                .entry(d.resolve("r", "", &all).expect("some"))
                .or_default() += 1;
        }
        assert_eq!(count.get("c"), None, "weight 0 is never chosen");
        assert!(count["a"] > count["b"] * 2, "{count:?}");
        let mut count: HashMap<String, usize> = HashMap::new();
        for i in 0..2000 {
            *count
                .entry(d.resolve("h", &format!("/{i}"), &all).expect("some"))
                .or_default() += 1;
        }
        assert!(count["b"] > count["a"] * 2, "{count:?}");
        assert_eq!(
            d.describe(),
            ["r = random(a*3, b, c*0)", "h = hash(a, b*3)"]
        );
    }
}
