//! ESI: Edge Side Includes, parsed once when a page is stored.
pub mod parse;
pub mod vars;
