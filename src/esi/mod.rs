//! ESI: Edge Side Includes, parsed once when a page is stored
//! ([`parse`]), assembled at delivery by `pipeline::esi`.
pub mod chain;
pub mod parse;
pub mod src_url;
pub mod vars;
