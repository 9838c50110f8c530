//! The checker's side of vmod directors: a backend or director written
//! bare, `X.backend(…)` and `X.key(…)` in expressions, and the errors for
//! methods used where they cannot be.

use super::{Checker, Scope};
use crate::ast::{self, ExprKind, Ident};
use crate::directors::{Director, DirectorKind};
use crate::error::{Error, Span};
use crate::ir;
use crate::vars::{self, closest, Type, Var};

impl Checker<'_> {
    /// A declared backend's or a director's name.
    pub(super) fn is_backend(&self, name: &str) -> bool {
        self.backend_names.iter().any(|b| b == name) || self.directors.find(name).is_some()
    }

    /// `d.backend("host")` of a vmod dynamic director: the backend it
    /// stands for (made once per host and port), as a BACKEND value. `None`
    /// when `name` is no dynamic director's method.
    pub(super) fn dynamic_call(
        &self,
        name: &Ident,
        args: &[ast::Arg],
    ) -> Option<Result<(ir::Expr, Type), Error>> {
        let (object, method) = name.name.split_once('.')?;
        let d = self.directors.find_dynamic(object)?;
        if method != "backend" {
            return Some(Err(self.error(
                name.span,
                format!("`{object}` has no method `{method}`"),
                format!("a dynamic director has `{object}.backend(\"host\")`"),
            )));
        }
        let (host, port) = match crate::dynamic::target(d, name, args, self.src, self.file) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let backend = crate::dynamic::backend(d, &host, &port);
        let value = ir::Expr::Str(backend.name.as_str().into());
        let mut made = self.dynamic_backends.borrow_mut();
        if !made.iter().any(|b| b.name == backend.name) {
            made.push(backend);
        }
        Some(Ok((value, Type::Backend)))
    }

    /// `X.method` where `X` is a director: the director and the method.
    pub(super) fn director_of<'n>(&self, name: &'n str) -> Option<(&Director, &'n str)> {
        let (object, method) = name.split_once('.')?;
        Some((self.directors.find(object)?, method))
    }

    /// A director's method called as a statement anywhere but the top
    /// level of `vcl_init` (those were read when loading).
    pub(super) fn director_statement(
        &self,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
    ) -> Error {
        let Some((_, method)) = self.director_of(&name.name) else {
            return self.error(name.span, "internal error", "not a director");
        };
        match method {
            "backend" | "key" => match self.director_call_checked(name, args, span, scope) {
                Err(e) => e,
                Ok(_) => self.error(
                    name.span,
                    format!("the result of `{}` is not used", name.name),
                    "use it, as in `set req.backend_hint = …;`",
                ),
            },
            "add_backend" | "remove_backend" | "clear" | "reconfigure" => self
                .error(
                    span,
                    format!(
                        "`{}` is allowed only at the top level of vcl_init",
                        name.name
                    ),
                    "directors are set up once, when the policy loads",
                )
                .note("vcl-lite reads a director's backends from vcl_init's top-level statements"),
            _ => self.unknown_method(name, method),
        }
    }

    fn director_call_checked(
        &self,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
    ) -> Result<(ir::Expr, Type), Error> {
        match self.director_of(&name.name) {
            Some((director, method)) => {
                self.director_call(director, method, name, args, span, scope)
            }
            None => Err(self.error(name.span, "internal error", "not a director")),
        }
    }

    fn unknown_method(&self, name: &Ident, method: &str) -> Error {
        let object = name.name.split_once('.').map_or("", |(o, _)| o);
        let methods = ["backend", "add_backend", "remove_backend"];
        let label = match closest(method, methods) {
            Some(c) => format!("did you mean `{object}.{c}`?"),
            None => "a director has backend, add_backend and remove_backend".to_string(),
        };
        self.error(
            name.span,
            format!("`{object}` has no method `{method}`"),
            label,
        )
    }

    /// `X.backend(…)` or `X.key(…)` in an expression. Without a key, the
    /// director itself (its name): lacquer resolves it when the fetch is
    /// sent (hash and shard by the backend request's URL and host). With
    /// one, the host chooses at once.
    pub(super) fn director_call(
        &self,
        director: &Director,
        method: &str,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
    ) -> Result<(ir::Expr, Type), Error> {
        let itself = || (ir::Expr::Str(director.name.as_str().into()), Type::Backend);
        let keyed = |key: ir::Expr| {
            (
                ir::Expr::Director {
                    name: director.name.as_str().into(),
                    key: Box::new(key),
                },
                Type::Backend,
            )
        };
        match (method, director.kind) {
            (
                "backend",
                DirectorKind::RoundRobin | DirectorKind::Fallback | DirectorKind::Random,
            ) => {
                if let Some(arg) = args.first() {
                    return Err(self.error(
                        arg.value.span,
                        format!("`{}` takes no arguments", name.name),
                        format!("write `{}()`", name.name),
                    ));
                }
                Ok(itself())
            }
            ("backend", DirectorKind::Hash) => match args {
                [arg] if arg.name.is_none() => Ok(keyed(self.text(&arg.value, scope)?)),
                _ => Err(self.error(
                    span,
                    format!("`{}` takes one STRING, the key", name.name),
                    format!("write `{}(req.url)`", name.name),
                )),
            },
            ("backend", DirectorKind::Shard) => {
                self.shard_backend(director, name, args, span, scope, keyed, itself)
            }
            ("key", DirectorKind::Shard) => match args {
                [arg] if arg.name.as_ref().is_none_or(|n| n.name == "string") => Ok((
                    ir::Expr::ShardKey(Box::new(self.text(&arg.value, scope)?)),
                    Type::Int,
                )),
                _ => Err(self.error(
                    span,
                    format!("`{}` takes one STRING", name.name),
                    format!("write `{}(req.http.X-Key)`", name.name),
                )),
            },
            ("add_backend" | "remove_backend" | "clear" | "reconfigure", _) => Err(self.error(
                name.span,
                format!("`{}` returns nothing", name.name),
                "it is allowed only as a statement at the top level of vcl_init",
            )),
            _ => Err(self.unknown_method(name, method)),
        }
    }

    /// `X.backend(by = HASH | URL | KEY, key = INT)` of a shard director.
    #[allow(clippy::too_many_arguments)]
    fn shard_backend(
        &self,
        director: &Director,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
        keyed: impl Fn(ir::Expr) -> (ir::Expr, Type),
        itself: impl Fn() -> (ir::Expr, Type),
    ) -> Result<(ir::Expr, Type), Error> {
        let mut by: Option<&Ident> = None;
        let mut key: Option<&ast::Expr> = None;
        for (i, arg) in args.iter().enumerate() {
            let param = arg.name.as_ref().map_or(
                match i {
                    0 => "by",
                    1 => "key",
                    _ => "",
                },
                |n| n.name.as_str(),
            );
            match param {
                "by" => match &arg.value.kind {
                    ExprKind::Name(id) if ["HASH", "URL", "KEY"].contains(&id.name.as_str()) => {
                        by = Some(id)
                    }
                    _ => {
                        return Err(self.error(
                            arg.value.span,
                            "expected `HASH`, `URL` or `KEY`",
                            "vcl-lite's shard chooses by HASH (the default), URL or KEY",
                        ))
                    }
                },
                "key" => key = Some(&arg.value),
                _ => {
                    let at = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
                    return Err(self
                        .error(
                            at,
                            format!("`{}`: parameter not supported", name.name),
                            "vcl-lite's shard takes `by` and `key`",
                        )
                        .note(
                            "alt, warmup, rampup, healthy, resolve and param are not supported",
                        ));
                }
            }
        }
        match by.map_or("HASH", |b| b.name.as_str()) {
            "KEY" => {
                let Some(key) = key else {
                    return Err(self.error(
                        span,
                        "`by = KEY` needs `key`",
                        format!(
                            "write `{}(by = KEY, key = {}.key(req.http.X-Key))`",
                            name.name, director.name
                        ),
                    ));
                };
                let (k, ty) = self.expr(key, scope)?;
                let k = self.coerce(k, ty, Type::Int, key)?;
                Ok(keyed(ir::Expr::ToStr(Box::new(k), Type::Int)))
            }
            other => {
                if let Some(key) = key {
                    return Err(self.error(
                        key.span,
                        "`key` goes with `by = KEY`",
                        format!("`by = {other}` takes the key from the request"),
                    ));
                }
                if other == "HASH" {
                    // Resolved when the fetch is sent, by the backend
                    // request's URL and host (lacquer's hash of them).
                    return Ok(itself());
                }
                let client = scope.mask.subs().all(|s| vars::CLIENT.contains(s));
                let backend = scope.mask.subs().all(|s| vars::BACKEND.contains(s));
                let url = match (client, backend) {
                    (true, _) => Var::ReqUrl,
                    (_, true) => Var::BereqUrl,
                    _ => {
                        return Err(self
                            .error(
                                span,
                                format!("`by = URL` in `{}`, which runs on both sides", scope.name),
                                "it reads req.url in client subroutines, bereq.url in backend ones",
                            )
                            .note(format!(
                                "`{}` runs in {}; use `by = KEY` with a key from each side",
                                scope.name,
                                scope.mask.describe()
                            )));
                    }
                };
                Ok(keyed(ir::Expr::Var(url)))
            }
        }
    }

    /// `web1.add_backend(…)` where `web1` is no object: an error saying
    /// what `web1` is. `None` when the name is no `object.method`.
    pub(super) fn not_an_object(&self, name: &Ident) -> Option<Error> {
        let (object, method) = name.name.split_once('.')?;
        if crate::funcs::FUNCS
            .iter()
            .any(|f| f.name.split_once('.').is_some_and(|(v, _)| v == object))
        {
            return None;
        }
        let what = if self.backend_names.iter().any(|b| b == object) {
            "a backend"
        } else if self.acl_names.contains_key(object) {
            "an ACL"
        } else if self.sub_names.contains_key(object) {
            "a subroutine"
        } else {
            let directors = self.directors.directors.iter().map(|d| d.name.as_str());
            let label = match closest(object, directors) {
                Some(c) => format!("did you mean `{c}.{method}`?"),
                None => "objects are made in vcl_init: `new NAME = directors.round_robin();`"
                    .to_string(),
            };
            return Some(self.error(name.span, format!("unknown object `{object}`"), label));
        };
        Some(
            self.error(
                name.span,
                format!("`{object}` is {what}, not an object"),
                format!("it has no method `{method}`"),
            )
            .note("objects are made in vcl_init: `new NAME = directors.round_robin();`"),
        )
    }
}
