//! Invalidation: PURGE, BAN and surrogate keys.
pub mod acl;
pub mod ban_expr;
pub mod bans;
pub mod lurker;
pub mod op;
