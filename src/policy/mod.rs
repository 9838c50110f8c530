//! The policies: lacquer's built-in one, and a vcl-lite program
//! ([`vcl::VclPolicy`]) run through the hooks of
//! [`crate::lifecycle::Policy`], where their interface is defined.

pub mod vcl;

pub use crate::lifecycle::{BackendAction, ClientAction, Hooks, Policy, RecvAction};

/// lacquer's built-in policy.
#[derive(Debug, Default, Clone, Copy)]
pub struct Builtin;

impl Policy for Builtin {}
