//! ESI: Edge Side Includes, parsed once when a page is stored
//! ([`parse`]), assembled at delivery ([`assemble`], with fragments from a
//! source the pipeline provides).
pub mod assemble;
pub mod chain;
pub mod parse;
pub mod src_url;
pub mod vars;
