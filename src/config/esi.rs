//! `[esi]`: when ESI applies to a response, and the limits of assembly.

use serde::Deserialize;

/// What the page keeps when an include fails and neither `alt`,
/// `onerror="continue"` nor `esi:try` handles it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EsiOnError {
    /// Varnish 7's default: the fragment's error body (if any) is inserted
    /// and the page keeps its status.
    #[default]
    Include,
    /// The ESI specification's behaviour: delivery is aborted. The status
    /// line is gone already, so the connection is cut before the end of the
    /// chunked body; clients and HAProxy see an incomplete response.
    Abort,
}

/// ESI processing and assembly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsiConfig {
    /// Regular expressions over the request URL (path and query): a
    /// response to a matching URL whose `Content-Type` is in
    /// `content_types` is processed. Empty (the default): only the
    /// `Surrogate-Control: content="ESI/1.0"` handshake and the policy
    /// (`set beresp.do_esi = true;`) turn ESI on.
    pub paths: Vec<String>,
    /// Media types (compared without parameters, case-insensitively) that
    /// `paths` applies to.
    pub content_types: Vec<String>,
    /// Deepest include level: the page is level 0, its includes level 1…
    /// An include that would be deeper is not fetched (logged).
    pub max_depth: u32,
    /// Most includes processed in one page; later ones are removed (logged).
    pub max_includes: usize,
    /// Includes of one page fetched at the same time.
    pub concurrency: usize,
    /// What an unhandled include failure does to the page.
    pub on_error: EsiOnError,
    /// Hosts that absolute `src` URLs (`http://host/…`) may name; the page's
    /// own host is always allowed. Anything else is refused (logged), so the
    /// cache is never an open proxy.
    pub allowed_hosts: Vec<String>,
    /// Largest fragment body inserted, after decoding a gzip'd one (the
    /// decoder stops as soon as it would produce more); a larger one counts
    /// as a failed include.
    pub max_fragment_size: crate::config::ByteSize,
    /// Fragment bytes one assembled page may hold ahead of its client:
    /// fetched includes wait (and stop reading their backend) once the page
    /// holds this much that the client has not taken yet. The include the
    /// client is waiting for next always proceeds, so a slow client costs at
    /// most about this plus one fragment (`max_fragment_size`) per page.
    /// Bytes inserted from the cache are the cache's and not counted.
    pub max_buffered: crate::config::ByteSize,
}

impl Default for EsiConfig {
    fn default() -> Self {
        EsiConfig {
            paths: Vec::new(),
            content_types: vec!["text/html".into()],
            max_depth: 5,
            max_includes: 256,
            concurrency: 32,
            on_error: EsiOnError::Include,
            allowed_hosts: Vec::new(),
            max_fragment_size: crate::config::ByteSize(8 << 20),
            max_buffered: crate::config::ByteSize(1 << 20),
        }
    }
}

impl EsiConfig {
    /// Checks what serde cannot: the regular expressions and the bounds.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.paths {
            regex::Regex::new(p).map_err(|e| format!("esi.paths: {p:?}: {e}"))?;
        }
        if self.concurrency == 0 {
            return Err("esi.concurrency: must be at least 1".into());
        }
        if self.max_buffered.0 == 0 {
            return Err("esi.max_buffered: must be at least 1 byte".into());
        }
        if self.max_depth > 64 {
            return Err("esi.max_depth: at most 64".into());
        }
        Ok(())
    }
}
