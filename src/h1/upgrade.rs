//! A client connection handed over after a `101 Switching Protocols`: the
//! socket and the bytes the client sent after its request head, read
//! before the hand-over.

use bytes::{Buf, Bytes};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// What a client connection is read and written through.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client connection after a `101`, in a request's extensions from the
/// moment it asks to upgrade; resolves once the `101` has been written.
/// Clones share one connection: the first to be polled to the end gets it.
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// The connection did not switch protocols: the response was not a `101`,
/// or the connection failed before it was written.
#[derive(Debug, thiserror::Error)]
#[error("the client connection was not upgraded")]
pub struct NotUpgraded;

impl OnUpgrade {
    /// The request's end and the connection's end.
    pub(super) fn pair() -> (OnUpgrade, oneshot::Sender<Upgraded>) {
        let (tx, rx) = oneshot::channel();
        (OnUpgrade(Arc::new(Mutex::new(Some(rx)))), tx)
    }
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, NotUpgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rx) = slot.as_mut() else {
            return Poll::Ready(Err(NotUpgraded));
        };
        let got = std::task::ready!(Pin::new(rx).poll(cx));
        *slot = None;
        Poll::Ready(got.map_err(|_| NotUpgraded))
    }
}

/// A client connection taken over: reads give the bytes read ahead first.
pub struct Upgraded {
    io: Box<dyn Io>,
    read_ahead: Bytes,
}

impl Upgraded {
    pub(super) fn new(io: Box<dyn Io>, read_ahead: Bytes) -> Upgraded {
        Upgraded { io, read_ahead }
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("read_ahead", &self.read_ahead.len())
            .finish()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read_ahead.is_empty() {
            let n = self.read_ahead.len().min(buf.remaining());
            buf.put_slice(&self.read_ahead[..n]);
            self.read_ahead.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
