//! Names, types, where variables may be used and which actions each
//! subroutine may return; turns the AST into the evaluator's program.

mod objects;

use std::collections::HashMap;

use crate::acl::CompiledAcl;
use crate::action::Action;
use crate::ast::{self, AddOp, CmpOp, ExprKind, Ident, Item, StmtKind};
use crate::error::{Error, SourceMap, Span, MAX_ERRORS};
use crate::eval::{Program, MAX_CALL_DEPTH};
use crate::funcs::{self, FuncDef, HttpPart, ParamType, FUNCS};
use crate::ir::{self, ActionIr, Replacement};
use crate::pattern::Pattern;
use crate::vars::{self, closest, Literal, Mask, Sub, Type, Var, VarDef};

/// The deepest nesting of blocks and calls together, along any call chain.
pub const MAX_NESTING: usize = 256;

/// How a `return` action takes arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionArgs {
    /// `hash`
    None,
    /// `synth(404)`, `synth(404, "Not Found")`
    Status,
    /// `pass(10s)`
    Ttl,
}

/// The actions each built-in subroutine may return (Varnish 7's, plus
/// lacquer's `ban` in vcl_recv).
pub(crate) fn actions(sub: Sub) -> &'static [(&'static str, ActionArgs)] {
    use ActionArgs::*;
    match sub {
        Sub::Recv => &[
            ("hash", None),
            ("pass", None),
            ("pipe", None),
            ("purge", None),
            ("ban", None),
            ("synth", Status),
            ("restart", None),
            ("fail", None),
        ],
        Sub::Hash => &[("lookup", None), ("fail", None)],
        Sub::Hit => &[
            ("deliver", None),
            ("miss", None),
            ("fetch", None),
            ("pass", None),
            ("restart", None),
            ("synth", Status),
            ("fail", None),
        ],
        Sub::Miss => &[
            ("fetch", None),
            ("pass", None),
            ("restart", None),
            ("synth", Status),
            ("fail", None),
        ],
        Sub::Pass => &[
            ("fetch", None),
            ("restart", None),
            ("synth", Status),
            ("fail", None),
        ],
        Sub::Purge => &[("restart", None), ("synth", Status), ("fail", None)],
        Sub::Deliver => &[
            ("deliver", None),
            ("restart", None),
            ("synth", Status),
            ("fail", None),
        ],
        Sub::Synth => &[("deliver", None), ("restart", None), ("fail", None)],
        Sub::BackendFetch => &[
            ("fetch", None),
            ("abandon", None),
            ("error", Status),
            ("fail", None),
        ],
        Sub::BackendResponse => &[
            ("deliver", None),
            ("retry", None),
            ("abandon", None),
            ("pass", Ttl),
            ("error", Status),
            ("fail", None),
        ],
        Sub::BackendError => &[
            ("deliver", None),
            ("retry", None),
            ("abandon", None),
            ("fail", None),
        ],
        Sub::Pipe => &[("pipe", None), ("synth", Status), ("fail", None)],
        Sub::Init => &[("ok", None), ("fail", None)],
        Sub::Fini => &[("ok", None)],
    }
}

fn plain_action(name: &str) -> Option<Action> {
    Some(match name {
        "hash" => Action::Hash,
        "lookup" => Action::Lookup,
        "pass" => Action::Pass,
        "pipe" => Action::Pipe,
        "purge" => Action::Purge,
        "ban" => Action::Ban,
        "restart" => Action::Restart,
        "fetch" => Action::Fetch,
        "miss" => Action::Miss,
        "deliver" => Action::Deliver,
        "retry" => Action::Retry,
        "abandon" => Action::Abandon,
        "fail" => Action::Fail,
        "ok" => Action::Ok,
        _ => return None,
    })
}

struct CallSite<'p> {
    callee: usize,
    ident: &'p Ident,
    /// Block nesting at the call.
    depth: usize,
}

struct SubInfo<'p> {
    def: &'p ast::SubDef,
    /// The bodies of later definitions of the same built-in subroutine,
    /// run after the first's, in order (Varnish concatenates them).
    more: Vec<&'p ast::Block>,
    builtin: Option<Sub>,
    calls: Vec<CallSite<'p>>,
    /// Index among the custom subroutines.
    custom: usize,
}

struct Checker<'p> {
    src: &'p str,
    /// For notes pointing into other files.
    map: SourceMap,
    file: &'p str,
    subs: Vec<SubInfo<'p>>,
    sub_names: HashMap<&'p str, usize>,
    acl_names: HashMap<&'p str, usize>,
    acls: Vec<CompiledAcl>,
    /// The declared backends (`std.healthy(name)`).
    backend_names: Vec<String>,
    /// The directors made in `vcl_init`.
    directors: crate::directors::Collected,
    /// The `vcl 4.x;` version (`std.syntax`).
    version: f64,
    /// Errors of statements checked so far: a statement in error is left
    /// out and the next one checked, so one compile reports them all (VCL
    /// has no local names, so one error does not cause others).
    stmt_errors: std::cell::RefCell<Vec<Error>>,
    /// The backends `d.backend("host")` of vmod dynamic stand for, made as
    /// the calls are checked.
    dynamic_backends: std::cell::RefCell<Vec<crate::decl::Backend>>,
    /// Every function called anywhere (`Program::calls`).
    used: std::cell::RefCell<Vec<funcs::Func>>,
    /// The vmods imported (`cookie.get` needs `import cookie;`).
    imported: Vec<&'p str>,
}

/// The subroutine being checked and where it runs.
struct Scope<'s> {
    name: &'s str,
    builtin: bool,
    mask: Mask,
}

/// Checks a parsed policy and builds the program.
pub(crate) fn check(
    policy: &ast::Policy,
    src: &str,
    file: &str,
    map: SourceMap,
) -> Result<Program, Vec<Error>> {
    let mut errors = Vec::new();
    let (mut backends, probes) = crate::decl::check(policy, src, file, &map, &mut errors);
    let backend_names: Vec<String> = backends.iter().map(|b| b.name.clone()).collect();
    let directors = crate::directors::collect(policy, src, file, &backend_names, &mut errors);
    let mut checker = Checker {
        src,
        map: map.clone(),
        file,
        subs: Vec::new(),
        sub_names: HashMap::new(),
        acl_names: HashMap::new(),
        acls: Vec::new(),
        backend_names,
        directors,
        version: policy
            .version
            .as_ref()
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(4.1),
        stmt_errors: std::cell::RefCell::new(Vec::new()),
        dynamic_backends: std::cell::RefCell::new(Vec::new()),
        used: std::cell::RefCell::new(Vec::new()),
        imported: Vec::new(),
    };
    checker.imports(policy, &mut errors);
    // The call graph must be whole to check the bodies: an error here
    // stops the check.
    let structure = checker
        .declarations(policy)
        .and_then(|()| checker.collect_calls(&mut errors))
        .and_then(|()| checker.post_order())
        .and_then(|order| {
            let masks = checker.masks(&order)?;
            checker.depths(&order)?;
            Ok(masks)
        });
    let masks = match structure {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return Err(in_file_order(errors));
        }
    };

    let mut subs: Vec<Option<Vec<ir::Stmt>>> = vec![None; Sub::ALL.len()];
    let mut customs: Vec<Vec<ir::Stmt>> = Vec::new();
    for (i, info) in checker.subs.iter().enumerate() {
        let scope = Scope {
            name: &info.def.name.name,
            builtin: info.builtin.is_some(),
            mask: masks[i],
        };
        // An error in one body does not stop the others being checked.
        let mut body = Vec::new();
        for block in std::iter::once(&info.def.body).chain(info.more.iter().copied()) {
            match checker.block(block, &scope) {
                Ok(stmts) => body.extend(stmts),
                Err(e) => errors.push(e),
            }
        }
        match info.builtin {
            Some(sub) => subs[sub.index()] = Some(body),
            None => customs.push(body),
        }
    }
    errors.append(&mut checker.stmt_errors.borrow_mut());
    if !errors.is_empty() {
        return Err(in_file_order(errors));
    }
    // After the declared ones: the first declared stays the default.
    backends.append(&mut checker.dynamic_backends.borrow_mut());
    let lowered = std::sync::Arc::new(crate::eval::Lowered::of(&subs, &customs));
    Ok(Program {
        file: file.to_string(),
        map,
        acls: checker.acls,
        backends,
        probes,
        directors: checker.directors.directors,
        globals: crate::vmods::Globals::default(),
        imported: checker.imported.iter().map(|s| s.to_string()).collect(),
        used: checker.used.take(),
        deliver_early: crate::eval::DeliverEarly::of(&subs, &|_| true),
        subs,
        lowered,
    })
}

/// Sorted by place, at most [`MAX_ERRORS`].
fn in_file_order(mut errors: Vec<Error>) -> Vec<Error> {
    errors.sort_by_key(Error::offset);
    errors.truncate(MAX_ERRORS);
    errors
}

/// `vcl_builtin_recv` → `vcl_recv`: a call of Varnish 7's split built-in
/// subroutine of that hook.
fn builtin_call(name: &str) -> Option<Sub> {
    let rest = name.strip_prefix("vcl_builtin_")?;
    Sub::ALL
        .into_iter()
        .find(|s| s.name().strip_prefix("vcl_") == Some(rest))
}

fn visit_calls<'p>(block: &'p ast::Block, depth: usize, out: &mut Vec<(&'p Ident, usize)>) {
    for stmt in &block.stmts {
        match &stmt.kind {
            StmtKind::Call(name) => out.push((name, depth)),
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (_, b) in branches {
                    visit_calls(b, depth + 1, out);
                }
                if let Some(b) = otherwise {
                    visit_calls(b, depth + 1, out);
                }
            }
            _ => {}
        }
    }
}

impl<'p> Checker<'p> {
    fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        Error::new(self.src, self.file, span, message, label)
    }

    // ----- declarations and the call graph -----

    /// The built-in vmods (`crate::vmods::VMODS`) are accepted and
    /// remembered (`import std;` is optional, the others are needed to call
    /// their functions); any other vmod is an error naming it.
    fn imports(&mut self, policy: &'p ast::Policy, errors: &mut Vec<Error>) {
        for item in &policy.items {
            let Item::Import(name) = item else { continue };
            if crate::vmods::VMODS.contains(&name.name.as_str()) {
                self.imported.push(name.name.as_str());
                continue;
            }
            errors.push(
                self.error(
                    name.span,
                    format!("vmod `{}` is not built in", name.name),
                    "vcl-lite loads no vmods",
                )
                .note(format!(
                    "built in: {} (`std` needs no import; their functions are in vcl-lite's README)",
                    crate::vmods::VMODS.join(", ")
                )),
            );
        }
    }

    fn declarations(&mut self, policy: &'p ast::Policy) -> Result<(), Error> {
        let mut customs = 0;
        for item in &policy.items {
            match item {
                // Checked by `imports`.
                Item::Import(_) => {}
                Item::Acl(acl) => {
                    let name = acl.name.name.as_str();
                    if let Some(&first) = self.acl_names.get(name) {
                        let first_span = policy_acl_span(policy, first);
                        return Err(self
                            .error(
                                acl.name.span,
                                format!("duplicate ACL `{name}`"),
                                "defined again here",
                            )
                            .note(format!(
                                "`{name}` is first defined on {}",
                                self.map.line_ref(first_span.start)
                            )));
                    }
                    let compiled = CompiledAcl::compile(acl, self.src, self.file)?;
                    self.acl_names.insert(name, self.acls.len());
                    self.acls.push(compiled);
                }
                Item::Backend(_) | Item::Probe(_) => {}
                Item::Sub(def) => {
                    let name = def.name.name.as_str();
                    let builtin = Sub::from_name(name);
                    if let Some(rest) = name.strip_prefix("vcl_builtin_") {
                        return Err(self.error(
                            def.name.span,
                            format!("`{name}` cannot be defined"),
                            format!("it is vcl-lite's built-in `vcl_{rest}`: `call` it"),
                        ));
                    }
                    if builtin.is_none() && name.starts_with("vcl_") {
                        let label = match closest(name, Sub::ALL.iter().map(|s| s.name())) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                "names starting with `vcl_` are reserved for built-in subroutines"
                                    .to_string()
                            }
                        };
                        return Err(self.error(
                            def.name.span,
                            format!("unknown built-in subroutine `{name}`"),
                            label,
                        ));
                    }
                    if let Some(&first) = self.sub_names.get(name) {
                        if builtin.is_some() {
                            self.subs[first].more.push(&def.body);
                            continue;
                        }
                        let first_span = self.subs[first].def.name.span;
                        return Err(self
                            .error(
                                def.name.span,
                                format!("duplicate subroutine `{name}`"),
                                "defined again here",
                            )
                            .note(format!(
                                "`{name}` is first defined on {}",
                                self.map.line_ref(first_span.start)
                            )));
                    }
                    self.sub_names.insert(name, self.subs.len());
                    self.subs.push(SubInfo {
                        def,
                        more: Vec::new(),
                        builtin,
                        calls: Vec::new(),
                        custom: if builtin.is_none() {
                            customs += 1;
                            customs - 1
                        } else {
                            usize::MAX
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// The calls of each subroutine. Every bad call is reported (all but
    /// the last into `errors`, the last as `Err`): the graph is not whole.
    fn collect_calls(&mut self, errors: &mut Vec<Error>) -> Result<(), Error> {
        let mut bad = Vec::new();
        for i in 0..self.subs.len() {
            let mut found = Vec::new();
            visit_calls(&self.subs[i].def.body, 0, &mut found);
            for more in &self.subs[i].more {
                visit_calls(more, 0, &mut found);
            }
            let mut calls = Vec::new();
            for (ident, depth) in found {
                let name = ident.name.as_str();
                if builtin_call(name).is_some() {
                    continue;
                }
                if Sub::from_name(name).is_some() {
                    bad.push(self.error(
                        ident.span,
                        format!("cannot call `{name}`"),
                        "built-in subroutines are run by lacquer, not called",
                    ));
                    continue;
                }
                match self.sub_names.get(name) {
                    Some(&callee) if self.subs[callee].builtin.is_some() => bad.push(self.error(
                        ident.span,
                        format!("cannot call `{name}`"),
                        "built-in subroutines are run by lacquer, not called",
                    )),
                    Some(&callee) => calls.push(CallSite {
                        callee,
                        ident,
                        depth,
                    }),
                    None => {
                        let customs = self
                            .subs
                            .iter()
                            .filter(|s| s.builtin.is_none())
                            .map(|s| s.def.name.name.as_str());
                        let label = match closest(name, customs) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => format!("no `sub {name}` is defined"),
                        };
                        bad.push(self.error(
                            ident.span,
                            format!("unknown subroutine `{name}`"),
                            label,
                        ));
                    }
                }
            }
            self.subs[i].calls = calls;
        }
        match bad.pop() {
            Some(last) => {
                errors.extend(bad);
                Err(last)
            }
            None => Ok(()),
        }
    }

    /// Post-order of the call graph (callees before callers); a cycle is an
    /// error. Iterative, so long call chains cannot overflow the stack.
    fn post_order(&self) -> Result<Vec<usize>, Error> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            Open,
            Done,
        }
        let mut state = vec![State::New; self.subs.len()];
        let mut order = Vec::with_capacity(self.subs.len());
        for root in 0..self.subs.len() {
            if state[root] != State::New {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = State::Open;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(call) = self.subs[node].calls.get(*next) {
                    *next += 1;
                    match state[call.callee] {
                        State::New => {
                            state[call.callee] = State::Open;
                            stack.push((call.callee, 0));
                        }
                        State::Open => {
                            let from = stack
                                .iter()
                                .position(|(n, _)| *n == call.callee)
                                .unwrap_or(0);
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| format!("`{}`", self.subs[*n].def.name.name))
                                .collect();
                            path.push(format!("`{}`", call.ident.name));
                            return Err(self
                                .error(
                                    call.ident.span,
                                    format!("recursive call of `{}`", call.ident.name),
                                    format!("this call closes the loop {}", path.join(" → ")),
                                )
                                .note("subroutines cannot call themselves, directly or through others"));
                        }
                        State::Done => {}
                    }
                } else {
                    state[node] = State::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// The built-in subroutines each subroutine runs in.
    fn masks(&self, order: &[usize]) -> Result<Vec<Mask>, Error> {
        let mut masks: Vec<Mask> = self
            .subs
            .iter()
            .map(|s| s.builtin.map_or(Mask::NONE, Sub::bit))
            .collect();
        for &node in order.iter().rev() {
            for call in &self.subs[node].calls {
                masks[call.callee] = masks[call.callee].union(masks[node]);
            }
        }
        for (i, info) in self.subs.iter().enumerate() {
            if masks[i].is_empty() {
                return Err(self
                    .error(
                        info.def.name.span,
                        format!("subroutine `{}` is never called", info.def.name.name),
                        "no built-in subroutine calls it, directly or through others",
                    )
                    .note(
                        "`call` it, or remove it (as in Varnish, unused subroutines are refused)",
                    ));
            }
        }
        Ok(masks)
    }

    /// Bounds call chains and total nesting, so running cannot overflow.
    fn depths(&self, order: &[usize]) -> Result<(), Error> {
        let mut chain = vec![0usize; self.subs.len()];
        let mut nest = vec![0usize; self.subs.len()];
        for &node in order {
            for call in &self.subs[node].calls {
                let c = 1 + chain[call.callee];
                if c > MAX_CALL_DEPTH {
                    return Err(self.error(
                        call.ident.span,
                        "call chain too deep",
                        format!("more than {MAX_CALL_DEPTH} nested `call`s from here"),
                    ));
                }
                let n = call.depth + 1 + nest[call.callee];
                if n > MAX_NESTING {
                    return Err(self.error(
                        call.ident.span,
                        "subroutine calls nest too deeply",
                        format!("more than {MAX_NESTING} levels of blocks and calls from here"),
                    ));
                }
                chain[node] = chain[node].max(c);
                nest[node] = nest[node].max(n);
            }
        }
        Ok(())
    }

    // ----- statements -----

    /// Where a custom subroutine runs, as a note.
    fn context_note(&self, err: Error, scope: &Scope, sub: Sub) -> Error {
        if scope.builtin {
            err
        } else {
            err.note(format!("`{}` is called from {}", scope.name, sub.name()))
        }
    }

    /// The statements of a block; those in error are recorded in
    /// `stmt_errors` and left out.
    fn block(&self, block: &ast::Block, scope: &Scope) -> Result<Vec<ir::Stmt>, Error> {
        let mut out = Vec::with_capacity(block.stmts.len());
        for stmt in &block.stmts {
            // A director's setup, read when loading: it does nothing at run
            // time.
            if self.directors.consumed.contains(&stmt.span.start) {
                continue;
            }
            match self.stmt(stmt, scope) {
                Ok(s) => out.push(s),
                Err(e) => self.stmt_errors.borrow_mut().push(e),
            }
        }
        Ok(out)
    }

    fn stmt(&self, stmt: &ast::Stmt, scope: &Scope) -> Result<ir::Stmt, Error> {
        Ok(match &stmt.kind {
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let mut out = Vec::with_capacity(branches.len());
                for (cond, body) in branches {
                    out.push((self.condition(cond, scope)?, self.block(body, scope)?));
                }
                let otherwise = match otherwise {
                    Some(b) => self.block(b, scope)?,
                    None => Vec::new(),
                };
                let fallible = out.iter().any(|(cond, _)| cond.may_fail());
                ir::Stmt::If {
                    branches: out,
                    otherwise,
                    at: stmt.span.start,
                    fallible,
                }
            }
            StmtKind::Set { target, value } => {
                let (def, var) = self.variable(target)?;
                self.writable(def, target, scope, "set")?;
                let value = if def.ty == Type::String {
                    match self.text(value, scope)? {
                        ir::Expr::Str(text) => {
                            return Ok(ir::Stmt::SetText {
                                var,
                                text: Literal::new(text),
                                at: stmt.span.start,
                            })
                        }
                        other => other,
                    }
                } else {
                    let (e, ty) = self.expr(value, scope)?;
                    self.coerce(e, ty, def.ty, value)?
                };
                ir::Stmt::Set {
                    var,
                    ty: def.ty,
                    fallible: value.may_fail(),
                    value,
                    at: stmt.span.start,
                }
            }
            StmtKind::Unset(target) => {
                let (def, var) = self.variable(target)?;
                if !def.is_header() {
                    return Err(self.error(
                        target.span,
                        format!("`{}` cannot be unset", target.name),
                        "only headers (`req.http.*`, `resp.http.*`, …) can be unset; give it a value with `set`",
                    ));
                }
                self.writable(def, target, scope, "unset")?;
                ir::Stmt::Unset(var)
            }
            StmtKind::Return(action) => {
                let action = self.action(action, scope)?;
                ir::Stmt::Return {
                    fallible: action.may_fail(),
                    action,
                    at: stmt.span.start,
                }
            }
            StmtKind::Call(name) if builtin_call(&name.name).is_some() => {
                let sub = builtin_call(&name.name).unwrap_or(Sub::Recv);
                self.only_in(scope, name.span, &format!("call {}", name.name), sub.bit())?;
                ir::Stmt::Builtin(sub)
            }
            StmtKind::Call(name) => {
                let index = self.sub_names.get(name.name.as_str()).copied().unwrap_or(0);
                ir::Stmt::Call(self.subs.get(index).map_or(0, |s| s.custom))
            }
            StmtKind::HashData(e) => {
                self.only_in(scope, stmt.span, "hash_data", Mask::of(&[Sub::Hash]))?;
                let e = self.text(e, scope)?;
                let at = e.may_fail().then_some(stmt.span.start);
                ir::Stmt::HashData(e, at)
            }
            StmtKind::Synthetic(e) => {
                self.only_in(
                    scope,
                    stmt.span,
                    "synthetic",
                    Mask::of(&[Sub::Synth, Sub::BackendError]),
                )?;
                let e = self.text(e, scope)?;
                let at = e.may_fail().then_some(stmt.span.start);
                ir::Stmt::Synthetic(e, at)
            }
            StmtKind::New { name, .. } => {
                self.only_in(scope, stmt.span, "new", Sub::Init.bit())?;
                return Err(self.error(
                    stmt.span,
                    format!("`new {}` is inside a block", name.name),
                    "objects are made at the top level of vcl_init, when the policy loads",
                ));
            }
            StmtKind::CallFunction { name, args } if self.director_of(&name.name).is_some() => {
                return Err(self.director_statement(name, args, stmt.span, scope))
            }
            StmtKind::CallFunction { name, args } => {
                let def = self.function(name)?;
                if def.ret.is_some() && !def.effect {
                    return Err(self.error(
                        name.span,
                        format!("the result of `{}` is not used", def.name),
                        "it has no side effects: use the result, as in `set … = f(…);`",
                    ));
                }
                let call = self.call_ir(def, name, args, stmt.span, scope)?;
                match call {
                    ir::Expr::Call(call) => ir::Stmt::Effect {
                        call: *call,
                        at: stmt.span.start,
                    },
                    _ => {
                        return Err(self.error(
                            name.span,
                            format!("`{}` cannot be called as a statement", def.name),
                            "use its result",
                        ))
                    }
                }
            }
        })
    }

    fn only_in(&self, scope: &Scope, span: Span, what: &str, allowed: Mask) -> Result<(), Error> {
        if let Some(sub) = scope.mask.subs().find(|s| !allowed.contains(*s)) {
            let err = self.error(
                span,
                format!("`{what}` is not allowed in {}", sub.name()),
                format!("`{what}` can be used only in {}", allowed.describe()),
            );
            return Err(self.context_note(err, scope, sub));
        }
        Ok(())
    }

    fn action(&self, action: &ast::ActionExpr, scope: &Scope) -> Result<ActionIr, Error> {
        let name = action.name.name.as_str();
        let known = Sub::ALL
            .iter()
            .any(|s| actions(*s).iter().any(|(a, _)| *a == name));
        let first = scope.mask.subs().next().unwrap_or(Sub::Recv);
        let listing = |sub: Sub| {
            let names: Vec<&str> = actions(sub).iter().map(|(a, _)| *a).collect();
            let list = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                _ => names.join(""),
            };
            format!("{} can return {list}", sub.name())
        };
        if !known {
            let label = match closest(name, actions(first).iter().map(|(a, _)| *a)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => listing(first),
            };
            return Err(self.error(action.name.span, format!("unknown action `{name}`"), label));
        }
        let mut spec = None;
        for sub in scope.mask.subs() {
            match actions(sub).iter().find(|(a, _)| *a == name) {
                Some((_, args)) if spec.is_none() || spec == Some(*args) => spec = Some(*args),
                _ => {
                    let err = self.error(
                        action.span,
                        format!("`return ({name})` is not allowed in {}", sub.name()),
                        listing(sub),
                    );
                    return Err(self.context_note(err, scope, sub));
                }
            }
        }
        let args = &action.args;
        match spec.unwrap_or(ActionArgs::None) {
            ActionArgs::None => {
                if name == "fail" && args.len() == 1 {
                    // Varnish 7's `return (fail("why"))`: the reason is
                    // checked; the failure is the same as without it.
                    self.text(&args[0], scope)?;
                    return Ok(ActionIr::Plain(Action::Fail));
                }
                if !args.is_empty() {
                    return Err(self.error(
                        action.span,
                        format!("`{name}` takes no arguments"),
                        format!("write `return ({name});`"),
                    ));
                }
                Ok(ActionIr::Plain(plain_action(name).unwrap_or(Action::Fail)))
            }
            ActionArgs::Status => {
                if args.is_empty() || args.len() > 2 {
                    return Err(self.error(
                        action.span,
                        format!("`{name}` takes a status and an optional reason"),
                        format!("write `return ({name}(404));` or `return ({name}(404, \"Not Found\"));`"),
                    ));
                }
                let (s, ty) = self.expr(&args[0], scope)?;
                let status = self.coerce(s, ty, Type::Int, &args[0])?;
                if let ExprKind::Int(code) = args[0].kind {
                    if !(100..=999).contains(&code) {
                        return Err(self.error(
                            args[0].span,
                            format!("bad status {code}"),
                            "a status is between 100 and 999",
                        ));
                    }
                }
                let reason = match args.get(1) {
                    Some(r) => Some(Box::new(self.text(r, scope)?)),
                    None => None,
                };
                let status = Box::new(status);
                Ok(if name == "synth" {
                    ActionIr::Synth { status, reason }
                } else {
                    ActionIr::Error { status, reason }
                })
            }
            ActionArgs::Ttl => {
                if args.is_empty() {
                    // As Varnish: hit-for-pass for the TTL the answer has.
                    return Ok(ActionIr::PassFor(ir::Expr::Var(Var::BerespTtl)));
                }
                if args.len() != 1 {
                    return Err(self.error(
                        action.span,
                        format!("`{name}` here takes a duration"),
                        format!("write `return ({name}(10s));` to make a hit-for-pass object"),
                    ));
                }
                let (t, ty) = self.expr(&args[0], scope)?;
                Ok(ActionIr::PassFor(self.coerce(
                    t,
                    ty,
                    Type::Duration,
                    &args[0],
                )?))
            }
        }
    }

    // ----- variables -----

    fn variable(&self, ident: &Ident) -> Result<(&'static VarDef, Var), Error> {
        if let Some(found) = vars::lookup(&ident.name) {
            return Ok(found);
        }
        if self.acl_names.contains_key(ident.name.as_str()) {
            return Err(self.error(
                ident.span,
                format!("`{}` is an ACL, not a variable", ident.name),
                format!("match an address against it: `client.ip ~ {}`", ident.name),
            ));
        }
        Err(self.error(
            ident.span,
            format!("unknown variable `{}`", ident.name),
            vars::suggest_var(&ident.name),
        ))
    }

    /// The same variable under the prefix that works in `sub`
    /// (`req.url` → `bereq.url` in backend subroutines).
    fn counterpart(&self, name: &str, sub: Sub, write: bool) -> Option<String> {
        const PAIRS: &[(&str, &str)] = &[
            ("req.", "bereq."),
            ("bereq.", "req."),
            ("beresp.", "resp."),
            ("resp.", "beresp."),
            ("obj.", "resp."),
            ("obj.", "beresp."),
            ("beresp.", "obj."),
            ("resp.", "obj."),
        ];
        PAIRS.iter().find_map(|(from, to)| {
            let rest = name.strip_prefix(from)?;
            let alt = format!("{to}{rest}");
            let (def, _) = vars::lookup(&alt)?;
            let mask = if write { def.write } else { def.read };
            mask.contains(sub).then_some(alt)
        })
    }

    fn readable(&self, def: &VarDef, ident: &Ident, scope: &Scope) -> Result<(), Error> {
        let Some(sub) = scope.mask.subs().find(|s| !def.read.contains(*s)) else {
            return Ok(());
        };
        let label = match self.counterpart(&ident.name, sub, false) {
            Some(alt) => format!("did you mean `{alt}`?"),
            None => format!("readable only in {}", describe(def.read)),
        };
        let err = self.error(
            ident.span,
            format!("`{}` is not available in {}", ident.name, sub.name()),
            label,
        );
        Err(self.context_note(err, scope, sub))
    }

    fn writable(
        &self,
        def: &VarDef,
        ident: &Ident,
        scope: &Scope,
        verb: &str,
    ) -> Result<(), Error> {
        if def.write.is_empty() {
            let err = self.error(
                ident.span,
                format!("`{}` is read-only", ident.name),
                "it can be read, but not set",
            );
            return Err(
                match self.counterpart(
                    &ident.name,
                    scope.mask.subs().next().unwrap_or(Sub::Recv),
                    true,
                ) {
                    Some(alt) => err.note(format!("did you mean `{alt}`?")),
                    None => err,
                },
            );
        }
        let Some(sub) = scope.mask.subs().find(|s| !def.write.contains(*s)) else {
            return Ok(());
        };
        let label = match self.counterpart(&ident.name, sub, true) {
            Some(alt) => format!("did you mean `{alt}`?"),
            None => format!("it can be set only in {}", describe(def.write)),
        };
        let err = self.error(
            ident.span,
            format!("`{}` cannot be {verb} in {}", ident.name, sub.name()),
            label,
        );
        Err(self.context_note(err, scope, sub))
    }

    // ----- expressions -----

    fn function(&self, name: &Ident) -> Result<&'static FuncDef, Error> {
        if let Some(def) = funcs::lookup(&name.name) {
            let vmod = def.name.split_once('.').map_or("", |(v, _)| v);
            if !vmod.is_empty() && vmod != "std" && !self.imported.contains(&vmod) {
                return Err(self.error(
                    name.span,
                    format!("vmod `{vmod}` is not imported"),
                    format!("add `import {vmod};` at the top of the policy"),
                ));
            }
            return Ok(def);
        }
        if let Some(e) = self.not_an_object(name) {
            return Err(e);
        }
        let label = match name.name.as_str() {
            "hash_data" | "synthetic" => {
                format!("`{}` is a statement: `{}(…);`", name.name, name.name)
            }
            n => match closest(n, FUNCS.iter().map(|f| f.name)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => match n.split_once('.') {
                    Some((vmod, _)) if crate::vmods::VMODS.contains(&vmod) => {
                        format!("not in vcl-lite's vmod {vmod} (see the function table in the README)")
                    }
                    _ => "the functions are `regsub`, `regsuball`, `ban` and those of the built-in vmods (see the README)".to_string(),
                },
            },
        };
        Err(self.error(
            name.span,
            format!("unknown function `{}`", name.name),
            label,
        ))
    }

    fn regex_literal(&self, e: &ast::Expr, what: &str) -> Result<Pattern, Error> {
        let ExprKind::Str(pattern) = &e.kind else {
            return Err(self.error(
                e.span,
                format!("{what} must be a string literal"),
                "regular expressions are compiled when the policy is loaded",
            ));
        };
        Pattern::new(pattern)
            .map_err(|reason| self.error(e.span, "invalid regular expression", reason))
    }

    /// A function call in an expression.
    fn call(
        &self,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
    ) -> Result<(ir::Expr, Type), Error> {
        if let Some((director, method)) = self.director_of(&name.name) {
            return self.director_call(director, method, name, args, span, scope);
        }
        if let Some(called) = self.dynamic_call(name, args) {
            return called;
        }
        let def = self.function(name)?;
        let Some(ret) = def.ret else {
            return Err(self.error(
                span,
                format!("`{}` returns nothing", def.name),
                format!("it is a statement: `{}(…);`", def.name),
            ));
        };
        Ok((self.call_ir(def, name, args, span, scope)?, ret))
    }

    /// Matches the arguments with the parameters (positional, then named;
    /// defaults for the others) and checks their types.
    fn call_ir(
        &self,
        def: &'static FuncDef,
        name: &Ident,
        args: &[ast::Arg],
        span: Span,
        scope: &Scope,
    ) -> Result<ir::Expr, Error> {
        self.only_in(scope, name.span, def.name, def.only)?;
        {
            let mut used = self.used.borrow_mut();
            if !used.contains(&def.func) {
                used.push(def.func);
            }
        }
        let expected = || format!("expected `{}`", def.signature());
        let mut slots: Vec<Option<&ast::Expr>> = vec![None; def.params.len()];
        for (i, arg) in args.iter().enumerate() {
            let index = match &arg.name {
                None if i < def.params.len() => i,
                None => {
                    let n = def.params.len();
                    let plural = if n == 1 { "" } else { "s" };
                    return Err(self.error(
                        span,
                        format!(
                            "`{}` takes {n} argument{plural}, found {}",
                            def.name,
                            args.len()
                        ),
                        expected(),
                    ));
                }
                Some(param) => match def.params.iter().position(|p| p.name == param.name) {
                    Some(index) => index,
                    None => {
                        let label = match closest(&param.name, def.params.iter().map(|p| p.name)) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None if def.params.is_empty() => "it takes no arguments".to_string(),
                            None => format!("its parameters are {}", def.names()),
                        };
                        return Err(self.error(
                            param.span,
                            format!("`{}` has no parameter `{}`", def.name, param.name),
                            label,
                        ));
                    }
                },
            };
            if slots[index].is_some() {
                let at = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
                return Err(self.error(
                    at,
                    format!("`{}` is given twice", def.params[index].name),
                    expected(),
                ));
            }
            slots[index] = Some(&arg.value);
        }
        let all_required = def
            .params
            .iter()
            .all(|p| p.default == funcs::Default::Required);
        if all_required && args.iter().all(|a| a.name.is_none()) && args.len() < def.params.len() {
            let n = def.params.len();
            let plural = if n == 1 { "" } else { "s" };
            return Err(self.error(
                span,
                format!(
                    "`{}` takes {n} argument{plural}, found {}",
                    def.name,
                    args.len()
                ),
                expected(),
            ));
        }
        for (param, slot) in def.params.iter().zip(&slots) {
            if slot.is_none() && param.default == funcs::Default::Required {
                return Err(self.error(
                    span,
                    format!("`{}` needs its argument `{}`", def.name, param.name),
                    expected(),
                ));
            }
        }
        if !def.one_of.is_empty() {
            let given: Vec<&str> = def
                .params
                .iter()
                .zip(&slots)
                .filter(|(p, s)| s.is_some() && def.one_of.contains(&p.name))
                .map(|(p, _)| p.name)
                .collect();
            if given.len() != 1 {
                let what = if given.is_empty() {
                    format!("`{}` needs one of {}", def.name, def.one_of.join(", "))
                } else {
                    format!(
                        "`{}` takes only one of {}; found {}",
                        def.name,
                        def.one_of.join(", "),
                        given.join(" and ")
                    )
                };
                return Err(self.error(span, what, expected()));
            }
        }
        let note = |e: Error, p: &funcs::Param| {
            e.note(format!(
                "`{}` is the {} argument of `{}`",
                p.name,
                p.ty.name(),
                def.signature()
            ))
        };
        let mut regex = None;
        let mut out = Vec::with_capacity(def.params.len());
        for (param, slot) in def.params.iter().zip(&slots) {
            let Some(e) = slot else {
                out.push(match param.default {
                    funcs::Default::Str(s) => ir::Arg::Val(ir::Expr::Str(s.into()), Type::String),
                    funcs::Default::Bool(b) => ir::Arg::Val(ir::Expr::Bool(b), Type::Bool),
                    funcs::Default::Dur(d) => ir::Arg::Val(ir::Expr::Dur(d), Type::Duration),
                    _ => ir::Arg::Absent,
                });
                continue;
            };
            let arg = match param.ty {
                ParamType::Regex
                    if matches!(def.func, funcs::Func::Regsub | funcs::Func::Regsuball) =>
                {
                    regex = Some(self.regex_literal(e, "the regular expression")?);
                    ir::Arg::Absent
                }
                ParamType::Regex => ir::Arg::Regex(std::sync::Arc::new(
                    self.regex_literal(e, "the regular expression")?,
                )),
                ParamType::Val(Type::String) => ir::Arg::Val(self.text(e, scope)?, Type::String),
                ParamType::Val(ty) => {
                    let (x, found) = self.expr(e, scope)?;
                    let x = self
                        .coerce(x, found, ty, e)
                        .map_err(|err| note(err, param))?;
                    ir::Arg::Val(x, ty)
                }
                ParamType::Header | ParamType::HeaderIn => {
                    let ExprKind::Name(ident) = &e.kind else {
                        return Err(note(
                            self.error(
                                e.span,
                                "expected a header",
                                "write a header variable, as in `req.http.Cookie`",
                            ),
                            param,
                        ));
                    };
                    let (vdef, var) = self.variable(ident)?;
                    if !vdef.is_header() {
                        return Err(note(
                            self.error(
                                ident.span,
                                format!("`{}` is not a header", ident.name),
                                "write a header variable, as in `req.http.Cookie`",
                            ),
                            param,
                        ));
                    }
                    if param.ty == ParamType::Header {
                        self.writable(vdef, ident, scope, "changed")?;
                    } else {
                        self.readable(vdef, ident, scope)?;
                    }
                    ir::Arg::Header(var)
                }
                ParamType::Http => {
                    let which = match &e.kind {
                        ExprKind::Name(i) if i.name == "req" => Some((HttpPart::Req, vars::CLIENT)),
                        ExprKind::Name(i) if i.name == "bereq" => {
                            Some((HttpPart::Bereq, vars::BACKEND))
                        }
                        _ => None,
                    };
                    let Some((which, mask)) = which else {
                        return Err(note(
                            self.error(
                                e.span,
                                "expected `req` or `bereq`",
                                "`std.rollback(req)` puts the request back as it was received",
                            ),
                            param,
                        ));
                    };
                    let what = format!(
                        "{}({})",
                        def.name,
                        if which == HttpPart::Req {
                            "req"
                        } else {
                            "bereq"
                        }
                    );
                    self.only_in(scope, e.span, &what, mask)?;
                    ir::Arg::Http(which)
                }
                ParamType::Backend => {
                    let bare = match &e.kind {
                        ExprKind::Name(ident) if vars::lookup(&ident.name).is_none() => Some(ident),
                        _ => None,
                    };
                    let Some(ident) = bare else {
                        let (x, found) = self.expr(e, scope)?;
                        if found != Type::Backend {
                            return Err(note(
                                self.error(
                                    e.span,
                                    "expected a backend name",
                                    "name a `backend` or director declared in the policy, or `req.backend_hint`",
                                ),
                                param,
                            ));
                        }
                        out.push(ir::Arg::Val(x, Type::Backend));
                        continue;
                    };
                    if !self.is_backend(&ident.name) {
                        let label = match closest(
                            &ident.name,
                            self.backend_names.iter().map(String::as_str),
                        ) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => "name a `backend` declared in the policy".to_string(),
                        };
                        return Err(self.error(
                            ident.span,
                            format!("unknown backend `{}`", ident.name),
                            label,
                        ));
                    }
                    ir::Arg::Val(ir::Expr::Str(ident.name.as_str().into()), Type::Backend)
                }
            };
            out.push(arg);
        }
        if let Some(re) = regex {
            let mut vals = out.into_iter().filter_map(|a| match a {
                ir::Arg::Val(x, _) => Some(x),
                _ => None,
            });
            let (Some(subject), Some(sub)) = (vals.next(), vals.next()) else {
                return Err(self.error(span, "missing argument", "internal error"));
            };
            let sub = match sub {
                ir::Expr::Str(s) => Replacement::Fixed(ir::parse_replacement(&s)),
                other => Replacement::Dynamic(Box::new(other)),
            };
            return Ok(ir::Expr::Regsub {
                subject: Box::new(subject),
                re: std::sync::Arc::new(re),
                sub,
                all: def.func == funcs::Func::Regsuball,
            });
        }
        if def.func == funcs::Func::Syntax {
            // Known when loading: the policy's own version.
            return match out.first() {
                Some(ir::Arg::Val(ir::Expr::Real(r), _)) => {
                    Ok(ir::Expr::Bool(self.version >= *r - 1e-9))
                }
                _ => Err(self.error(
                    span,
                    "`std.syntax` takes a version number",
                    "write it as a literal: `std.syntax(4.1)`",
                )),
            };
        }
        Ok(ir::Expr::Call(Box::new(ir::Call {
            func: def.func,
            args: out.into_boxed_slice(),
        })))
    }

    fn coerce(&self, e: ir::Expr, from: Type, to: Type, at: &ast::Expr) -> Result<ir::Expr, Error> {
        if from == to {
            return Ok(e);
        }
        if to == Type::String {
            return Ok(ir::Expr::ToStr(Box::new(e), from));
        }
        if (from, to) == (Type::Int, Type::Real) {
            return Ok(match e {
                ir::Expr::Int(i) => ir::Expr::Real(i as f64),
                other => ir::Expr::IntToReal(Box::new(other)),
            });
        }
        if let (ExprKind::Str(text), Type::Ip) = (&at.kind, to) {
            // An address written as a string: read when loading.
            return match crate::stdlib::parse_ip(text) {
                Some(ip) => Ok(ir::Expr::IpLit(ip)),
                None => Err(self.error(
                    at.span,
                    format!("`{text}` is not an IP address"),
                    "write an IPv4 or IPv6 address (names are not resolved)",
                )),
            };
        }
        let label = match (&at.kind, from, to) {
            (_, _, Type::Backend) => {
                "name a backend or director (without quotes), or call `X.backend()`".to_string()
            }
            (ExprKind::Int(i), Type::Int, Type::Duration) => format!("add a unit, as in `{i}s`"),
            (ExprKind::Real(r), Type::Real, Type::Duration) => format!("add a unit, as in `{r}s`"),
            (ExprKind::Str(s), Type::String, Type::Bool) if s == "true" || s == "false" => {
                format!("write `{s}` without quotes")
            }
            (_, Type::String, Type::Duration) => {
                "write a duration such as `10s`, or convert with `std.duration(…, 0s)`".to_string()
            }
            (_, Type::String, Type::Int) => {
                "write a number, or convert with `std.integer(…, 0)`".to_string()
            }
            _ => format!("expected {to} here"),
        };
        Err(self.error(
            at.span,
            format!("wrong type: expected {to}, found {from}"),
            label,
        ))
    }

    /// An expression used as a condition: BOOL, a STRING or BACKEND (true
    /// when set), and as in Varnish an INT (true when not 0, Magento's
    /// `if (obj.hits)`) or a DURATION (true when above 0).
    fn condition(&self, e: &ast::Expr, scope: &Scope) -> Result<ir::Expr, Error> {
        let (x, ty) = self.expr(e, scope)?;
        let compared = |op, zero| ir::Expr::Cmp {
            op,
            ty,
            lhs: Box::new(x.clone()),
            rhs: Box::new(zero),
        };
        match ty {
            Type::Bool => Ok(x),
            Type::String | Type::Backend => Ok(ir::Expr::Defined(Box::new(x))),
            Type::Int => Ok(compared(CmpOp::Ne, ir::Expr::Int(0))),
            Type::Duration => Ok(compared(CmpOp::Gt, ir::Expr::Dur(0.0))),
            other => Err(self.error(
                e.span,
                format!("wrong type: expected BOOL, found {other}"),
                "a condition is BOOL (or a STRING: true when set, an INT: true when not 0); compare it, as in `… > 0`",
            )),
        }
    }

    fn expr(&self, e: &ast::Expr, scope: &Scope) -> Result<(ir::Expr, Type), Error> {
        Ok(match &e.kind {
            ExprKind::Str(s) => (ir::Expr::Str(s.as_str().into()), Type::String),
            ExprKind::Int(i) => (ir::Expr::Int(*i), Type::Int),
            ExprKind::Duration(d) => (ir::Expr::Dur(*d), Type::Duration),
            ExprKind::Real(r) => (ir::Expr::Real(*r), Type::Real),
            ExprKind::Bytes(b) => (ir::Expr::Bytes(*b), Type::Bytes),
            ExprKind::Bool(b) => (ir::Expr::Bool(*b), Type::Bool),
            ExprKind::Name(ident)
                if vars::lookup(&ident.name).is_none() && self.is_backend(&ident.name) =>
            {
                // A backend or director written bare: a BACKEND, carried as
                // its name (a director chooses when the fetch is sent).
                (ir::Expr::Str(ident.name.as_str().into()), Type::Backend)
            }
            ExprKind::Name(ident) => {
                let (def, var) = self.variable(ident)?;
                self.readable(def, ident, scope)?;
                let x = match var {
                    Var::ClientIp => ir::Expr::ClientIp,
                    Var::Now => ir::Expr::Now,
                    var => ir::Expr::Var(var),
                };
                (x, def.ty)
            }
            ExprKind::Call { name, args } => self.call(name, args, e.span, scope)?,
            ExprKind::Not(inner) => (
                ir::Expr::Not(Box::new(self.condition(inner, scope)?)),
                Type::Bool,
            ),
            ExprKind::Neg(inner) => {
                let (x, ty) = self.expr(inner, scope)?;
                if !matches!(ty, Type::Int | Type::Duration | Type::Real | Type::Bytes) {
                    return Err(self.error(
                        e.span,
                        format!("cannot negate a {ty}"),
                        "`-` applies to INT, DURATION, REAL and BYTES values",
                    ));
                }
                (ir::Expr::Neg(Box::new(x)), ty)
            }
            ExprKind::Arith(first, rest) => self.arith(first, rest, scope, false)?,
            ExprKind::Cmp {
                op,
                op_span,
                lhs,
                rhs,
            } => (self.compare(*op, *op_span, lhs, rhs, scope)?, Type::Bool),
            ExprKind::And(items) | ExprKind::Or(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.condition(item, scope)?);
                }
                let and = matches!(e.kind, ExprKind::And(_));
                let x = match among(&mut out, and) {
                    Some(x) => x,
                    None if and => ir::Expr::And(out),
                    None => ir::Expr::Or(out),
                };
                (x, Type::Bool)
            }
        })
    }

    /// `a + b - c` (or `a * b / c`), left to right, with VCL's types:
    /// INT, REAL, DURATION and BYTES combine with their own kind; INT and
    /// REAL mix into REAL; a DURATION (or BYTES) scales by INT or REAL;
    /// `TIME ± DURATION` is a TIME, `TIME - TIME` and `DURATION / DURATION`
    /// are a DURATION and a REAL. `+` with a STRING on its left joins.
    /// Where a STRING is expected (`string_ctx`: a header, `synthetic`, a
    /// STRING argument), `+` joins whatever its operands are, as in
    /// Varnish: `obj.hits + " hits"`.
    fn arith(
        &self,
        first: &ast::Expr,
        rest: &[(AddOp, Span, ast::Expr)],
        scope: &Scope,
        string_ctx: bool,
    ) -> Result<(ir::Expr, Type), Error> {
        let (mut cur, mut ty) = self.expr(first, scope)?;
        for (op, op_span, e) in rest {
            let (y, yty) = self.expr(e, scope)?;
            if let Some(result) = arith_type(ty, *op, yty) {
                if result == ty && yty == ty {
                    match &mut cur {
                        ir::Expr::Arith(_, ops) => ops.push((*op, y)),
                        _ => cur = ir::Expr::Arith(Box::new(cur), vec![(*op, y)]),
                    }
                } else {
                    cur = ir::Expr::Mixed {
                        op: *op,
                        lhs: Box::new(cur),
                        lty: ty,
                        rhs: Box::new(y),
                        rty: yty,
                    };
                }
                ty = result;
                continue;
            }
            if *op == AddOp::Add && (ty == Type::String || string_ctx) {
                match &mut cur {
                    ir::Expr::Concat(parts) if ty == Type::String => parts.push((y, yty)),
                    _ => cur = ir::Expr::Concat(vec![(cur, ty), (y, yty)]),
                }
                ty = Type::String;
                continue;
            }
            let sym = op.symbol();
            return Err(match (ty, *op) {
                (Type::String, AddOp::Sub) => self.error(
                    *op_span,
                    "cannot subtract from a STRING",
                    "`+` joins strings; `-` works on numbers, durations and times",
                ),
                (Type::String, _) => self.error(
                    *op_span,
                    format!("`{sym}` cannot be used on STRING"),
                    "`+` joins strings; `*` and `/` work on numbers and durations",
                ),
                (Type::Bool | Type::Ip, _) => self.error(
                    *op_span,
                    format!("`{sym}` cannot be used on {ty}"),
                    "arithmetic works on INT, REAL, DURATION, TIME and BYTES (and `+` joins STRINGs)",
                ),
                (_, AddOp::Add) if yty == Type::String => self.error(
                    e.span,
                    format!("wrong type: expected {ty}, found {yty}"),
                    "to build a string, start with one: `\"\" + …`",
                ),
                _ => {
                    let allowed = arith_partners(ty, *op);
                    let label = if allowed.is_empty() {
                        format!("`{sym}` cannot be used on {ty}")
                    } else {
                        format!("`{ty} {sym} …` takes {allowed}")
                    };
                    self.error(
                        e.span,
                        format!("wrong type: {ty} {sym} {yty}"),
                        label,
                    )
                }
            });
        }
        Ok((cur, ty))
    }

    /// An expression where a STRING is expected (anything converts).
    fn text(&self, e: &ast::Expr, scope: &Scope) -> Result<ir::Expr, Error> {
        let (x, ty) = match &e.kind {
            ExprKind::Arith(first, rest) => self.arith(first, rest, scope, true)?,
            _ => self.expr(e, scope)?,
        };
        self.coerce(x, ty, Type::String, e)
    }

    fn compare(
        &self,
        op: CmpOp,
        op_span: Span,
        lhs: &ast::Expr,
        rhs: &ast::Expr,
        scope: &Scope,
    ) -> Result<ir::Expr, Error> {
        let (l, lty) = self.expr(lhs, scope)?;
        if matches!(op, CmpOp::Match | CmpOp::NoMatch) {
            let negate = op == CmpOp::NoMatch;
            return match lty {
                Type::String => Ok(ir::Expr::Regex {
                    subject: Box::new(l),
                    re: std::sync::Arc::new(
                        self.regex_literal(rhs, &format!("the right side of `{}`", op.symbol()))?,
                    ),
                    negate,
                }),
                Type::Ip => {
                    let ExprKind::Name(acl) = &rhs.kind else {
                        return Err(self.error(
                            rhs.span,
                            "expected an ACL name",
                            format!(
                                "an address is matched against an ACL: `client.ip {} name`",
                                op.symbol()
                            ),
                        ));
                    };
                    match self.acl_names.get(acl.name.as_str()) {
                        Some(&index) => Ok(ir::Expr::Acl {
                            subject: Box::new(l),
                            acl: index,
                            negate,
                        }),
                        None => {
                            let label = match closest(&acl.name, self.acl_names.keys().copied()) {
                                Some(c) => format!("did you mean `{c}`?"),
                                None => format!("no `acl {}` is defined", acl.name),
                            };
                            Err(self.error(acl.span, format!("unknown ACL `{}`", acl.name), label))
                        }
                    }
                }
                other => Err(self.error(
                    op_span,
                    format!("`{}` cannot be used on {other}", op.symbol()),
                    "`~` matches a STRING against a regular expression, or an IP against an ACL",
                )),
            };
        }
        let (mut l, mut lty) = (l, lty);
        let (mut r, mut rty) = self.expr(rhs, scope)?;
        // INT and REAL compare as REAL.
        if (lty, rty) == (Type::Int, Type::Real) {
            l = self.coerce(l, lty, Type::Real, lhs)?;
            lty = Type::Real;
        } else if (lty, rty) == (Type::Real, Type::Int) {
            r = self.coerce(r, rty, Type::Real, rhs)?;
            rty = Type::Real;
        } else if lty == Type::Ip && matches!(rhs.kind, ExprKind::Str(_)) {
            r = self.coerce(r, rty, Type::Ip, rhs)?;
            rty = Type::Ip;
        }
        if lty != rty {
            let label = if lty == Type::Ip {
                "to test an address, match it against an ACL: `client.ip ~ name`".to_string()
            } else if rty == Type::String && lty != Type::String {
                format!("cannot compare {lty} with STRING")
            } else {
                format!("expected {lty} here")
            };
            return Err(self.error(
                rhs.span,
                format!("wrong type: expected {lty}, found {rty}"),
                label,
            ));
        }
        let ordered = matches!(op, CmpOp::Lt | CmpOp::Gt | CmpOp::Le | CmpOp::Ge);
        if ordered
            && !matches!(
                lty,
                Type::Int | Type::Duration | Type::Real | Type::Time | Type::Bytes
            )
        {
            return Err(self.error(
                op_span,
                format!("`{}` cannot compare {lty} values", op.symbol()),
                format!("{lty} values are compared with `==` and `!=`"),
            ));
        }
        let text_compare = lty == Type::String && matches!(op, CmpOp::Eq | CmpOp::Ne);
        Ok(match (l, r) {
            (ir::Expr::Var(var), ir::Expr::Str(text))
            | (ir::Expr::Str(text), ir::Expr::Var(var))
                if text_compare =>
            {
                ir::Expr::VarIsText {
                    var,
                    text,
                    negate: op == CmpOp::Ne,
                }
            }
            (l, r) => ir::Expr::Cmp {
                op,
                ty: lty,
                lhs: Box::new(l),
                rhs: Box::new(r),
            },
        })
    }
}

/// `v != "a" && v != "b" …` (`and`) or `v == "a" || v == "b" …` over one
/// STRING variable as one [`ir::Expr::VarAmong`]; `None` (and `items`
/// left as they are) for anything else.
fn among(items: &mut Vec<ir::Expr>, and: bool) -> Option<ir::Expr> {
    let first_var = match items.first()? {
        ir::Expr::VarIsText { var, negate, .. } if *negate == and => var.clone(),
        _ => return None,
    };
    let same = items.len() > 1
        && items.iter().all(|i| {
            matches!(i, ir::Expr::VarIsText { var, negate, .. } if *var == first_var && *negate == and)
        });
    if !same {
        return None;
    }
    let texts = std::mem::take(items)
        .into_iter()
        .filter_map(|i| match i {
            ir::Expr::VarIsText { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    Some(ir::Expr::VarAmong {
        var: first_var,
        texts,
        negate: and,
    })
}

/// The type of `a op b`, when VCL allows it.
fn arith_type(l: Type, op: AddOp, r: Type) -> Option<Type> {
    use AddOp::{Add, Div, Mul, Sub};
    use Type::{Bytes, Duration, Int, Real, Time};
    Some(match (l, op, r) {
        (Int, _, Int) => Int,
        (Int | Real, _, Int | Real) => Real,
        (Duration, Add | Sub, Duration) => Duration,
        (Duration, Mul | Div, Int | Real) => Duration,
        (Int | Real, Mul, Duration) => Duration,
        (Duration, Div, Duration) => Real,
        (Time, Add | Sub, Duration) => Time,
        (Time, Sub, Time) => Duration,
        (Bytes, Add | Sub, Bytes) => Bytes,
        (Bytes, Mul | Div, Int | Real) => Bytes,
        (Int | Real, Mul, Bytes) => Bytes,
        _ => return None,
    })
}

/// What `ty op …` accepts on its right, for error labels.
fn arith_partners(ty: Type, op: AddOp) -> String {
    let all = [
        Type::Int,
        Type::Real,
        Type::Duration,
        Type::Time,
        Type::Bytes,
    ];
    let ok: Vec<String> = all
        .into_iter()
        .filter(|r| arith_type(ty, op, *r).is_some())
        .map(|r| r.to_string())
        .collect();
    match ok.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn describe(mask: Mask) -> String {
    if mask == vars::ALL {
        "every subroutine".to_string()
    } else if mask == vars::CLIENT {
        "client-side subroutines (vcl_recv to vcl_synth)".to_string()
    } else if mask == vars::REQ {
        "client-side subroutines and vcl_pipe".to_string()
    } else if mask == vars::BEREQ {
        "backend subroutines and vcl_pipe".to_string()
    } else if mask == vars::BACKEND {
        "backend subroutines (vcl_backend_*)".to_string()
    } else {
        mask.describe()
    }
}

fn policy_acl_span(policy: &ast::Policy, index: usize) -> Span {
    policy
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Acl(a) => Some(a.name.span),
            _ => None,
        })
        .nth(index)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::compile;
    use crate::error::Error;

    fn err(src: &str) -> Error {
        match compile(src, "t.vcl") {
            Ok(_) => panic!("compiled: {src}"),
            Err(e) => e,
        }
    }

    fn ok(src: &str) {
        if let Err(e) = compile(src, "t.vcl") {
            panic!("{e}");
        }
    }

    fn recv(body: &str) -> String {
        format!("sub vcl_recv {{\n{body}\n}}")
    }

    #[test]
    fn accepts_common_policies() {
        ok(&(recv(
            r#"
            if (req.http.Cookie && req.url ~ "\.(css|js|png)$") { unset req.http.Cookie; }
            set req.http.X-Forwarded-Host = req.http.host;
            set req.http.X-Restarts = req.restarts;
            set req.http.X-Client = "ip=" + client.ip + " restarts=" + req.restarts;
            set req.url = regsuball(req.url, "[?&]utm_[a-z]+=[^&]*", "");
            set req.http.host = std.tolower(req.http.host);
            if (std.integer(req.http.X-N, 0) > 3 || !req.http.X-Test) { return (pass); }
            if (client.ip ~ local) { return (hash); } elsif (client.ip !~ local) { return (synth(403, "Forbidden")); }
        "#,
        ) + "\nacl local { \"127.0.0.1\"; }"));
        ok(r#"
            sub vcl_backend_response {
                set beresp.ttl = std.duration(beresp.http.X-TTL, 120s) + 1m - 500ms;
                if (beresp.ttl <= 0s) { return (pass(2m)); }
                set beresp.grace = -beresp.ttl;
                set beresp.do_esi = beresp.http.Content-Type ~ "html";
                return (deliver);
            }
            sub vcl_deliver { set resp.http.X-Hits = obj.hits; if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } }
            sub vcl_synth { synthetic("<h1>" + resp.status + " " + resp.reason + "</h1>"); return (deliver); }
        "#);
    }

    #[test]
    fn names() {
        assert_eq!(
            err(&recv("if (req.uri) {}")).label(),
            "did you mean `req.url`?"
        );
        assert_eq!(
            err(&recv("call nope;")).message(),
            "unknown subroutine `nope`"
        );
        assert_eq!(
            err(&recv("if (client.ip ~ nope) {}")).message(),
            "unknown ACL `nope`"
        );
        assert_eq!(
            err(&recv("set req.url = std.lower(req.url);")).label(),
            "did you mean `std.tolower`?"
        );
        assert_eq!(
            err("import bodyaccess;").message(),
            "vmod `bodyaccess` is not built in"
        );
        assert_eq!(err("sub vcl_recvv {}").label(), "did you mean `vcl_recv`?");
        ok("sub vcl_pipe {} sub vcl_init {} sub vcl_fini {}");
        assert_eq!(
            err("sub vcl_pipes {}").message(),
            "unknown built-in subroutine `vcl_pipes`"
        );
        assert_eq!(err("sub a {}").message(), "subroutine `a` is never called");
        assert_eq!(err("acl a { } acl a { }").message(), "duplicate ACL `a`");
        assert_eq!(
            err("sub vcl_recv { call a; } sub a {} sub a {}").message(),
            "duplicate subroutine `a`"
        );
        ok("sub vcl_recv {} sub vcl_recv {}");
        assert_eq!(
            err("sub vcl_builtin_recv {}").message(),
            "`vcl_builtin_recv` cannot be defined"
        );
        assert_eq!(
            err("sub vcl_hash { call vcl_builtin_recv; }").message(),
            "`call vcl_builtin_recv` is not allowed in vcl_hash"
        );
        assert_eq!(
            err(&recv("call vcl_hash;")).message(),
            "cannot call `vcl_hash`"
        );
        assert_eq!(
            err(&(recv("set purge = 1;") + " acl purge {}")).message(),
            "`purge` is an ACL, not a variable"
        );
    }

    #[test]
    fn recursion_and_depth() {
        let e = err("sub vcl_recv { call a; } sub a { call b; } sub b { if (true) { call a; } }");
        assert_eq!(e.message(), "recursive call of `a`");
        assert_eq!(e.label(), "this call closes the loop `a` → `b` → `a`");
        assert_eq!(
            err("sub vcl_recv { call vcl_recv; }").message(),
            "cannot call `vcl_recv`"
        );
        assert_eq!(
            err("sub vcl_recv { call a; } sub a { call a; }").message(),
            "recursive call of `a`"
        );

        // A chain of 64 calls is fine, 65 is not; 10 000 does not overflow.
        let chain = |n: usize| {
            let mut src = String::from("sub vcl_recv { call s0; }\n");
            for i in 0..n {
                src.push_str(&format!("sub s{i} {{ call s{}; }}\n", i + 1));
            }
            src.push_str(&format!("sub s{n} {{ }}\n"));
            src
        };
        ok(&chain(63));
        assert_eq!(err(&chain(64)).message(), "call chain too deep");
        assert_eq!(err(&chain(10_000)).message(), "call chain too deep");

        // Deep blocks at every level of a call chain add up.
        let nested = |depth: usize| {
            format!(
                "{}call next;{}",
                "if (true) {".repeat(depth),
                "}".repeat(depth)
            )
        };
        let mut src = format!("sub vcl_recv {{ {} }}\n", nested(60).replace("next", "s0"));
        for i in 0..5 {
            src.push_str(&format!(
                "sub s{i} {{ {} }}\n",
                nested(60).replace("next", &format!("s{}", i + 1))
            ));
        }
        src.push_str("sub s5 { }\n");
        assert_eq!(err(&src).message(), "subroutine calls nest too deeply");
    }

    #[test]
    fn types() {
        let e = err("sub vcl_backend_response { set beresp.ttl = \"10s\"; }");
        assert_eq!(e.message(), "wrong type: expected DURATION, found STRING");
        assert_eq!(
            err("sub vcl_backend_response { set beresp.ttl = 10; }").label(),
            "add a unit, as in `10s`"
        );
        assert_eq!(
            err(&recv("if (req.restarts == \"1\") {}")).message(),
            "wrong type: expected INT, found STRING"
        );
        assert_eq!(
            err(&recv("if (req.url < \"b\") {}")).message(),
            "`<` cannot compare STRING values"
        );
        assert_eq!(
            err(&recv("if (client.ip) {}")).message(),
            "wrong type: expected BOOL, found IP"
        );
        assert_eq!(
            err(&recv("if (req.restarts + \"x\" == 1) {}")).message(),
            "wrong type: expected INT, found STRING"
        );
        assert_eq!(
            err(&recv("set req.http.a = req.url - \"x\";")).message(),
            "cannot subtract from a STRING"
        );
        assert_eq!(
            err(&recv("if (client.ip == req.http.x) {}")).message(),
            "wrong type: expected IP, found STRING"
        );
        assert_eq!(
            err(&recv("if (client.ip == \"1.2.3\") {}")).message(),
            "`1.2.3` is not an IP address"
        );
        ok(&recv(
            "if (client.ip == \"1.2.3.4\" || client.ip != \"::1\") {}",
        ));
        assert_eq!(
            err(&recv("if (req.url ~ req.http.x) {}")).message(),
            "the right side of `~` must be a string literal"
        );
        assert_eq!(
            err(&recv("if (req.restarts ~ \"1\") {}")).message(),
            "`~` cannot be used on INT"
        );
        assert_eq!(
            err(&recv("if (req.url ~ \"(\") {}")).message(),
            "invalid regular expression"
        );
        assert_eq!(
            err(&recv("if (req.url ~ \"(?=x\") {}")).message(),
            "invalid regular expression"
        );
        assert_eq!(
            err(&recv("set req.url = regsub(req.url, \"a\");")).message(),
            "`regsub` takes 3 arguments, found 2"
        );
        assert_eq!(
            err(&recv("std.tolower(req.url);")).message(),
            "the result of `std.tolower` is not used"
        );
        assert_eq!(
            err(&recv("set req.url = -req.url;")).message(),
            "cannot negate a STRING"
        );
        assert_eq!(
            err(&recv("set req.hash_always_miss = \"true\";")).label(),
            "write `true` without quotes"
        );
    }

    #[test]
    fn huge_regex_is_refused() {
        let e = err(&recv(r#"if (req.url ~ "\w{1000}\w{1000}\w{1000}") {}"#));
        assert_eq!(e.message(), "invalid regular expression");
        assert!(e.label().contains("too large"), "{e}");
    }

    #[test]
    fn variable_contexts() {
        let e = err(&recv("if (beresp.ttl > 0s) {}"));
        assert_eq!(e.message(), "`beresp.ttl` is not available in vcl_recv");
        let e = err("sub vcl_backend_fetch { set req.url = \"/\"; }");
        assert_eq!(e.message(), "`req.url` cannot be set in vcl_backend_fetch");
        assert_eq!(e.label(), "did you mean `bereq.url`?");
        let e = err("sub vcl_deliver { set obj.hits = 1; }");
        assert_eq!(e.message(), "`obj.hits` is read-only");
        let e = err("sub vcl_deliver { unset resp.status; }");
        assert_eq!(e.message(), "`resp.status` cannot be unset");
        ok("sub vcl_hit { if (obj.ttl < 0s && obj.http.X-A) { return (pass); } }");
        assert_eq!(
            err("sub vcl_deliver { if (obj.http.a) {} }").message(),
            "`obj.http.a` is not available in vcl_deliver"
        );
        // A custom subroutine is checked in every context it is called from.
        let e = err("sub vcl_recv { call strip; } sub vcl_backend_response { call strip; } sub strip { unset req.http.Cookie; }");
        assert_eq!(
            e.message(),
            "`req.http.Cookie` cannot be unset in vcl_backend_response"
        );
        assert_eq!(e.notes(), ["`strip` is called from vcl_backend_response"]);
    }

    #[test]
    fn actions() {
        let e = err("sub vcl_deliver { return (pass); }");
        assert_eq!(e.message(), "`return (pass)` is not allowed in vcl_deliver");
        assert_eq!(
            e.label(),
            "vcl_deliver can return deliver, restart, synth or fail"
        );
        assert_eq!(err(&recv("return (hsah);")).label(), "did you mean `hash`?");
        assert_eq!(
            err(&recv("return (synth);")).message(),
            "`synth` takes a status and an optional reason"
        );
        assert_eq!(err(&recv("return (synth(42));")).message(), "bad status 42");
        assert_eq!(
            err(&recv("return (hash(1));")).message(),
            "`hash` takes no arguments"
        );
        assert_eq!(
            err("sub vcl_backend_response { return (pass(1s, 2s)); }").message(),
            "`pass` here takes a duration"
        );

        assert_eq!(
            err(&recv("hash_data(req.url);")).message(),
            "`hash_data` is not allowed in vcl_recv"
        );
        assert_eq!(
            err(&recv("synthetic(\"x\");")).message(),
            "`synthetic` is not allowed in vcl_recv"
        );
        let e =
            err("sub vcl_recv { call x; } sub vcl_deliver { call x; } sub x { return (hash); }");
        assert_eq!(e.message(), "`return (hash)` is not allowed in vcl_deliver");
        ok("sub vcl_backend_fetch { return (error(503, \"down\")); } sub vcl_backend_error { return (retry); }");
    }

    #[test]
    fn function_arguments() {
        let m = |body: &str| err(&recv(body)).message().to_string();
        let l = |body: &str| err(&recv(body)).label().to_string();
        assert_eq!(
            m("set req.http.a = std.tolower();"),
            "`std.tolower` takes 1 argument, found 0"
        );
        assert_eq!(
            l("set req.http.a = std.tolower();"),
            "expected `STRING std.tolower(STRING s)`"
        );
        assert_eq!(
            m("set req.http.a = std.toupper(\"a\", \"b\");"),
            "`std.toupper` takes 1 argument, found 2"
        );
        assert_eq!(
            l("set req.http.a = std.ban_error(x = 1);"),
            "it takes no arguments"
        );
        assert_eq!(
            m("set req.http.a = std.fnmatch(subject = req.url);"),
            "`std.fnmatch` needs its argument `pattern`"
        );
        assert_eq!(
            m("std.rollback(bereq);"),
            "`std.rollback(bereq)` is not allowed in vcl_recv"
        );
        assert_eq!(m("std.rollback(resp);"), "expected `req` or `bereq`");
        assert_eq!(m("std.collect(req.url);"), "`req.url` is not a header");
        assert_eq!(m("std.collect(\"x\");"), "expected a header");
        assert_eq!(
            err("sub vcl_deliver { std.collect(obj.http.a); }").message(),
            "`obj.http.a` is read-only"
        );
        assert_eq!(m("if (std.healthy(\"web\")) {}"), "expected a backend name");
        assert_eq!(
            m("if (std.syntax(req.http.v)) {}"),
            "wrong type: expected REAL, found STRING"
        );
        assert_eq!(
            m("if (std.syntax(std.real(\"4\", 0))) {}"),
            "`std.syntax` takes a version number"
        );
        assert_eq!(
            m("set req.http.a = std.ip(req.http.x, \"nope\");"),
            "`nope` is not an IP address"
        );
        assert_eq!(m("set req.http.a = 1 * \"x\";"), "wrong type: INT * STRING");
        assert_eq!(
            m("set req.http.a = req.url * 2;"),
            "`*` cannot be used on STRING"
        );
        assert_eq!(
            m("set req.http.a = std.now() * 2;"),
            "wrong type: TIME * INT"
        );
        ok(&recv(
            "std.log(\"x\"); std.syslog(priority = 6, s = \"y\"); ban(\"req.url ~ x\"); std.ban(\"req.url ~ y\"); std.timestamp(\"t\"); std.late_100_continue(late = false); std.set_ip_tos(0); std.collect(req.http.Cookie, \"; \");",
        ));
        ok("vcl 4.0; sub vcl_recv { if (std.syntax(4.0) && !std.syntax(4.1)) { return (pass); } }");
        ok("sub vcl_backend_response { std.rollback(bereq); std.collect(beresp.http.Vary); set beresp.ttl = std.duration(integer = 2) * 3 + 10s / 2; }");
    }

    #[test]
    fn default_policy_compiles() {
        ok(crate::DEFAULT_POLICY);
    }

    #[test]
    fn vmod_calls() {
        let m = |src: &str| err(src).message().to_string();
        let l = |src: &str| err(src).label().to_string();
        let vmods =
            "import cookie; import header; import var; import xkey; import purge; import proxy;";
        ok(&format!(
            "{vmods} sub vcl_recv {{ cookie.parse(req.http.cookie); cookie.filter_re(\"^_ga\"); set req.http.x = cookie.get_re(\"^s\") + header.get(req.http.accept, \"html\") + xkey.purge(\"a b\") + var.get_int(\"n\") + proxy.is_ssl(); xkey.softpurge(\"c\"); }}
            sub vcl_hit {{ purge.hard(); set req.http.n = purge.soft(keep = 1h); header.copy(obj.http.x, req.http.y); }}
            sub vcl_backend_response {{ header.remove(beresp.http.set-cookie, \"^a=\"); header.copy(bereq.http.x, beresp.http.x); var.set_duration(\"d\", beresp.ttl); }}
            sub vcl_deliver {{ header.append(resp.http.x, obj.hits); }}"
        ));
        assert_eq!(
            m("sub vcl_recv { set req.http.x = cookie.get(\"a\"); }"),
            "vmod `cookie` is not imported"
        );
        assert_eq!(
            l("sub vcl_recv { set req.http.x = cookie.get(\"a\"); }"),
            "add `import cookie;` at the top of the policy"
        );
        assert_eq!(
            m("import cookie; sub vcl_recv { cookie.get(\"a\"); }"),
            "the result of `cookie.get` is not used"
        );
        assert_eq!(
            l("import cookie; sub vcl_recv { cookie.gett(\"a\"); }"),
            "did you mean `cookie.get`?"
        );
        assert_eq!(
            l("import cookie; sub vcl_recv { cookie.frobnicate(); }"),
            "not in vcl-lite's vmod cookie (see the function table in the README)"
        );
        assert_eq!(
            m("import header; sub vcl_hit { header.append(obj.http.x, \"1\"); }"),
            "`obj.http.x` is read-only"
        );
        assert_eq!(
            m("import header; sub vcl_recv { header.remove(req.url, \"x\"); }"),
            "`req.url` is not a header"
        );
        assert_eq!(
            m("import header; sub vcl_recv { header.remove(req.http.a, \"(\"); }"),
            "invalid regular expression"
        );
        assert_eq!(
            m("import purge; sub vcl_deliver { purge.hard(); }"),
            "`purge.hard` is not allowed in vcl_deliver"
        );
        assert_eq!(
            m("import proxy; sub vcl_backend_fetch { set bereq.http.a = proxy.alpn(); }"),
            "`proxy.alpn` is not allowed in vcl_backend_fetch"
        );
        assert_eq!(
            m("import var; sub vcl_recv { var.set_int(\"n\", \"x\"); }"),
            "wrong type: expected INT, found STRING"
        );
        assert_eq!(m("import bodyaccess;"), "vmod `bodyaccess` is not built in");
        ok("import std; import std; sub vcl_recv { std.log(\"x\"); }");
    }
}
