//! The checked statements lowered to closures once, when the policy is
//! compiled: what runs on every request.
//!
//! Walking the IR paid, for every statement and condition, a call into a
//! large recursive function (its frame saved and restored) and a dispatch
//! on the node's kind, then on the kind of its parts (~40–60 instructions
//! before any work; production.vcl runs ~70 statements and conditions per
//! hit). A lowered statement is a small closure made for its shape, with
//! its parts' kinds decided when lowering: `if (req.http.X ~ "re")` calls
//! the host for the header and the pattern, nothing else.
//!
//! Shapes without a closure of their own (functions, arithmetic,
//! comparisons, `synthetic`, …) keep the IR node and are evaluated by the
//! interpreter's functions ([`Program::boolean`], [`Program::leaf`],
//! [`Program::ret`]), so both ways share one meaning of every node; the
//! lowered forms are tested against those functions
//! (`tests::lowered_conditions_answer_as_the_interpreter`). The parts a
//! closure keeps are clones of the IR's; compiled patterns are shared
//! with it (`Arc`), not copied.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::action::Action;
use crate::ast::CmpOp;
use crate::error::{Location, RuntimeError};
use crate::ir::{ActionIr, Expr, Stmt};
use crate::pattern::Pattern;
use crate::vars::{Sub, Type, Var};

use super::{failed, lends, lent_text, text_of, Context, Program, Value, MAX_CALL_DEPTH};

/// How a lowered statement ended. A failure's error is in
/// [`Run::failure`]: a byte comes back in a register, a `Result` carrying
/// a [`RuntimeError`] through memory at every level.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Next,
    Return,
    Failed,
}

/// What a run carries down its statements: the program, the host, the
/// depth of `call`s, and what the statements leave. Every lowered
/// statement and condition takes this one pointer (with its own closure):
/// passed as five arguments (the host a two-word pointer), they made
/// every closure save and restore six registers around its calls.
pub(super) struct Run<'a> {
    pub(super) p: &'a Program,
    pub(super) ctx: &'a mut dyn Context,
    /// `call`s it is inside.
    pub(super) depth: usize,
    /// Texts handed to the host (`hash_data`, `std.log`, …).
    pub(super) scratch: String,
    /// What `return` gave.
    pub(super) returned: Option<Action>,
    /// Why the run stopped, with [`Flow::Failed`].
    pub(super) failure: Option<RuntimeError>,
}

impl<'a> Run<'a> {
    /// A run of `p` against `ctx`.
    pub(super) fn new(p: &'a Program, ctx: &'a mut dyn Context) -> Run<'a> {
        Run {
            p,
            ctx,
            depth: 0,
            scratch: String::new(),
            returned: None,
            failure: None,
        }
    }

    #[cold]
    fn fail(&mut self, e: RuntimeError) -> Flow {
        self.failure = Some(e);
        Flow::Failed
    }

    /// `Flow::Next`, or the failure recorded.
    fn done(&mut self, result: Result<(), RuntimeError>) -> Flow {
        match result {
            Ok(()) => Flow::Next,
            Err(e) => self.fail(e),
        }
    }

    /// The host, to read.
    #[inline]
    fn host(&self) -> &dyn Context {
        &*self.ctx
    }
}

type StepFn = dyn for<'a> Fn(&mut Run<'a>) -> Flow + Send + Sync;
type TestFn = dyn for<'a> Fn(&Run<'a>) -> bool + Send + Sync;

/// A lowered list of statements.
#[derive(Default)]
pub(crate) struct Block(Box<[Box<StepFn>]>);

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({} statements)", self.0.len())
    }
}

impl Block {
    /// Runs the statements in order until one returns or fails.
    pub(super) fn run(&self, run: &mut Run<'_>) -> Flow {
        for step in self.0.iter() {
            match step(run) {
                Flow::Next => {}
                end => return end,
            }
        }
        Flow::Next
    }
}

/// A whole program's bodies, lowered.
#[derive(Debug, Default)]
pub(crate) struct Lowered {
    /// By [`Sub::index`].
    pub(super) subs: Vec<Option<Block>>,
    /// By custom subroutine index ([`Stmt::Call`]).
    pub(super) customs: Vec<Block>,
}

impl Lowered {
    /// Lowers the built-in subroutines' and the custom ones' bodies.
    pub(crate) fn of(subs: &[Option<Vec<Stmt>>], customs: &[Vec<Stmt>]) -> Lowered {
        Lowered {
            subs: subs.iter().map(|s| s.as_deref().map(block)).collect(),
            customs: customs.iter().map(|s| block(s)).collect(),
        }
    }

    /// The body of `sub`, when the program defines it.
    pub(super) fn sub(&self, sub: Sub) -> Option<&Block> {
        self.subs.get(sub.index()).and_then(Option::as_ref)
    }
}

/// Lowers a list of statements.
pub(crate) fn block(stmts: &[Stmt]) -> Block {
    Block(stmts.iter().map(step).collect())
}

fn step(stmt: &Stmt) -> Box<StepFn> {
    match stmt {
        Stmt::If {
            branches,
            otherwise,
            at,
            fallible,
        } => if_step(branches, otherwise, *at, *fallible),
        Stmt::Call(index) => {
            let index = *index;
            Box::new(move |run| {
                if run.depth >= MAX_CALL_DEPTH {
                    let file = run.p.file.clone();
                    return run.fail(RuntimeError {
                        message: "call chain too deep".to_string(),
                        file,
                        location: Location::default(),
                    });
                }
                let p = run.p;
                match p.lowered.customs.get(index) {
                    Some(body) => {
                        run.depth += 1;
                        let flow = body.run(run);
                        run.depth -= 1;
                        flow
                    }
                    None => Flow::Next,
                }
            })
        }
        Stmt::Builtin(sub) => {
            let sub = *sub;
            Box::new(move |run| builtin(sub, run))
        }
        Stmt::Return {
            action: ActionIr::Plain(action),
            fallible: false,
            ..
        } => {
            let action = action.clone();
            Box::new(move |run| {
                run.returned = Some(action.clone());
                Flow::Return
            })
        }
        Stmt::Return {
            action,
            at,
            fallible,
        } => {
            let (action, at, fallible) = (action.clone(), *at, *fallible);
            Box::new(
                move |run| match run.p.ret(&action, run.host(), at, fallible) {
                    Ok(action) => {
                        run.returned = Some(action);
                        Flow::Return
                    }
                    Err(e) => run.fail(e),
                },
            )
        }
        Stmt::SetText { var, text, at } => {
            let (var, text, at) = (var.clone(), text.clone(), *at);
            Box::new(move |run| match run.ctx.set_text(&var, &text) {
                Ok(()) => Flow::Next,
                Err(m) => {
                    let e = run.p.runtime_error(m, at);
                    run.fail(e)
                }
            })
        }
        Stmt::Unset(var) => {
            let var = var.clone();
            Box::new(move |run| {
                run.ctx.unset(&var);
                Flow::Next
            })
        }
        // `hash_data(req.url);`: read in place by a host that offers it.
        Stmt::HashData(e @ Expr::Var(var), at) if var.is_text() => {
            let (e, at, var) = (e.clone(), *at, var.clone());
            Box::new(move |run| {
                if lends() && run.ctx.hash_text_of(&var) {
                    return Flow::Next;
                }
                // Not asked again (as `Program::leaf` would): the text
                // made here.
                let result = run.p.text_into(&e, at, &*run.ctx, &mut run.scratch);
                if result.is_ok() {
                    run.ctx.hash_data(&run.scratch);
                }
                run.done(result)
            })
        }
        // Other statements that hold no other: the interpreter's meaning.
        other => {
            let stmt = other.clone();
            Box::new(move |run| leaf(&stmt, run))
        }
    }
}

/// A statement run by [`Program::leaf`].
fn leaf(stmt: &Stmt, run: &mut Run<'_>) -> Flow {
    let result = run.p.leaf(stmt, &mut *run.ctx, &mut run.scratch);
    run.done(result)
}

/// `if … else if … else …`. Most have one branch and no `else`, and most
/// of those have a body of one statement: those get closures of their own.
fn if_step(
    branches: &[(Expr, Vec<Stmt>)],
    otherwise: &[Stmt],
    at: usize,
    fallible: bool,
) -> Box<StepFn> {
    // `if (req.http.X ~ "re") { one statement }`: the commonest of all,
    // the pattern asked without a closure of its own between.
    if let ([(cond, body)], [], false) = (branches, otherwise, fallible) {
        if let (Some((var, re, negate)), [one]) = (text_pattern(cond), &body[..]) {
            let (var, re) = (var.clone(), re.clone());
            let one = step(one);
            return Box::new(move |run| {
                if pattern_matches(run.host(), &var, &re) != negate {
                    one(run)
                } else {
                    Flow::Next
                }
            });
        }
    }
    // A condition that may fail (a function) fails the statement.
    let failed_at = move |run: &mut Run<'_>| {
        if fallible && failed() {
            let e = run.p.expr_failed(at);
            run.fail(e);
            return true;
        }
        false
    };
    match (branches, otherwise) {
        ([(cond, body)], []) => {
            let test = test(cond);
            match &body[..] {
                [one] => {
                    let one = step(one);
                    Box::new(move |run| {
                        let hit = test(run);
                        if failed_at(run) {
                            return Flow::Failed;
                        }
                        if hit {
                            one(run)
                        } else {
                            Flow::Next
                        }
                    })
                }
                _ => {
                    let body = block(body);
                    Box::new(move |run| {
                        let hit = test(run);
                        if failed_at(run) {
                            return Flow::Failed;
                        }
                        if hit {
                            body.run(run)
                        } else {
                            Flow::Next
                        }
                    })
                }
            }
        }
        _ => {
            let branches: Box<[(Box<TestFn>, Block)]> = branches
                .iter()
                .map(|(cond, body)| (test(cond), block(body)))
                .collect();
            let otherwise = block(otherwise);
            Box::new(move |run| {
                let body = branches
                    .iter()
                    .find(|(test, _)| test(run))
                    .map_or(&otherwise, |(_, body)| body);
                if failed_at(run) {
                    return Flow::Failed;
                }
                body.run(run)
            })
        }
    }
}

/// `call vcl_builtin_…;`: that hook's body in `builtin.vcl`, run as its
/// own program (its patterns and source).
#[inline(never)]
fn builtin(sub: Sub, run: &mut Run<'_>) -> Flow {
    let Some(program) = crate::builtin_program() else {
        return Flow::Next;
    };
    let Some(body) = program.lowered.sub(sub) else {
        return Flow::Next;
    };
    let outer = std::mem::replace(&mut run.p, program);
    run.depth += 1;
    let flow = body.run(run);
    run.depth -= 1;
    run.p = outer;
    flow
}

/// A condition. The commonest shapes read the host directly; the others
/// are asked of [`Program::boolean`].
pub(super) fn test(cond: &Expr) -> Box<TestFn> {
    match cond {
        Expr::Bool(b) => {
            let b = *b;
            Box::new(move |_| b)
        }
        Expr::Defined(inner) => match &**inner {
            Expr::Var(var) if var.is_text() => {
                let var = var.clone();
                Box::new(move |run| match lends() {
                    true => lent_text(run.host(), &var).is_some(),
                    false => run.host().get(&var).is_some(),
                })
            }
            _ => interpreted(cond),
        },
        Expr::Not(inner) => {
            let inner = test(inner);
            Box::new(move |run| !inner(run))
        }
        Expr::And(items) => {
            let items: Box<[Box<TestFn>]> = items.iter().map(test).collect();
            Box::new(move |run| items.iter().all(|t| t(run)))
        }
        Expr::Or(items) => {
            let items: Box<[Box<TestFn>]> = items.iter().map(test).collect();
            Box::new(move |run| items.iter().any(|t| t(run)))
        }
        Expr::Regex { .. } => match text_pattern(cond) {
            Some((var, re, negate)) => {
                let (var, re) = (var.clone(), re.clone());
                Box::new(move |run| pattern_matches(run.host(), &var, &re) != negate)
            }
            None => interpreted(cond),
        },
        Expr::Acl {
            subject,
            acl,
            negate,
        } if matches!(**subject, Expr::ClientIp) => {
            let (acl, negate) = (*acl, *negate);
            Box::new(move |run| {
                run.p
                    .acls
                    .get(acl)
                    .is_some_and(|a| a.matches(run.host().client_ip()))
                    != negate
            })
        }
        // `obj.ttl >= 0s`, `obj.hits > 0`, `req.restarts == 0`: a
        // number read once and compared with a literal.
        Expr::Cmp { op, ty, lhs, rhs } => match (&**lhs, &**rhs, ty) {
            (Expr::Var(var), Expr::Int(n), Type::Int) => compared(var, *n, *op, |v| match v {
                Some(Value::Int(i)) => i,
                _ => 0,
            }),
            (Expr::Var(var), Expr::Dur(d), Type::Duration) => compared(var, *d, *op, |v| match v {
                Some(Value::Duration(d)) => d,
                _ => 0.0,
            }),
            _ => interpreted(cond),
        },
        Expr::VarIsText { var, text, negate } => {
            let (var, text, negate) = (var.clone(), text.clone(), *negate);
            Box::new(move |run| text_of(run.host(), &var, |s| s == &*text) != negate)
        }
        Expr::VarAmong { var, texts, negate } => {
            let (var, texts, negate) = (var.clone(), texts.clone(), *negate);
            Box::new(move |run| {
                text_of(run.host(), &var, |s| texts.iter().any(|t| &**t == s)) != negate
            })
        }
        _ => interpreted(cond),
    }
}

/// `var op literal` for a number variable, read by `number` (an unset or
/// other value as the interpreter's `int` / `dur` read it: 0).
fn compared<T, F>(var: &Var, literal: T, op: CmpOp, number: F) -> Box<TestFn>
where
    T: PartialOrd + Copy + Send + Sync + 'static,
    F: Fn(Option<Value<'_>>) -> T + Send + Sync + 'static,
{
    let var = var.clone();
    Box::new(move |run| ordered(op, number(run.host().get(&var)).partial_cmp(&literal)))
}

/// Whether `ordering` (of the left side to the right; `None`: a NaN)
/// satisfies `op`, as [`Program::compare`] decides it.
pub(super) fn ordered(op: CmpOp, ordering: Option<Ordering>) -> bool {
    let Some(ord) = ordering else {
        return op == CmpOp::Ne;
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Match | CmpOp::NoMatch => false,
    }
}

/// A condition evaluated by the interpreter.
fn interpreted(cond: &Expr) -> Box<TestFn> {
    let cond = cond.clone();
    Box::new(move |run| run.p.boolean(&cond, run.host()))
}

/// `var ~ re` (`negate`: `!~`) of a text variable.
fn text_pattern(cond: &Expr) -> Option<(&Var, &Arc<Pattern>, bool)> {
    match cond {
        Expr::Regex {
            subject,
            re,
            negate,
        } => match &**subject {
            Expr::Var(var) if var.is_text() => Some((var, re, *negate)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the text variable `var` (unset: "") matches `re`.
#[inline]
fn pattern_matches(ctx: &dyn Context, var: &Var, re: &Pattern) -> bool {
    match lends() {
        true => re.is_match(lent_text(ctx, var).unwrap_or("")),
        false => re.is_match(&text_value(ctx, var)),
    }
}

/// A text variable's STRING form through [`Context::get`] (a host that
/// does not lend text); "" when unset.
fn text_value<'c>(ctx: &'c dyn Context, var: &Var) -> std::borrow::Cow<'c, str> {
    match ctx.get(var) {
        Some(Value::Str(s)) => s,
        Some(other) => std::borrow::Cow::Owned(other.to_string()),
        None => std::borrow::Cow::Borrowed(""),
    }
}
