//! The checked, resolved program the evaluator runs: variables are enums,
//! regular expressions and ACLs are compiled, every node has a known type.

use crate::action::Action;
use crate::ast::{AddOp, CmpOp};
use crate::funcs::Func;
use crate::pattern::Pattern;
use crate::vars::{Literal, Sub, Type, Var};

/// A typed expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Str(Box<str>),
    Int(i64),
    Dur(f64),
    Real(f64),
    Bytes(i64),
    Bool(bool),
    /// Read through `Context::get`.
    Var(Var),
    /// Read through `Context::client_ip`.
    ClientIp,
    /// Read through `Context::now`.
    Now,
    /// An IP address written as a string where an IP is expected.
    IpLit(std::net::IpAddr),
    /// An INT where a REAL is expected.
    IntToReal(Box<Expr>),
    /// A non-STRING value turned into a STRING.
    ToStr(Box<Expr>, Type),
    /// STRING concatenation; each part with its type.
    Concat(Vec<(Expr, Type)>),
    /// Arithmetic where every operand has the type of the whole (INT,
    /// DURATION, REAL, BYTES), left to right.
    Arith(Box<Expr>, Vec<(AddOp, Expr)>),
    /// Arithmetic between two types (`now - 1h`, `2 * 1s`, `1s / 2s`):
    /// the result's type is known from the context it is read in.
    Mixed {
        op: AddOp,
        lhs: Box<Expr>,
        lty: Type,
        rhs: Box<Expr>,
        rty: Type,
    },
    /// Negation (INT, DURATION, REAL, BYTES).
    Neg(Box<Expr>),
    /// `==`, `!=`, `<`, `>`, `<=`, `>=` between two values of type `ty`.
    Cmp {
        op: CmpOp,
        ty: Type,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `var == "text"` / `var != "text"` (either way round) for a STRING
    /// variable: the commonest condition in real policies
    /// (`req.method == "PURGE"`), read once and compared in place.
    VarIsText {
        var: Var,
        text: Box<str>,
        negate: bool,
    },
    /// `var == "a" || var == "b" || …` (`negate: false`) or
    /// `var != "a" && var != "b" && …` (`negate: true`): the method lists
    /// of the built-in `vcl_recv` and of most policies, the variable read
    /// once. An unset variable is among none.
    VarAmong {
        var: Var,
        texts: Box<[Box<str>]>,
        negate: bool,
    },
    /// `s ~ "re"` / `s !~ "re"`
    Regex {
        subject: Box<Expr>,
        re: std::sync::Arc<Pattern>,
        negate: bool,
    },
    /// `ip ~ acl` / `ip !~ acl`
    Acl {
        subject: Box<Expr>,
        acl: usize,
        negate: bool,
    },
    /// A STRING in a condition: true when set.
    Defined(Box<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `regsub` / `regsuball`
    Regsub {
        subject: Box<Expr>,
        re: std::sync::Arc<Pattern>,
        sub: Replacement,
        all: bool,
    },
    /// A built-in function (other than `regsub`).
    Call(Box<Call>),
    /// `X.backend(key)` of a hash or shard director: the backend it
    /// chooses for the key, asked of the host when evaluated
    /// (`Context::director_backend`). BACKEND; unset when none is healthy.
    Director {
        name: Box<str>,
        key: Box<Expr>,
    },
    /// `X.key(STRING)` of a shard director: the string hashed to an INT.
    ShardKey(Box<Expr>),
}

impl Expr {
    /// Whether evaluating it may fail its statement (a function, a
    /// division): only then does the evaluator look for a failure after it.
    pub(crate) fn may_fail(&self) -> bool {
        match self {
            Expr::Call(_) => true,
            Expr::Arith(first, rest) => {
                first.may_fail() || rest.iter().any(|(op, e)| *op == AddOp::Div || e.may_fail())
            }
            Expr::Mixed { op, lhs, rhs, .. } => {
                *op == AddOp::Div || lhs.may_fail() || rhs.may_fail()
            }
            Expr::ToStr(e, _)
            | Expr::Neg(e)
            | Expr::IntToReal(e)
            | Expr::Defined(e)
            | Expr::ShardKey(e)
            | Expr::Not(e) => e.may_fail(),
            Expr::Director { key, .. } => key.may_fail(),
            Expr::Concat(parts) => parts.iter().any(|(e, _)| e.may_fail()),
            Expr::Cmp { lhs, rhs, .. } => lhs.may_fail() || rhs.may_fail(),
            Expr::Regex { subject, .. } | Expr::Acl { subject, .. } => subject.may_fail(),
            Expr::And(items) | Expr::Or(items) => items.iter().any(Expr::may_fail),
            Expr::Regsub { subject, sub, .. } => {
                subject.may_fail() || matches!(sub, Replacement::Dynamic(e) if e.may_fail())
            }
            _ => false,
        }
    }
}

impl ActionIr {
    /// As [`Expr::may_fail`], for its arguments.
    pub(crate) fn may_fail(&self) -> bool {
        match self {
            ActionIr::Plain(_) => false,
            ActionIr::Synth { status, reason } | ActionIr::Error { status, reason } => {
                status.may_fail() || reason.as_deref().is_some_and(Expr::may_fail)
            }
            ActionIr::PassFor(e) => e.may_fail(),
        }
    }
}

/// A checked call of a built-in function: one argument per parameter, in
/// the table's order, defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) func: Func,
    pub(crate) args: Box<[Arg]>,
}

/// An argument of a [`Call`].
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// An optional parameter left out.
    Absent,
    /// A value of the parameter's type.
    Val(Expr, Type),
    /// A header variable (`std.collect`).
    Header(Var),
    /// `req` or `bereq` (`std.rollback`).
    Http(crate::funcs::HttpPart),
    /// A regular expression compiled when loading (`header.get`,
    /// `cookie.filter_re`).
    Regex(std::sync::Arc<Pattern>),
}

/// Part of a `regsub` replacement: text, or `\N` (a capture group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    Group(usize),
}

/// A `regsub` replacement: known when the policy loads, or computed.
#[derive(Debug, Clone)]
pub(crate) enum Replacement {
    Fixed(Vec<Piece>),
    Dynamic(Box<Expr>),
}

/// Splits a Varnish-style replacement into pieces: `\1` inserts group 1,
/// `\\` is a backslash, a backslash before any other character is dropped.
pub(crate) fn parse_replacement(s: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Group(d as usize - '0' as usize));
                }
                // `\\` is a backslash, `\x` is `x`.
                Some(other) => lit.push(other),
                None => lit.push('\\'),
            }
            continue;
        }
        lit.push(c);
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    pieces
}

/// What a `return` gives back.
#[derive(Debug, Clone)]
pub(crate) enum ActionIr {
    Plain(Action),
    Synth {
        status: Box<Expr>,
        reason: Option<Box<Expr>>,
    },
    Error {
        status: Box<Expr>,
        reason: Option<Box<Expr>>,
    },
    PassFor(Expr),
}

/// A statement. `at` is the byte offset of statements that can fail at run
/// time, for the error's location.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
        at: usize,
        /// A condition may fail ([`Expr::may_fail`]).
        fallible: bool,
    },
    Set {
        var: Var,
        ty: Type,
        value: Expr,
        at: usize,
        fallible: bool,
    },
    /// `set` of a STRING variable to a literal text, handed to the host
    /// as such ([`crate::Context::set_text`]).
    SetText {
        var: Var,
        text: Literal,
        at: usize,
    },
    Unset(Var),
    Return {
        action: ActionIr,
        at: usize,
        fallible: bool,
    },
    /// Index into the custom subroutines.
    Call(usize),
    /// `call vcl_builtin_recv;` & co.: the body of that hook in
    /// `builtin.vcl`.
    Builtin(Sub),
    /// With where it is when its expression can fail.
    HashData(Expr, Option<usize>),
    Synthetic(Expr, Option<usize>),
    /// A function called as a statement (`std.log(…);`, `ban(…);`,
    /// `std.ban(…);`).
    Effect {
        call: Call,
        at: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The evaluator walks ~100 statements per request of a realistic
    /// policy: kept small, they share cache lines (a statement was 328
    /// bytes before patterns, `synth` arguments, header names and literals
    /// were boxed).
    #[test]
    fn nodes_stay_small() {
        assert!(
            std::mem::size_of::<Expr>() <= 48,
            "{}",
            std::mem::size_of::<Expr>()
        );
        assert!(
            std::mem::size_of::<Stmt>() <= 80,
            "{}",
            std::mem::size_of::<Stmt>()
        );
        assert!(
            std::mem::size_of::<Var>() <= 16,
            "{}",
            std::mem::size_of::<Var>()
        );
    }

    #[test]
    fn replacements() {
        assert_eq!(
            parse_replacement("a\\1b\\\\c\\x\\"),
            vec![
                Piece::Lit("a".into()),
                Piece::Group(1),
                Piece::Lit("b\\cx\\".into())
            ]
        );
        assert_eq!(parse_replacement(""), vec![]);
        assert_eq!(parse_replacement("\\0"), vec![Piece::Group(0)]);
    }
}
