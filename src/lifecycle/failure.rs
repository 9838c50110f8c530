//! Why a request could not be served as asked: one [`Failure`] type for
//! every step, turned into a response in one place (`Proxy::process` in
//! the pipeline, through `vcl_synth`).
//!
//! What the client is told is fixed per kind ([`FailureKind::public_reason`]):
//! the detail — which backend, the OS error, which hook — names internal
//! hosts, ports and policy internals, so it goes to the log only.

use http::StatusCode;
use std::borrow::Cow;
use std::fmt;

/// What went wrong, which decides the status and the public reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request cannot be served by a proxy (no or a bad Host, a bad
    /// target): 400. Its public reason says what was wrong with the
    /// client's own request.
    BadRequest,
    /// A method lacquer does not forward (CONNECT): 405.
    MethodNotAllowed,
    /// The client's streamed body paused longer than
    /// `server.body_timeout`: 408.
    BodyStalled,
    /// The client's body was malformed or cut short: 400.
    BodyMalformed,
    /// No healthy backend, or none could be reached: 503.
    BackendUnavailable,
    /// The backend did not answer in time: 504.
    BackendTimeout,
    /// The backend's answer could not be used (a protocol error, an
    /// unasked-for 101): 502.
    BadGateway,
    /// The fetch was given up: the policy abandoned it, retries ran out,
    /// a streamed body could not be sent again, a shared fetch failed: 503.
    FetchFailed,
    /// A policy hook failed (`return (fail)`, a run-time error): 503.
    PolicyFailed,
    /// The policy restarted the request more than `MAX_RESTARTS` times: 503.
    TooManyRestarts,
    /// The policy's own `error(status, reason)` on the backend side, with
    /// no `vcl_backend_error` to answer it: its status and reason.
    PolicyError,
}

impl FailureKind {
    /// The status the client gets.
    pub fn status(self) -> StatusCode {
        match self {
            FailureKind::BadRequest | FailureKind::BodyMalformed => StatusCode::BAD_REQUEST,
            FailureKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            FailureKind::BodyStalled => StatusCode::REQUEST_TIMEOUT,
            FailureKind::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            FailureKind::BadGateway => StatusCode::BAD_GATEWAY,
            FailureKind::BackendUnavailable
            | FailureKind::FetchFailed
            | FailureKind::PolicyFailed
            | FailureKind::PolicyError
            | FailureKind::TooManyRestarts => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the client is told: a fixed text per kind.
    pub fn public_reason(self) -> &'static str {
        match self {
            FailureKind::BadRequest => "bad request",
            FailureKind::MethodNotAllowed => "method not allowed",
            FailureKind::BodyStalled => "client request body stalled beyond server.body_timeout",
            FailureKind::BodyMalformed => "malformed or incomplete request body",
            FailureKind::BackendUnavailable => "no healthy backend",
            FailureKind::BackendTimeout => "backend timed out",
            FailureKind::BadGateway | FailureKind::FetchFailed => "backend fetch failed",
            FailureKind::PolicyFailed | FailureKind::PolicyError => "policy failed",
            FailureKind::TooManyRestarts => "too many restarts",
        }
    }

    /// Whether `vcl_backend_error` may retry the fetch after it: backend
    /// failures may be; the client's and the policy's are final.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureKind::BackendUnavailable | FailureKind::BackendTimeout | FailureKind::BadGateway
        )
    }

    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BadRequest => "bad-request",
            FailureKind::MethodNotAllowed => "method-not-allowed",
            FailureKind::BodyStalled => "body-stalled",
            FailureKind::BodyMalformed => "body-malformed",
            FailureKind::BackendUnavailable => "backend-unavailable",
            FailureKind::BackendTimeout => "backend-timeout",
            FailureKind::BadGateway => "bad-gateway",
            FailureKind::FetchFailed => "fetch-failed",
            FailureKind::PolicyFailed => "policy-failed",
            FailureKind::TooManyRestarts => "too-many-restarts",
            FailureKind::PolicyError => "policy-error",
        }
    }
}

/// A request that failed: its kind, what the client is told, and what the
/// log is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The status the client gets (the kind's, unless a refusal names its
    /// own, e.g. 405 with `Allow`).
    pub status: StatusCode,
    /// What the client is told: the kind's fixed text, a refusal's static
    /// explanation, or the policy's own reason — never the `source`.
    pub reason: Cow<'static, str>,
    /// The cause, for the log only.
    pub source: Cow<'static, str>,
    /// Whether a retry may help (see [`FailureKind::retryable`]).
    pub retryable: bool,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Failure {
    /// A failure of this kind, with its status and public reason.
    pub fn new(kind: FailureKind) -> Failure {
        Failure {
            kind,
            status: kind.status(),
            reason: Cow::Borrowed(kind.public_reason()),
            source: Cow::Borrowed(""),
            retryable: kind.retryable(),
            allow: None,
        }
    }

    /// The cause, for the log.
    pub fn because(mut self, source: impl Into<Cow<'static, str>>) -> Failure {
        self.source = source.into();
        self
    }

    /// A public reason other than the kind's (a refusal saying what was
    /// wrong with the client's own request).
    pub fn telling(mut self, reason: &'static str) -> Failure {
        self.reason = Cow::Borrowed(reason);
        self
    }

    /// The policy's `error(status, reason)` (status and reason are the
    /// policy's to choose, as in Varnish).
    pub fn policy_error(status: StatusCode, reason: String) -> Failure {
        Failure {
            status,
            reason: Cow::Owned(reason),
            ..Failure::new(FailureKind::PolicyError)
        }
    }

    /// A failure seen by a request that waited on another's fetch: its
    /// status and public reason.
    pub fn shared(status: StatusCode, reason: &[u8]) -> Failure {
        Failure {
            status,
            reason: Cow::Owned(String::from_utf8_lossy(reason).into_owned()),
            ..Failure::new(FailureKind::FetchFailed).because("the shared fetch failed")
        }
    }

    /// An `Allow` header for a 405.
    pub fn allowing(mut self, methods: &'static str) -> Failure {
        self.allow = Some(methods);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.reason)?;
        if !self.source.is_empty() {
            write!(f, " ({})", self.source)?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_reason_is_the_kinds_and_the_source_stays_out_of_it() {
        let f = Failure::new(FailureKind::BackendUnavailable)
            .because("connect to 10.0.0.7:8080: Connection refused");
        assert_eq!(f.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(f.reason, "no healthy backend");
        assert!(f.retryable);
        assert!(!Failure::new(FailureKind::PolicyFailed).retryable);
        assert_eq!(
            f.to_string(),
            "503 no healthy backend (connect to 10.0.0.7:8080: Connection refused)"
        );
    }
}
