//! vmod directors: the `new X = directors.KIND(…);` objects of `vcl_init`
//! and their `X.add_backend(…)` calls, read when the policy loads. They
//! are set up once (vcl-lite runs no vmod code): the statements themselves
//! do nothing when `vcl_init` runs. The host builds its directors from
//! [`crate::Program::directors`] and resolves `req.backend_hint` /
//! `bereq.backend` names through them.

use std::collections::HashSet;

use crate::ast::{self, ExprKind, Item, StmtKind};
use crate::error::{Error, Span};
use crate::vars::closest;

/// How a director chooses among its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectorKind {
    /// `directors.round_robin()`: each healthy backend in turn.
    RoundRobin,
    /// `directors.fallback()`: the first healthy backend, in the order
    /// they were added.
    Fallback,
    /// `directors.random()`: a healthy backend at random, by weight.
    Random,
    /// `directors.hash()`: by a key (`X.backend(STRING)`), by weight; a
    /// key keeps its backend while that one is healthy.
    Hash,
    /// `directors.shard()`: consistent hashing of a key (rendezvous): a
    /// key keeps its backend while that one is healthy, and only a sick
    /// backend's keys move.
    Shard,
}

impl DirectorKind {
    const ALL: [(&'static str, DirectorKind); 5] = [
        ("round_robin", DirectorKind::RoundRobin),
        ("fallback", DirectorKind::Fallback),
        ("random", DirectorKind::Random),
        ("hash", DirectorKind::Hash),
        ("shard", DirectorKind::Shard),
    ];

    /// Its constructor's name without the vmod (`round_robin`).
    pub fn name(self) -> &'static str {
        DirectorKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }

    fn from_name(name: &str) -> Option<DirectorKind> {
        DirectorKind::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

/// A backend (or another director) in a director, with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// A declared backend's name, or an earlier director's.
    pub name: String,
    /// Its share (`random`, `hash`, `shard`); 1 when not given.
    pub weight: f64,
}

/// A director made in `vcl_init`.
#[derive(Debug, Clone, PartialEq)]
pub struct Director {
    /// Its name (`new NAME = …`).
    pub name: String,
    /// How it chooses.
    pub kind: DirectorKind,
    /// `directors.fallback(sticky = true)`: keep to the backend chosen
    /// last while it is healthy, rather than going back to the first.
    pub sticky: bool,
    /// Its backends, in the order they were added.
    pub members: Vec<Member>,
}

/// The directors of a policy and the statements that made them (skipped
/// when the bodies are checked).
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) directors: Vec<Director>,
    /// Where each consumed statement starts.
    pub(crate) consumed: HashSet<usize>,
    /// vmod dynamic's directors (`crate::dynamic`).
    pub(crate) dynamics: Vec<crate::dynamic::DynamicDirector>,
}

impl Collected {
    pub(crate) fn find(&self, name: &str) -> Option<&Director> {
        self.directors.iter().find(|d| d.name == name)
    }

    pub(crate) fn find_dynamic(&self, name: &str) -> Option<&crate::dynamic::DynamicDirector> {
        self.dynamics.iter().find(|d| d.name == name)
    }
}

/// The methods called as statements in `vcl_init`.
const SETUP_METHODS: &[&str] = &["add_backend", "remove_backend", "clear", "reconfigure"];

struct Reader<'a> {
    src: &'a str,
    file: &'a str,
    backends: &'a [String],
    imported: bool,
    out: Collected,
    /// Objects whose `new` failed: their setup calls are not errors too.
    broken: HashSet<String>,
}

/// Reads the `new` statements and the setup calls at the top level of the
/// `vcl_init` bodies, in order. Errors go to `errors`.
pub(crate) fn collect(
    policy: &ast::Policy,
    src: &str,
    file: &str,
    backends: &[String],
    errors: &mut Vec<Error>,
) -> Collected {
    let imported = policy
        .items
        .iter()
        .any(|i| matches!(i, Item::Import(n) if n.name == "directors"));
    let mut r = Reader {
        src,
        file,
        backends,
        imported,
        out: Collected::default(),
        broken: HashSet::new(),
    };
    for item in &policy.items {
        let Item::Sub(def) = item else { continue };
        if def.name.name != "vcl_init" {
            continue;
        }
        for stmt in &def.body.stmts {
            let result = match &stmt.kind {
                StmtKind::New { name, ctor, args } if ctor.name == "dynamic.director" => {
                    r.make_dynamic(policy, name, ctor, args)
                }
                StmtKind::New { name, ctor, args } => {
                    let made = r.make(name, ctor, args);
                    if made.is_err() {
                        r.broken.insert(name.name.clone());
                    }
                    made
                }
                StmtKind::CallFunction { name, args } => match name.name.split_once('.') {
                    Some((object, _)) if r.broken.contains(object) => Ok(()),
                    Some((object, method))
                        if SETUP_METHODS.contains(&method) && r.out.find(object).is_some() =>
                    {
                        r.setup(object, method, name, args)
                    }
                    _ => continue,
                },
                _ => continue,
            };
            match result {
                Ok(()) => {
                    r.out.consumed.insert(stmt.span.start);
                }
                Err(e) => {
                    // Checked: not looked at again by the body's check.
                    r.out.consumed.insert(stmt.span.start);
                    errors.push(e);
                }
            }
        }
    }
    r.out
}

impl Reader<'_> {
    /// `new d = dynamic.director(…)`.
    fn make_dynamic(
        &mut self,
        policy: &ast::Policy,
        name: &ast::Ident,
        ctor: &ast::Ident,
        args: &[ast::Arg],
    ) -> Result<(), Error> {
        let imported = policy
            .items
            .iter()
            .any(|i| matches!(i, Item::Import(n) if n.name == "dynamic"));
        if !imported {
            return Err(self.error(
                ctor.span,
                "vmod `dynamic` is not imported",
                "add `import dynamic;` at the top of the file",
            ));
        }
        if self.backends.contains(&name.name)
            || self.out.find(&name.name).is_some()
            || self.out.find_dynamic(&name.name).is_some()
        {
            return Err(self.error(
                name.span,
                format!("`{}` is already defined", name.name),
                "a director needs a name of its own (not a backend's or another director's)",
            ));
        }
        let d = crate::dynamic::make(name, args, self.src, self.file)?;
        self.out.dynamics.push(d);
        Ok(())
    }

    fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        Error::new(self.src, self.file, span, message, label)
    }

    fn make(
        &mut self,
        name: &ast::Ident,
        ctor: &ast::Ident,
        args: &[ast::Arg],
    ) -> Result<(), Error> {
        let Some(("directors", kind)) = ctor.name.split_once('.') else {
            return Err(self
                .error(
                    ctor.span,
                    format!("`{}` is not built in", ctor.name),
                    format!("`{}` cannot be created", name.name),
                )
                .note("the built-in objects are vmod directors' round_robin, fallback, random, hash and shard"));
        };
        let Some(kind) = DirectorKind::from_name(kind) else {
            let names = DirectorKind::ALL.map(|(n, _)| n);
            let label = match closest(kind, names.iter().copied()) {
                Some(c) => format!("did you mean `directors.{c}`?"),
                None => format!("the kinds are {}", names.join(", ")),
            };
            return Err(self.error(
                ctor.span,
                format!("unknown director `{}`", ctor.name),
                label,
            ));
        };
        if !self.imported {
            return Err(self.error(
                ctor.span,
                "vmod `directors` is not imported",
                "add `import directors;` at the top of the file",
            ));
        }
        if self.backends.contains(&name.name) || self.out.find(&name.name).is_some() {
            return Err(self.error(
                name.span,
                format!("`{}` is already defined", name.name),
                "a director needs a name of its own (not a backend's or another director's)",
            ));
        }
        let mut sticky = false;
        for arg in args {
            match (
                kind,
                arg.name.as_ref().map(|n| n.name.as_str()),
                &arg.value.kind,
            ) {
                (DirectorKind::Fallback, Some("sticky") | None, ExprKind::Bool(b)) => sticky = *b,
                (DirectorKind::Fallback, _, _) => {
                    return Err(self.error(
                        arg.value.span,
                        "expected `sticky = true` or `sticky = false`",
                        "`directors.fallback` takes only `sticky`, a BOOL literal",
                    ))
                }
                _ => {
                    return Err(self.error(
                        arg.value.span,
                        format!("`directors.{}` takes no arguments", kind.name()),
                        format!("write `new {} = directors.{}();`", name.name, kind.name()),
                    ))
                }
            }
        }
        self.out.directors.push(Director {
            name: name.name.clone(),
            kind,
            sticky,
            members: Vec::new(),
        });
        Ok(())
    }

    /// `X.add_backend(b[, weight])`, `X.remove_backend(b)`, `X.clear()`,
    /// `X.reconfigure()`.
    fn setup(
        &mut self,
        object: &str,
        method: &str,
        call: &ast::Ident,
        args: &[ast::Arg],
    ) -> Result<(), Error> {
        let Some(index) = self.out.directors.iter().position(|d| d.name == object) else {
            return Ok(());
        };
        let kind = self.out.directors[index].kind;
        let params: &[&str] = match (method, kind) {
            ("add_backend", DirectorKind::RoundRobin | DirectorKind::Fallback) => &["backend"],
            ("add_backend", DirectorKind::Random | DirectorKind::Hash) => &["backend", "weight"],
            ("add_backend", DirectorKind::Shard) => &["backend", "ident", "rampup", "weight"],
            ("remove_backend", DirectorKind::Shard) => &["backend", "ident"],
            ("remove_backend", _) => &["backend"],
            ("reconfigure", DirectorKind::Shard) => &["replicas"],
            ("clear", DirectorKind::Shard) => &[],
            _ => {
                return Err(self.error(
                    call.span,
                    format!("`{}` has no method `{method}`", object),
                    format!(
                        "a {} director has add_backend and remove_backend",
                        kind.name()
                    ),
                ))
            }
        };
        let mut slots: Vec<Option<&ast::Expr>> = vec![None; params.len()];
        for (i, arg) in args.iter().enumerate() {
            let at = match &arg.name {
                Some(n) => params.iter().position(|p| *p == n.name).ok_or_else(|| {
                    self.error(
                        n.span,
                        format!("`{}` has no parameter `{}`", call.name, n.name),
                        format!("its parameters are {}", params.join(", ")),
                    )
                })?,
                None if i < params.len() => i,
                None => {
                    return Err(self.error(
                        arg.value.span,
                        format!("too many arguments for `{}`", call.name),
                        format!("its parameters are {}", params.join(", ")),
                    ))
                }
            };
            slots[at] = Some(&arg.value);
        }
        let director = &self.out.directors[index];
        if method == "clear" {
            self.out.directors[index].members.clear();
            return Ok(());
        }
        if method == "reconfigure" {
            // Changes apply when the policy is loaded; nothing to do.
            return Ok(());
        }
        let Some(backend) = slots.first().copied().flatten() else {
            return Err(self.error(
                call.span,
                format!("`{}` needs a backend", call.name),
                format!("write `{}({})`", call.name, self.example()),
            ));
        };
        let member = self.member(backend, &director.name)?;
        if method == "remove_backend" {
            self.out.directors[index]
                .members
                .retain(|m| m.name != member);
            return Ok(());
        }
        let weight = match params
            .iter()
            .position(|p| *p == "weight")
            .and_then(|w| slots[w])
        {
            None => 1.0,
            Some(e) => match e.kind {
                ExprKind::Int(i) if i >= 0 => i as f64,
                ExprKind::Real(r) if r >= 0.0 && r.is_finite() => r,
                _ => {
                    return Err(self.error(
                        e.span,
                        "a weight is a number, 0 or more",
                        "write it as a literal, as in `2` or `0.5`",
                    ))
                }
            },
        };
        self.out.directors[index].members.push(Member {
            name: member,
            weight,
        });
        Ok(())
    }

    /// A backend (or earlier director) given to `add_backend`.
    fn member(&self, e: &ast::Expr, director: &str) -> Result<String, Error> {
        let ExprKind::Name(ident) = &e.kind else {
            return Err(self.error(
                e.span,
                "expected a backend name",
                "name a `backend` declared in the policy (without quotes)",
            ));
        };
        let name = ident.name.as_str();
        if name == director {
            return Err(self.error(
                ident.span,
                format!("`{name}` cannot be added to itself"),
                "add backends, or directors made before it",
            ));
        }
        if self.backends.iter().any(|b| b == name) || self.out.find(name).is_some() {
            return Ok(name.to_string());
        }
        let known = self
            .backends
            .iter()
            .map(String::as_str)
            .chain(self.out.directors.iter().map(|d| d.name.as_str()));
        let label = match closest(name, known) {
            Some(c) => format!("did you mean `{c}`?"),
            None => {
                "name a `backend` declared in the policy, or a director made before".to_string()
            }
        };
        Err(self.error(ident.span, format!("unknown backend `{name}`"), label))
    }

    fn example(&self) -> &str {
        self.backends.first().map_or("web1", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, Context, Program, Sub, Value, Var};
    use std::collections::HashMap;
    use std::net::IpAddr;

    const DECLS: &str = r#"
        vcl 4.1;
        import directors;
        backend web1 { .host = "127.0.0.1"; }
        backend web2 { .host = "127.0.0.2"; }
        backend sick { .host = "127.0.0.3"; }
    "#;

    fn program(body: &str) -> Program {
        match compile(&format!("{DECLS}\n{body}"), "t.vcl") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[derive(Default)]
    struct Ctx(HashMap<Var, Value<'static>>);

    impl Context for Ctx {
        fn get(&self, var: &Var) -> Option<Value<'_>> {
            self.0.get(var).cloned()
        }
        fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
            self.0.insert(var.clone(), value.into_owned());
            Ok(())
        }
        fn unset(&mut self, var: &Var) {
            self.0.remove(var);
        }
        fn client_ip(&self) -> IpAddr {
            IpAddr::from([127, 0, 0, 1])
        }
        fn hash_data(&mut self, _: &str) {}
        fn synthetic(&mut self, _: &str) {}
        fn healthy(&self, backend: &str) -> bool {
            backend.starts_with("web") || backend == "rr"
        }
        fn director_backend(&self, director: &str, key: &str) -> Option<String> {
            (key != "none").then(|| format!("{director}:{key}"))
        }
    }

    fn hint(ctx: &Ctx) -> Option<&str> {
        ctx.0.get(&Var::ReqBackendHint).and_then(Value::as_str)
    }

    #[test]
    fn vcl_init_makes_directors_and_lowers_to_nothing() {
        let p = program(
            r#"
            sub vcl_init {
                new rr = directors.round_robin();
                rr.add_backend(web1);
                rr.add_backend(web2);
                new fb = directors.fallback(sticky = true);
                fb.add_backend(rr);
                fb.add_backend(sick);
                new h = directors.hash();
                h.add_backend(web1, 2);
                h.add_backend(backend = web2, weight = 0.5);
                h.remove_backend(web1);
                new s = directors.shard();
                s.add_backend(web1);
                s.add_backend(web2);
                s.reconfigure();
                return (ok);
            }
            sub vcl_recv { set req.backend_hint = fb.backend(); }
            "#,
        );
        p.init().expect("vcl_init runs");
        let d = p.directors();
        assert_eq!(d.len(), 4);
        assert_eq!(
            (d[0].name.as_str(), d[0].kind),
            ("rr", DirectorKind::RoundRobin)
        );
        let names = |i: usize| {
            d[i].members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["web1", "web2"]);
        assert_eq!((d[1].kind, d[1].sticky), (DirectorKind::Fallback, true));
        assert_eq!(names(1), ["rr", "sick"]);
        assert_eq!(
            d[2].members,
            vec![Member {
                name: "web2".into(),
                weight: 0.5
            }]
        );
        assert_eq!((d[3].kind, names(3).len()), (DirectorKind::Shard, 2));
    }

    #[test]
    fn backends_and_directors_are_backend_values() {
        let p = program(
            r#"
            sub vcl_init {
                new rr = directors.round_robin();
                rr.add_backend(web1);
                new h = directors.hash();
                h.add_backend(web1);
                new s = directors.shard();
                s.add_backend(web2);
            }
            sub vcl_recv {
                if (req.http.x == "plain") { set req.backend_hint = web2; }
                elsif (req.http.x == "rr") { set req.backend_hint = rr.backend(); }
                elsif (req.http.x == "bare") { set req.backend_hint = rr; }
                elsif (req.http.x == "hash") { set req.backend_hint = h.backend(req.url); }
                elsif (req.http.x == "shard-url") { set req.backend_hint = s.backend(by = URL); }
                elsif (req.http.x == "shard-key") { set req.backend_hint = s.backend(by = KEY, key = s.key("k")); }
                elsif (req.http.x == "shard") { set req.backend_hint = s.backend(); }
                set req.http.hint = req.backend_hint;
                set req.http.healthy = std.healthy(req.backend_hint);
                set req.http.is-web2 = req.backend_hint == web2;
            }
            "#,
        );
        let run = |x: &str| {
            let mut ctx = Ctx::default();
            ctx.0.insert(
                Var::ReqHttp(crate::Header::new("x")),
                Value::Str(x.to_string().into()),
            );
            ctx.0.insert(Var::ReqUrl, Value::Str("/a".into()));
            p.run(Sub::Recv, &mut ctx).expect("runs");
            let get = |h: &str| {
                ctx.0
                    .get(&Var::ReqHttp(crate::Header::new(h)))
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string()
            };
            (
                hint(&ctx).unwrap_or("-").to_string(),
                get("healthy"),
                get("is-web2"),
            )
        };
        assert_eq!(run("plain"), ("web2".into(), "true".into(), "true".into()));
        assert_eq!(run("rr"), ("rr".into(), "true".into(), "false".into()));
        assert_eq!(run("bare").0, "rr");
        assert_eq!(run("hash").0, "h:/a");
        assert_eq!(run("shard-url").0, "s:/a");
        let k = crate::stdlib::shard_key("k");
        assert_eq!(run("shard-key").0, format!("s:{k}"));
        // by = HASH: the director itself, resolved when the fetch is sent.
        assert_eq!(run("shard").0, "s");
    }

    #[test]
    fn bereq_backend_in_backend_subs() {
        let p = program(
            r#"
            sub vcl_backend_fetch {
                if (bereq.retries > 0) { set bereq.backend = web2; }
                set bereq.http.was = bereq.backend;
            }
            "#,
        );
        let mut ctx = Ctx::default();
        ctx.0.insert(Var::BereqRetries, Value::Int(1));
        ctx.0.insert(Var::BereqBackend, Value::Str("web1".into()));
        p.run(Sub::BackendFetch, &mut ctx).expect("runs");
        assert_eq!(
            ctx.0.get(&Var::BereqBackend).and_then(Value::as_str),
            Some("web2")
        );
    }

    #[test]
    fn errors() {
        let err = |body: &str| match compile(&format!("{DECLS}\n{body}"), "t.vcl") {
            Ok(_) => panic!("compiled: {body}"),
            Err(e) => e.message().to_string(),
        };
        assert_eq!(
            err("sub vcl_init { new a = directors.round_robin(); new a = directors.random(); }"),
            "`a` is already defined"
        );
        assert_eq!(
            err("sub vcl_init { new web1 = directors.random(); }"),
            "`web1` is already defined"
        );
        assert_eq!(
            err("sub vcl_init { new a = directors.round_robin(1); }"),
            "`directors.round_robin` takes no arguments"
        );
        assert_eq!(
            err("sub vcl_init { new a = directors.round_robin(); a.add_backend(a); }"),
            "`a` cannot be added to itself"
        );
        assert_eq!(
            err("sub vcl_init { if (true) { new a = directors.random(); } }"),
            "`new a` is inside a block"
        );
        assert_eq!(
            err("sub vcl_init { new h = directors.hash(); } sub vcl_recv { set req.backend_hint = h.backend(); }"),
            "`h.backend` takes one STRING, the key"
        );
        assert_eq!(
            err("sub vcl_init { new s = directors.shard(); } sub vcl_recv { set req.backend_hint = s.backend(by = KEY); }"),
            "`by = KEY` needs `key`"
        );
        assert_eq!(
            err("sub vcl_init { new s = directors.shard(); } sub vcl_recv { set req.backend_hint = s.backend(alt = 1); }"),
            "`s.backend`: parameter not supported"
        );
        assert_eq!(
            err("sub vcl_init { new s = directors.shard(); } sub vcl_recv { s.backend(); }"),
            "the result of `s.backend` is not used"
        );
        assert_eq!(
            err("sub vcl_recv { set req.http.a = req.url; set req.backend_hint = req.http.a; }"),
            "wrong type: expected BACKEND, found STRING"
        );
        assert_eq!(
            err("sub vcl_init { new s = directors.shard(); } sub vcl_recv { call p; } sub vcl_backend_fetch { call p; } sub p { std.log(\"\" + s.backend(by = URL)); }"),
            "`by = URL` in `p`, which runs on both sides"
        );
        assert_eq!(
            err("sub vcl_backend_fetch { set req.backend_hint = web1; }"),
            "`req.backend_hint` cannot be set in vcl_backend_fetch"
        );
    }
}
