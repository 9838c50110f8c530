//! A client's request body as the handler reads it, and the connection's
//! side that feeds it.
//!
//! The connection owns the socket; the body may be read by another task
//! (a backend exchange). The two meet in a one-piece slot under a lock: the
//! reader asks (`want`) and waits, the connection reads and decodes the
//! next piece only when asked — so nothing is read that no one wants, and
//! `Expect: 100-continue` is answered only when the body is first asked
//! for.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::{poll_fill, Decoder, Step, BODY_READ_SIZE};

/// Why a request body ended before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Bad chunked coding.
    #[error("malformed chunked request body")]
    Malformed,
    /// The client closed the connection (or it failed) before the body's
    /// end.
    #[error("connection closed before the end of the request body")]
    Cut,
    /// The connection stopped reading it: the response was sent first.
    #[error("the request body was abandoned: its response has been sent")]
    Abandoned,
}

/// A client's request body (empty when the request has none).
#[derive(Debug, Default)]
pub struct RequestBody {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The next piece, decoded and not yet taken.
    piece: Option<Bytes>,
    /// The last piece has been decoded (it may still be in `piece`).
    ended: bool,
    error: Option<BodyError>,
    /// The reader waits for a piece.
    want: bool,
    /// The reader is gone.
    dropped: bool,
    /// Bytes not yet handed out, when the framing says (a length).
    remaining: Option<u64>,
    reader: Option<Waker>,
    feeder: Option<Waker>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is a few assignments: a panic elsewhere leaves the
        // state usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody { shared: None }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(shared) = &self.shared else {
            return Poll::Ready(None);
        };
        let mut state = shared.state();
        if let Some(piece) = state.piece.take() {
            state.want = false;
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        if let Some(e) = state.error {
            // Told once; then the body is over.
            state.ended = true;
            return Poll::Ready(Some(Err(e)));
        }
        state.want = true;
        super::remember(&mut state.reader, cx.waker());
        let feeder = state.feeder.take();
        drop(state);
        // Not when the feeder is this task: it looks at the slot after
        // every poll of the handler anyway.
        if let Some(f) = feeder {
            if !f.will_wake(cx.waker()) {
                f.wake();
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| {
            let state = s.state();
            state.ended && state.piece.is_none()
        })
    }

    fn size_hint(&self) -> SizeHint {
        match &self.shared {
            None => SizeHint::with_exact(0),
            Some(s) => match s.state().remaining {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let mut state = shared.state();
            state.dropped = true;
            state.want = false;
        }
    }
}

/// The connection's side of a request body: decodes what the client sends
/// into the reader's slot.
#[derive(Debug)]
pub struct Feed {
    shared: Arc<Shared>,
    decoder: Decoder,
    /// A `100 Continue` is owed before the first read (this many bytes of
    /// it written so far).
    continue_written: Option<usize>,
}

/// The interim response `Expect: 100-continue` waits for.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Feed {
    /// A body read with `decoder`, and the reader's end of it; `None` for
    /// a request without a body.
    pub fn new(decoder: Decoder, expect_continue: bool) -> (Option<Feed>, RequestBody) {
        if decoder.is_done() {
            return (None, RequestBody::empty());
        }
        let shared = Arc::new(Shared::default());
        shared.state().remaining = decoder.remaining();
        let feed = Feed {
            shared: shared.clone(),
            decoder,
            continue_written: expect_continue.then_some(0),
        };
        (
            Some(feed),
            RequestBody {
                shared: Some(shared),
            },
        )
    }

    /// Feeds the reader when it waits: the next piece from `buf`, reading
    /// from `io` when `buf` has none (after the `100 Continue` owed).
    /// Whether the reader got something (a piece, the end or an error) and
    /// may go on; else `cx` is woken when there is something to do.
    pub fn feed<I>(&mut self, io: &mut I, buf: &mut BytesMut, cx: &mut Context<'_>) -> bool
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        {
            let mut state = self.shared.state();
            if state.dropped || state.error.is_some() || self.decoder.is_done() {
                return false;
            }
            super::remember(&mut state.feeder, cx.waker());
            if !state.want || state.piece.is_some() {
                return false;
            }
        }
        loop {
            match self.decoder.step(buf, false) {
                Ok(Step::Data(piece)) => {
                    // The framing after it (a chunk's CRLF, the last chunk),
                    // when already here, so the end is known with the piece.
                    let framing = self.decoder.step(buf, true);
                    let end = self.decoder.is_done();
                    self.deliver(
                        Some(piece),
                        end,
                        framing.err().map(|_| BodyError::Malformed),
                    );
                    return true;
                }
                Ok(Step::End) => {
                    self.deliver(None, true, None);
                    return true;
                }
                Ok(Step::NeedMore) => {}
                Err(_) => {
                    self.deliver(None, false, Some(BodyError::Malformed));
                    return true;
                }
            }
            if let Some(written) = self.continue_written {
                let mut written = written;
                while written < CONTINUE.len() {
                    match Pin::new(&mut *io).poll_write(cx, &CONTINUE[written..]) {
                        Poll::Ready(Ok(n)) if n > 0 => written += n,
                        Poll::Ready(_) => {
                            self.deliver(None, false, Some(BodyError::Cut));
                            return true;
                        }
                        Poll::Pending => {
                            self.continue_written = Some(written);
                            return false;
                        }
                    }
                }
                self.continue_written = None;
            }
            match poll_fill(io, buf, cx, BODY_READ_SIZE) {
                Poll::Pending => return false,
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(_) => {
                    self.deliver(None, false, Some(BodyError::Cut));
                    return true;
                }
            }
        }
    }

    fn deliver(&self, piece: Option<Bytes>, end: bool, error: Option<BodyError>) {
        let mut state = self.shared.state();
        if let (Some(p), Some(r)) = (&piece, state.remaining.as_mut()) {
            *r = r.saturating_sub(p.len() as u64);
        }
        state.piece = piece;
        state.ended |= end;
        state.error = state.error.or(error);
        state.want = false;
        let reader = state.reader.take();
        drop(state);
        if let Some(r) = reader {
            r.wake();
        }
    }

    /// After the response: reads past what of the body is already in
    /// `buf`; whether the body's end was found (the connection can then
    /// carry the next request). The reader, if still there, is told the
    /// body was abandoned.
    pub fn finish(mut self, buf: &mut BytesMut) -> bool {
        let done = loop {
            match self.decoder.step(buf, false) {
                Ok(Step::Data(_)) => {}
                Ok(Step::End) => break true,
                Ok(Step::NeedMore) | Err(_) => break false,
            }
        };
        if !done {
            self.deliver(None, false, Some(BodyError::Abandoned));
        }
        done
    }
}
