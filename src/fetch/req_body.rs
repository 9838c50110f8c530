//! The request body sent to a backend: empty, held in memory (replayable
//! on a retry), or the client's streamed body with its idle timeout, the
//! fault it ended with, and the signal that it was sent whole.

use crate::h1::RequestBody;
use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

use crate::http::BoxError;

/// A request body sent to a backend.
#[derive(Debug)]
pub enum ReqBody {
    /// No body.
    Empty,
    /// A body held in memory (replayable: requests with it can be retried).
    Full(Option<Bytes>),
    /// The client's body, streamed as it arrives.
    Stream(ClientBody),
}

/// Why a client's streamed request body could not be passed on: the
/// client's doing, answered with a 4xx and no backend error counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    /// The client paused its body longer than `server.body_timeout`.
    #[error("client request body stalled beyond server.body_timeout")]
    Stalled,
    /// The body could not be decoded (bad chunked framing: a size that
    /// overflows or is not hex, a bare LF, too long extensions) or ended
    /// before its end.
    #[error("malformed or incomplete request body")]
    Malformed,
}

impl BodyFault {
    /// The status the client gets: 408 for a stall, 400 otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            BodyFault::Stalled => StatusCode::REQUEST_TIMEOUT,
            BodyFault::Malformed => StatusCode::BAD_REQUEST,
        }
    }
}

/// Where a [`ClientBody`] records its first [`BodyFault`], for the exchange
/// that was sending it.
#[derive(Debug, Default)]
pub struct FaultSlot(AtomicU8);

impl FaultSlot {
    const STALLED: u8 = 1;
    const MALFORMED: u8 = 2;

    fn set(&self, fault: BodyFault) {
        let v = match fault {
            BodyFault::Stalled => Self::STALLED,
            BodyFault::Malformed => Self::MALFORMED,
        };
        let _ = self
            .0
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The fault recorded, if any.
    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Acquire) {
            Self::STALLED => Some(BodyFault::Stalled),
            Self::MALFORMED => Some(BodyFault::Malformed),
            _ => None,
        }
    }
}

/// A client's request body on its way to a backend, cut off when the client
/// sends nothing for longer than the idle timeout (a slow-body client would
/// otherwise hold a backend connection forever).
pub struct ClientBody {
    inner: RequestBody,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    fault: Arc<FaultSlot>,
    sent: BodySent,
}

/// Tells when a streamed request body has been handed over whole: the
/// backend's first-byte timeout starts then, not when the head is sent (an
/// upload may take longer than the backend needs to answer it).
#[derive(Clone, Debug, Default)]
pub struct BodySent(Arc<BodySentState>);

#[derive(Debug, Default)]
struct BodySentState {
    done: AtomicBool,
    notify: tokio::sync::Notify,
}

impl BodySent {
    fn mark(&self) {
        if !self.0.done.swap(true, Ordering::AcqRel) {
            self.0.notify.notify_waiters();
        }
    }

    /// Resolves once the body's last byte has been read from the client.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.0.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl ClientBody {
    /// Wraps `inner`; `fault` records why it failed, if it does.
    pub fn new(inner: RequestBody, idle: Duration, fault: Arc<FaultSlot>) -> ClientBody {
        ClientBody {
            inner,
            idle,
            timer: None,
            fault,
            sent: BodySent::default(),
        }
    }

    /// The signal that the whole body has been read.
    pub fn sent(&self) -> BodySent {
        self.sent.clone()
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.timer = None;
                if let Some(Err(e)) = &frame {
                    tracing::debug!(error = %e, "client request body failed");
                    self.fault.set(BodyFault::Malformed);
                } else if frame.is_none() || self.inner.is_end_stream() {
                    self.sent.mark();
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.fault.set(BodyFault::Stalled);
                    self.timer = Some(Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
                    return Poll::Ready(Some(Err(BodyFault::Stalled.into())));
                }
                Poll::Pending
            }
        }
    }
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("idle", &self.idle)
            .finish()
    }
}

impl ReqBody {
    /// For a streamed body, the signal that it has been read whole; `None`
    /// for bodies sent with the head.
    pub fn sent(&self) -> Option<BodySent> {
        match self {
            ReqBody::Stream(s) => Some(s.sent()),
            _ => None,
        }
    }

    /// A copy of this body when it can be sent again (retries).
    pub fn try_clone(&self) -> Option<ReqBody> {
        match self {
            ReqBody::Empty => Some(ReqBody::Empty),
            ReqBody::Full(b) => Some(ReqBody::Full(b.clone())),
            ReqBody::Stream(_) => None,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Stream(s) => s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReqBody::Stream(s) => s.inner.size_hint(),
        }
    }
}
