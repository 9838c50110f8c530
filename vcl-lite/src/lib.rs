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
pub mod error;
mod eval;
mod ir;
pub mod lexer;
pub mod parser;
pub mod reference;
mod vars;

pub use acl::CompiledAcl;
pub use action::Action;
pub use error::{Error, Location, RuntimeError, Span};
pub use eval::{Context, Program, Value, MAX_CALL_DEPTH};
pub use vars::{Header, Sub, Type, Var};

/// The built-in policy (`default.vcl`), written in vcl-lite.
pub const DEFAULT_POLICY: &str = include_str!("../default.vcl");

/// Parses and checks a policy. `file_name` is used in error messages.
pub fn compile(source: &str, file_name: &str) -> Result<Program, Error> {
    let policy = parser::parse(source, file_name)?;
    check::check(&policy, source, file_name)
}
