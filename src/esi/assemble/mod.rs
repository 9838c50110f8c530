//! Assembling a parsed page ([`Template`]) into the body delivered to a
//! client, with its includes taken from a [`FragmentSource`] (the cache and
//! the request lifecycle in lacquer, a map in the tests).
//!
//! **Plan** (synchronous, [`plan`]): walk the template; literal bytes and
//! variables are ready at once, `esi:choose` picks its branch, and every
//! include is asked of [`FragmentSource::cached`]. A stored fragment is
//! inserted directly — a stored ESI page is planned in place, one level
//! deeper; a coded one (gzip, br, zstd) is inserted decoded (decoded once,
//! by the source, for all hits). Any other include is started at once as a task
//! ([`fetch`]: [`FragmentSource::fetch`], then `alt` if it failed), at most
//! [`Settings::concurrency`] per page at a time.
//!
//! **Output** ([`emit`]): when everything was ready the body is a list of
//! buffers ([`Assembled::Ready`], an exact length). Otherwise a task sends
//! the parts down a channel in document order ([`Assembled::Streaming`]):
//! bytes before the first pending include leave at once, each fragment as
//! soon as it and everything before it are ready. Fetched bytes not yet
//! taken by the client are charged to the page's
//! [`Settings::max_buffered`] budget ([`budget`]); includes wait for it,
//! except the one the client is waiting for (its turn), so a slow client
//! costs a bounded amount of memory and nothing deadlocks.
//!
//! **Errors.** A failed include (status ≥ 400, a cut or oversized body, a
//! refused `src`) tries `alt`; then `onerror="continue"` drops it, and
//! inside `esi:attempt` the `esi:except` branch is delivered instead.
//! Otherwise [`OnError`] decides: insert the fragment's error body, or
//! abort the response. An include of a page already on the include path
//! (a loop), or deeper than [`Settings::max_depth`], is not fetched and is
//! reported ([`Event`]); the page goes on without it.
//!
//! Only a fragment's body is used: its headers never reach the client.
//!
//! This module knows nothing of the cache, the settings or the lifecycle:
//! what it needs of them is the [`FragmentSource`] trait and [`Settings`].

mod budget;
mod emit;
mod fetch;
mod plan;
#[cfg(test)]
mod tests;

pub use budget::{Charge, Piece};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Body;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::chain::IncludeChain;
use super::parse::Template;
use super::src_url::SrcError;
use crate::http::coding::DecodeError;
use budget::Budget;

/// The error that ends a streamed page early (the connection is cut).
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// Pieces buffered between the assembling task and the client connection
/// (fetched bytes among them are charged to the page's budget).
const CHANNEL_DEPTH: usize = 16;

/// What an unhandled include failure does to the page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// Insert the fragment's error body (maybe empty); the page goes on.
    #[default]
    Include,
    /// Abort delivery: the stream ends with an error ([`Aborted`]).
    Abort,
}

/// The limits of one assembly (`esi.*` in lacquer's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Deepest include level: the page is level 0; includes of a page at a
    /// level above this are not fetched.
    pub max_depth: u32,
    /// Includes of one page fetched at the same time.
    pub concurrency: usize,
    /// Largest fragment body inserted (after decoding a gzip'd one).
    pub max_fragment_size: u64,
    /// Fetched bytes the page may hold ahead of its client.
    pub max_buffered: u64,
    /// What an unhandled include failure does.
    pub on_error: OnError,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_depth: 5,
            concurrency: 32,
            max_fragment_size: 8 << 20,
            max_buffered: 1 << 20,
            on_error: OnError::Include,
        }
    }
}

/// A request for one fragment: a GET of `url` on `host` with the page's
/// client headers (conditionals, `Range`, `Accept-Encoding`,
/// `Content-Length` and `Content-Type` removed; `Host` set to `host`).
#[derive(Debug, Clone)]
pub struct FragmentRequest {
    /// The fragment's host (normal form).
    pub host: String,
    /// Its path and query.
    pub url: String,
    /// The headers to send.
    pub headers: HeaderMap,
    /// The pages above the fragment, the including page last.
    pub chain: Arc<IncludeChain>,
}

/// What the source holds for an include, at plan time.
pub enum Cached<S> {
    /// Nothing usable: fetch it.
    Miss,
    /// A stored body (identity bytes), inserted as it is.
    Body(Bytes),
    /// A stored ESI page, planned in place one level deeper, for the
    /// request it was found for (the source may have changed its host, URL
    /// or headers on the way).
    Page {
        /// The page.
        template: Arc<Template>,
        /// Its host.
        host: String,
        /// Its path and query.
        url: String,
        /// The request's headers.
        headers: HeaderMap,
    },
    /// A stored coded (gzip, br, zstd) body decoded before: its decoded
    /// bytes, or `None` when it did not decode within the limit (the
    /// include fails).
    Decoded(Option<Bytes>),
    /// A stored coded body not decoded yet: [`FragmentSource::decode`].
    Coded(S),
}

/// Something the engine tells its source, for logs and metrics. Every
/// event but [`Event::Include`] is an ESI error.
#[derive(Debug)]
pub enum Event<'a> {
    /// An include was met.
    Include,
    /// Includes of `page`, at `level`, would be deeper than `max`: not fetched.
    TooDeep {
        /// The including page's URL.
        page: &'a str,
        /// Its level.
        level: usize,
        /// The limit.
        max: u32,
    },
    /// An include's `src` (or `alt`) was refused.
    Refused {
        /// The including page's URL.
        page: &'a str,
        /// Why.
        error: &'a SrcError,
    },
    /// An include of a page already on the include path: not fetched.
    Loop {
        /// The including page's URL.
        page: &'a str,
        /// The fragment's URL.
        src: &'a str,
    },
    /// A fragment answered with a status of 400 or more.
    Status {
        /// The including page's URL.
        page: &'a str,
        /// The fragment's URL.
        src: &'a str,
    },
    /// A fragment's body could not be read or decoded.
    Body {
        /// The including page's URL.
        page: &'a str,
        /// The fragment's URL.
        src: &'a str,
        /// Why.
        error: &'a ReadError,
    },
    /// A stored coded fragment does not decode within
    /// [`Settings::max_fragment_size`].
    TooLarge {
        /// The including page's URL.
        page: &'a str,
        /// The fragment's URL.
        src: &'a str,
    },
}

/// Where fragments come from.
pub trait FragmentSource: Send + Sync + 'static {
    /// A fragment's response body.
    type Body: Body<Data = Bytes, Error: std::fmt::Display + Send> + Send + Unpin + 'static;
    /// A stored coded fragment to decode.
    type Stored: Send + 'static;

    /// What is stored for `req`, without waiting (plan time). A fragment
    /// that is not fresh (or in grace), or whose status is 400 or more, is
    /// a [`Cached::Miss`].
    fn cached(&self, req: FragmentRequest) -> Cached<Self::Stored>;

    /// Fetches `req` (through the cache: a miss may be stored).
    fn fetch(&self, req: FragmentRequest) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The stored coded fragment that `body` (as fetched for `req`, still
    /// compressed) is, once the fetch has stored it (a miss stores its
    /// object just after its last byte: this waits for that): it is then
    /// decoded once for every include of it, as for a hit.
    fn stored<'a>(
        &'a self,
        req: FragmentRequest,
        body: &'a [Piece],
    ) -> impl Future<Output = Option<Self::Stored>> + Send + 'a;

    /// Decodes a stored coded fragment once for every request of it,
    /// stopping beyond `limit` bytes: the decoded body, or `None` when it
    /// does not decode within the limit.
    fn decode(
        &self,
        stored: Self::Stored,
        limit: u64,
    ) -> impl Future<Output = Option<Bytes>> + Send;

    /// Hosts, besides the page's own, that a `src` may name.
    fn allowed_hosts(&self) -> &[String];

    /// Held while a fetched coded fragment is decoded (a metric).
    fn decoding(&self) -> impl Send + '_ {}

    /// Something to log or count.
    fn event(&self, event: Event<'_>);
}

/// The page being assembled, as its client asked for it.
#[derive(Debug, Clone)]
pub struct PageRequest<'a> {
    /// Its host.
    pub host: &'a str,
    /// Its path and query.
    pub url: &'a str,
    /// The client's headers (for variables, and fragment requests).
    pub headers: HeaderMap,
    /// The pages above it (`None` for a client's own request).
    pub above: Option<&'a IncludeChain>,
}

/// An assembled body.
#[derive(Debug)]
pub enum Assembled {
    /// Every part was ready: the buffers, in order.
    Ready(VecDeque<Bytes>),
    /// Parts arrive in document order from the assembling task; an `Err`
    /// ends the page early.
    Streaming(mpsc::Receiver<Result<Piece, StreamError>>),
}

/// The page was cut: an include failed and [`OnError::Abort`] is set.
#[derive(Debug, thiserror::Error)]
#[error("ESI include failed: delivery aborted")]
pub struct Aborted;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body stream failed.
    #[error("backend body failed: {0}")]
    Body(String),
    /// It is larger than the limit.
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    /// It did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// What one assembly shares between its tasks and the pages planned in
/// place.
struct Shared<S> {
    source: S,
    settings: Settings,
    budget: Budget,
}

/// Assembles `template` for `page`. `gauge` counts the bytes held against
/// the budget (`lacquer_esi_buffered_bytes`). Must be called within a tokio
/// runtime: includes not in the cache are fetched by tasks.
pub fn assemble<S: FragmentSource>(
    source: S,
    settings: Settings,
    page: PageRequest<'_>,
    template: &Template,
    gauge: Arc<AtomicU64>,
) -> Assembled {
    let shared = Arc::new(Shared {
        source,
        settings,
        budget: Budget::new(settings.max_buffered, gauge),
    });
    let page = Arc::new(plan::Page::new(
        page.host.to_owned(),
        page.url.to_owned(),
        page.headers,
        page.above,
        settings.concurrency,
    ));
    let mut parts = Vec::new();
    plan::plan(&shared, &page, &template.segments, &mut parts);
    if plan::is_ready(&parts) {
        let mut out = VecDeque::with_capacity(parts.len());
        plan::flatten_ready(parts, &mut out);
        return Assembled::Ready(out);
    }
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        let _ = emit::emit(&shared, parts, &mut emit::Sink::Client(&tx)).await;
        shared.budget.close();
    });
    Assembled::Streaming(rx)
}

/// Reads a body whole, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: u64) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    Ok(fetch::concat(&fetch::collect(body, limit, None).await?))
}
