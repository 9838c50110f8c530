//! Answers lacquer makes itself: [`Synthetic`] (`resp.*` in `vcl_synth`,
//! `beresp.*` in `vcl_backend_error`) and [`synth`], the plain-text answer
//! that needs no policy.

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

use crate::body::RespBody;

/// A synthetic response being made: `resp.*` in `vcl_synth`, `beresp.*` in
/// `vcl_backend_error`.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Status.
    pub status: StatusCode,
    /// The reason as the policy reads it (`synth(status, reason)`'s, or
    /// lacquer's explanation).
    pub reason: String,
    /// A reason phrase the policy set: sent on the status line instead of
    /// the standard one.
    pub phrase: Option<String>,
    /// Headers (`Content-Type: text/plain; charset=utf-8` to begin with).
    pub headers: HeaderMap,
    /// The body written with `synthetic(...)`.
    pub body: String,
}

impl Synthetic {
    /// An empty answer with this status and reason.
    pub fn new(status: StatusCode, reason: String) -> Synthetic {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Synthetic {
            status,
            reason,
            phrase: None,
            headers,
            body: String::new(),
        }
    }

    /// lacquer's own body (status, reason) in place of the policy's.
    pub fn with_builtin_body(mut self) -> Synthetic {
        self.body = synth_body(self.status, &self.reason);
        self.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        self
    }

    /// The response as it goes out.
    pub fn into_response(self) -> Response<RespBody> {
        let len = self.body.len();
        let mut resp = Response::new(RespBody::full(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        // As in Varnish, the status line carries `resp.reason`
        // (`synth(403, "Closed room")` is `403 Closed room`).
        let phrase = self.phrase.unwrap_or(self.reason);
        if self.status.canonical_reason() != Some(phrase.as_str()) {
            set_phrase(&mut resp, &phrase);
        }
        resp
    }
}

/// Sends `phrase` on the status line (ignored when it is not a valid
/// reason phrase).
pub fn set_phrase<B>(resp: &mut Response<B>, phrase: &str) {
    if let Ok(p) = hyper::ext::ReasonPhrase::try_from(phrase.as_bytes().to_vec()) {
        resp.extensions_mut().insert(p);
    }
}

/// The reason phrase a response will be sent with.
pub fn phrase_of<B>(resp: &Response<B>) -> &str {
    resp.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|p| std::str::from_utf8(p.as_bytes()).ok())
        .or_else(|| resp.status().canonical_reason())
        .unwrap_or("")
}

/// lacquer's body for a synthetic answer: status, reason phrase, message.
pub fn synth_body(status: StatusCode, message: &str) -> String {
    format!(
        "{} {}\n{}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message
    )
}

/// The explanation a synthetic answer carries: text (`&str`, `&String`),
/// or an outcome that describes itself (a reload's).
pub trait SynthText {
    /// The text.
    fn text(&self) -> std::borrow::Cow<'_, str>;
}

impl SynthText for &str {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self)
    }
}

impl SynthText for &String {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(self.as_str())
    }
}

/// A synthetic answer: `status` with a short plain-text explanation. (The
/// lifecycle's own synthetic answers go through `vcl_synth` first.)
pub fn synth(status: StatusCode, message: impl SynthText) -> Response<RespBody> {
    let body = synth_body(status, &message.text());
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
