//! [`Action`]: what a subroutine decides. A leaf module, so that both the
//! compiled form (`ir`) and the evaluator (`eval`) can name it.

/// What a subroutine decided (`return (...)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `hash` (vcl_recv): look the request up in the cache.
    Hash,
    /// `lookup` (vcl_hash).
    Lookup,
    /// `pass`: go to the backend, store nothing.
    Pass,
    /// `pipe` (vcl_recv): lacquer passes the request.
    Pipe,
    /// `purge` (vcl_recv): invalidate the URL.
    Purge,
    /// `ban` (vcl_recv, a lacquer extension): add the ban in the `X-Ban` header.
    Ban,
    /// `restart`: start over at vcl_recv.
    Restart,
    /// `fetch`: fetch from the backend.
    Fetch,
    /// `miss` (vcl_hit, as Varnish 5 had it; `fetch` there means the same,
    /// as in Varnish 4.0): ignore the hit and fetch as on a miss, the
    /// stored object used to revalidate. Varnish 7 refuses both; vcl-lite
    /// keeps such policies running.
    Miss,
    /// `deliver`
    Deliver,
    /// `retry` (backend): fetch again.
    Retry,
    /// `abandon` (backend): give up the fetch.
    Abandon,
    /// `fail`: fail the request (503 to the client); in vcl_init, the
    /// policy does not load.
    Fail,
    /// `ok` (vcl_init, vcl_fini).
    Ok,
    /// `synth(status[, reason])`: answer with a synthetic response.
    Synth {
        /// 100 to 999.
        status: u16,
        /// The reason phrase, when given.
        reason: Option<String>,
    },
    /// `error(status[, reason])` (backend): go to vcl_backend_error.
    Error {
        /// 100 to 999.
        status: u16,
        /// The reason phrase, when given.
        reason: Option<String>,
    },
    /// `pass(duration)` (vcl_backend_response): hit-for-pass for that long.
    HitForPass {
        /// Seconds.
        ttl: f64,
    },
}
