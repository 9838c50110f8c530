//! The lifecycle's vocabulary (Varnish's `cache.h`): the data every step of
//! a request works on, and the policy interface that decides between steps.
//!
//! This module holds data and interfaces only; [`crate::pipeline`] is the one
//! driver that moves a request through the steps, and [`crate::policy`]
//! implements [`Policy`]. Both depend on this module, never on each other.
//!
//! | Type | Varnish | What |
//! |---|---|---|
//! | [`Task`] | `req` | one client request being served (`req.*` and the lifecycle's state for it) |
//! | [`Fetch`] | `busyobj` | one backend fetch in progress |
//! | [`Bereq`] | `bereq` | the backend request |
//! | [`Beresp`] | `beresp` | the backend response, in `vcl_backend_response` |
//! | [`ObjMeta`] | `obj` | the object behind a delivered response |
//! | [`Synthetic`] | `resp` in `vcl_synth` | an answer lacquer makes |
//! | [`Live`] | the loaded VCL | settings and policy of one generation |
//! | [`CacheOutcome`] | `X-Varnish`/`hitmiss` | how a response was served |
//! | [`Failure`] | `FetchError`/`VSLb` errors | why a request failed, and what the client is told |

mod bereq;
mod beresp;
mod clock;
mod failure;
mod fetch;
mod live;
mod outcome;
mod policy;
pub mod resp_fields;
mod synthetic;
mod task;
mod tlvs;

pub use bereq::Bereq;
pub use beresp::Beresp;
pub use clock::Clock;
pub use failure::{Failure, FailureKind};
pub use fetch::Fetch;
pub use live::{BackendHealth, Live, NoBackends};
pub use outcome::{CacheOutcome, ObjMeta};
pub use policy::{BackendAction, ClientAction, Hooks, Policy, RecvAction, READ_WHILE_DELIVERING};
pub use synthetic::{phrase_of, set_phrase, synth, synth_body, SynthText, Synthetic};
pub use task::{next_xid, ConnInfo, Original, PolicyServices, Task, UpgradeRequest};
/// Encoding TLVs as a PROXY v2 header carries them (for tests).
pub use tlvs::encode as encode_tlvs;
pub use tlvs::{ProxyTlvs, SslTlv, CLIENT_CERT_CONN, CLIENT_CERT_SESS, CLIENT_SSL};
