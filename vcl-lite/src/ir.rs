//! The checked, resolved program the evaluator runs: variables are enums,
//! regular expressions and ACLs are compiled, every node has a known type.

use crate::action::Action;
use crate::ast::{AddOp, CmpOp};
use crate::pattern::Pattern;
use crate::vars::{Sub, Type, Var};

/// A typed expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Str(Box<str>),
    Int(i64),
    Dur(f64),
    Bool(bool),
    /// Read through `Context::get`.
    Var(Var),
    /// Read through `Context::client_ip`.
    ClientIp,
    /// A non-STRING value turned into a STRING.
    ToStr(Box<Expr>, Type),
    /// STRING concatenation; each part with its type.
    Concat(Vec<(Expr, Type)>),
    /// INT or DURATION arithmetic (the type is that of the whole).
    Arith(Box<Expr>, Vec<(AddOp, Expr)>),
    /// INT or DURATION negation.
    Neg(Box<Expr>),
    /// `==`, `!=`, `<`, `>`, `<=`, `>=` between two values of type `ty`.
    Cmp {
        op: CmpOp,
        ty: Type,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `s ~ "re"` / `s !~ "re"`
    Regex {
        subject: Box<Expr>,
        re: Pattern,
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
        re: Pattern,
        sub: Replacement,
        all: bool,
    },
    Lower(Box<Expr>),
    Upper(Box<Expr>),
    /// `std.integer(s, fallback)`
    Integer(Box<Expr>, Box<Expr>),
    /// `std.duration(s, fallback)`
    Duration(Box<Expr>, Box<Expr>),
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
    Synth { status: Expr, reason: Option<Expr> },
    Error { status: Expr, reason: Option<Expr> },
    PassFor(Expr),
}

/// A statement. `at` is the byte offset of statements that can fail at run
/// time, for the error's location.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
    Set {
        var: Var,
        ty: Type,
        value: Expr,
        at: usize,
    },
    Unset(Var),
    Return {
        action: ActionIr,
        at: usize,
    },
    /// Index into the custom subroutines.
    Call(usize),
    /// `call vcl_builtin_recv;` & co.: the body of that hook in
    /// `builtin.vcl`.
    Builtin(Sub),
    HashData(Expr),
    Synthetic(Expr),
}

#[cfg(test)]
mod tests {
    use super::*;

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
