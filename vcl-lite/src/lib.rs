//! vcl-lite: lacquer's policy language.
//!
//! It keeps Varnish VCL's look and meaning for what operators actually write,
//! with better error messages. See `README.md` for the language reference.
//!
//! ```
//! use vcl_lite::{compile, Sub};
//!
//! let program = compile(
//!     r#"sub vcl_recv { if (req.method != "GET") { return (pass); } }"#,
//!     "policy.vcl",
//! )
//! .unwrap();
//! assert!(program.defines(Sub::Recv));
//! ```
//!
//! The host implements [`Context`] and calls [`Program::run`] at each step.

mod acl;
mod action;
pub mod ast;
mod check;
mod decl;
mod directors;
mod dynamic;
mod early_unset;
pub mod error;
mod eval;
mod funcs;
mod host_form;
mod include;
mod ir;
pub mod lexer;
pub mod parser;
mod pattern;
pub mod reference;
pub mod stdlib;
mod vars;
mod vmods;

pub use acl::{with_resolver, CompiledAcl, Resolver};
pub use action::Action;
pub use decl::{Backend, Probe};
pub use directors::{Director, DirectorKind, Member};
pub use error::{Error, Errors, Location, RuntimeError, Span, MAX_ERRORS};
pub use eval::{Context, Program, Value, MAX_CALL_DEPTH};
pub use funcs::HttpPart;
pub use include::{ReadFile, MAX_INCLUDE_DEPTH};
pub use pattern::{BACKTRACK_LIMIT, DENSE_SIZE_LIMIT, REGEX_SIZE_LIMIT};
pub use vars::{Header, Literal, Sub, Type, Var};
pub use vmods::{ProxyField, SoftPurge, TaskState, MAX_COOKIES, MAX_VARIABLES};

/// The built-in policy (`default.vcl`), written in vcl-lite.
pub const DEFAULT_POLICY: &str = include_str!("../default.vcl");

/// Varnish 7's split built-in subroutines (`vcl_builtin_recv`, …) as
/// vcl-lite runs them for `call vcl_builtin_…;`.
pub const BUILTIN_SUBS: &str = include_str!("../builtin.vcl");

/// `builtin.vcl`, compiled once: what a host runs where a policy's
/// subroutine ends without `return` (varnishd appends its built-in VCL to
/// every VCL it loads). `None` only if `builtin.vcl` itself does not
/// compile, which a unit test rules out.
pub fn builtin_program() -> Option<&'static Program> {
    static PROGRAM: std::sync::OnceLock<Option<Program>> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| compile(BUILTIN_SUBS, "builtin.vcl").ok())
        .as_ref()
}

/// Parses and checks a policy. `file_name` is used in error messages.
/// An `include` in it is an error: use [`compile_file`].
pub fn compile(source: &str, file_name: &str) -> Result<Program, Error> {
    let policy = parser::parse(source, file_name)?;
    check::check(
        &policy,
        source,
        file_name,
        error::SourceMap::single(file_name, source),
    )
    .map_err(|mut errors| errors.swap_remove(0))
}

/// Why [`compile_file`] failed.
#[derive(Debug)]
pub enum LoadError {
    /// The main file could not be read.
    Read {
        /// Its path.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// It (or a file it includes) does not compile.
    Compile(Errors),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read { file, source } => write!(f, "{file}: {source}"),
            LoadError::Compile(errors) => errors.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads, expands (`include "file.vcl";`, relative to the including file)
/// and compiles the policy at `path`, reading every file with `read`
/// (`&mut |p| std::fs::read_to_string(p)`, or files in memory in tests).
/// Errors name the file they are in.
pub fn compile_file(path: &std::path::Path, read: &mut ReadFile<'_>) -> Result<Program, LoadError> {
    let text = read(path).map_err(|source| LoadError::Read {
        file: path.display().to_string(),
        source,
    })?;
    let expanded = include::expand(path, &text, read).map_err(|e| LoadError::Compile(e.into()))?;
    let main = path.display().to_string();
    let map = expanded.map;
    let fail = |errors: Vec<Error>| {
        LoadError::Compile(Errors(
            errors.into_iter().map(|e| map.relocate(e)).collect(),
        ))
    };
    let policy = parser::parse_all(&expanded.text, &main).map_err(fail)?;
    check::check(&policy, &expanded.text, &main, map.clone()).map_err(fail)
}
