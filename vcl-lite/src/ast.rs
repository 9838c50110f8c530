//! The syntax tree produced by the parser (names are still strings; the
//! checker resolves them).

use crate::error::Span;

/// A name and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name as written (`req.http.Host`).
    pub name: String,
    /// Where.
    pub span: Span,
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `vcl 4.1;`, when present.
    pub version: Option<(String, Span)>,
    /// Top-level declarations, in source order.
    pub items: Vec<Item>,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import std;`
    Import(Ident),
    /// `acl name { ... }`
    Acl(Acl),
    /// `sub name { ... }`
    Sub(SubDef),
    /// `backend name { .host = "…"; … }` or `backend name none;`
    Backend(BackendDef),
    /// `probe name { .url = "/"; … }`
    Probe(ProbeDef),
}

/// `backend name { .field = value; … }`
#[derive(Debug, Clone, PartialEq)]
pub struct BackendDef {
    /// Its name.
    pub name: Ident,
    /// Its fields; `None` for `backend name none;`.
    pub fields: Option<Vec<Field>>,
}

/// `probe name { .field = value; … }`
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeDef {
    /// Its name.
    pub name: Ident,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// `.name = value;` in a backend or probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The name, without the dot (its span includes the dot).
    pub name: Ident,
    /// The value.
    pub value: FieldValue,
}

/// The value of a backend or probe field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// One string, or several written one after the other (`.request`).
    Str(Vec<String>, Span),
    /// `8080`
    Int(i64, Span),
    /// `5s`
    Duration(f64, Span),
    /// A name (`.probe = healthcheck;`).
    Name(Ident),
    /// An inline probe (`.probe = { .url = "/"; }`).
    Probe(Vec<Field>, Span),
}

impl FieldValue {
    /// Where the value is written.
    pub fn span(&self) -> Span {
        match self {
            FieldValue::Str(_, s)
            | FieldValue::Int(_, s)
            | FieldValue::Duration(_, s)
            | FieldValue::Probe(_, s) => *s,
            FieldValue::Name(i) => i.span,
        }
    }
}

/// `acl name { "127.0.0.1"; "10.0.0.0"/8; !"10.0.0.1"; }`
#[derive(Debug, Clone, PartialEq)]
pub struct Acl {
    /// Its name.
    pub name: Ident,
    /// Its flags (`+log -pedantic`), as written.
    pub flags: AclFlags,
    /// Its entries, in order.
    pub entries: Vec<AclEntry>,
}

/// An ACL's flags, Varnish 7's defaults unless written
/// (`acl name -log +pedantic -table { … }` is the same as none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclFlags {
    /// `+log`: each match is logged (which entry decided, or none).
    pub log: bool,
    /// `+pedantic` (the default): bits set after an entry's prefix are an
    /// error; `-pedantic` clears them, with a warning.
    pub pedantic: bool,
    /// `+table`: accepted; Varnish's compile-time trade-off, no effect here.
    pub table: bool,
    /// `+fold`: accepted; Varnish merges adjacent networks, which only
    /// changes which entry `+log` names. No effect here.
    pub fold: bool,
}

impl Default for AclFlags {
    fn default() -> Self {
        AclFlags {
            log: false,
            pedantic: true,
            table: false,
            fold: false,
        }
    }
}

/// One line of an ACL.
#[derive(Debug, Clone, PartialEq)]
pub struct AclEntry {
    /// `!` before the address: matching addresses are excluded.
    pub negated: bool,
    /// In parentheses, `( "name" )`: a host name that does not resolve is
    /// skipped (with a warning) instead of being an error.
    pub optional: bool,
    /// The address or host name, as written between the quotes.
    pub addr: String,
    /// Where the quoted address is.
    pub addr_span: Span,
    /// `/bits` after the address.
    pub prefix: Option<(i64, Span)>,
}

/// `sub name { ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct SubDef {
    /// Its name.
    pub name: Ident,
    /// Its statements.
    pub body: Block,
}

/// `{ statements }`
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The statements, in order.
    pub stmts: Vec<Stmt>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// What it does.
    pub kind: StmtKind,
    /// From its first token to its `;` (or closing `}`).
    pub span: Span,
}

/// The statements.
#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `if (c) { } elseif (c) { } else { }`
    If {
        /// Each condition with its block, in order.
        branches: Vec<(Expr, Block)>,
        /// The final `else`.
        otherwise: Option<Block>,
    },
    /// `set VAR = EXPR;`
    Set {
        /// The variable.
        target: Ident,
        /// The value.
        value: Expr,
    },
    /// `unset VAR;`
    Unset(Ident),
    /// `return (action);` or `return (action(args));`
    Return(ActionExpr),
    /// `call name;`
    Call(Ident),
    /// `hash_data(EXPR);`
    HashData(Expr),
    /// `synthetic(EXPR);`
    Synthetic(Expr),
    /// `new name = vmod.object(args);` (vcl_init)
    New {
        /// The object's name.
        name: Ident,
        /// The constructor (`directors.round_robin`).
        ctor: Ident,
        /// Its arguments (`directors.fallback(sticky = true)`).
        args: Vec<Arg>,
    },
    /// `name(args);`: a function called as a statement (`std.log("x");`,
    /// `ban(…);`); its result, if any, is dropped.
    CallFunction {
        /// The function.
        name: Ident,
        /// Its arguments.
        args: Vec<Arg>,
    },
}

/// The action of a `return`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionExpr {
    /// `hash`, `pass`, `synth`, …
    pub name: Ident,
    /// `synth(404, "Not found")` arguments.
    pub args: Vec<Expr>,
    /// The whole action, name and arguments.
    pub span: Span,
}

/// An expression and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `~`
    Match,
    /// `!~`
    NoMatch,
}

impl CmpOp {
    /// As written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Match => "~",
            CmpOp::NoMatch => "!~",
        }
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOp {
    /// `+`: addition or string concatenation.
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl AddOp {
    /// As written.
    pub fn symbol(self) -> &'static str {
        match self {
            AddOp::Add => "+",
            AddOp::Sub => "-",
            AddOp::Mul => "*",
            AddOp::Div => "/",
        }
    }
}

/// A function argument: positional, or named (`fallback = 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The parameter's name, for a named argument.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// The expressions. Chains of `||`, `&&` and `+`/`-` are kept flat.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `"text"`
    Str(String),
    /// `42`
    Int(i64),
    /// `10s` (in seconds)
    Duration(f64),
    /// `1.5`
    Real(f64),
    /// `10KB` (in bytes)
    Bytes(i64),
    /// `true`, `false`
    Bool(bool),
    /// A variable, or an ACL name on the right of `~`.
    Name(Ident),
    /// `f(a, b)`, `f(a, name = b)`
    Call {
        /// The function.
        name: Ident,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// `!e`
    Not(Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `a + b - c` (or `a * b / c`: products are parsed first, each its
    /// own `Arith`): the first operand and the rest with their operators.
    Arith(Box<Expr>, Vec<(AddOp, Span, Expr)>),
    /// `a == b`, `a ~ "re"`, …
    Cmp {
        /// The operator.
        op: CmpOp,
        /// Where the operator is.
        op_span: Span,
        /// Left.
        lhs: Box<Expr>,
        /// Right.
        rhs: Box<Expr>,
    },
    /// `a && b && c`
    And(Vec<Expr>),
    /// `a || b || c`
    Or(Vec<Expr>),
}
