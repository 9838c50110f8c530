//! Pipes (Varnish's `return (pipe)`) for protocol upgrades: the request goes
//! to the backend on a connection of its own, and once both sides have
//! switched protocols (`101`), bytes are copied both ways until either side
//! closes or nothing moves for the idle timeout.
//!
//! hyper hands a connection over only after a `101`, so a pipe is always an
//! upgrade (WebSockets, `Upgrade: h2c`, …); `return (pipe)` for a plain
//! request is a pass (see docs/LIFECYCLE.md).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::pool::{Backend, FetchError};

/// Sends `req` to `backend` on a fresh connection that may switch
/// protocols, within the backend's connect and first-byte timeouts.
pub async fn open(
    backend: &Backend,
    req: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, FetchError> {
    let (connect_timeout, first_byte_timeout) = backend.timeouts();
    let connect = async {
        let stream = TcpStream::connect(backend.address())
            .await
            .map_err(|source| FetchError::Connect {
                backend: backend.name().to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| FetchError::Protocol {
                backend: backend.name().to_string(),
                source: source.into(),
            })
    };
    let (mut sender, conn) = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| FetchError::ConnectTimeout(backend.name().to_string()))??;
    let name = backend.name().to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend = %name, error = %e, "pipe connection ended");
        }
    });
    match tokio::time::timeout(first_byte_timeout, sender.send_request(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(source)) => Err(FetchError::Protocol {
            backend: backend.name().to_string(),
            source: source.into(),
        }),
        Err(_) => Err(FetchError::FirstByteTimeout(backend.name().to_string())),
    }
}

/// Tells, when a pipe closes, what it carried: the server takes it from the
/// `101`'s extensions to write the access log line then.
#[derive(Clone, Debug, Default)]
pub struct PipeEnd(Arc<Mutex<Option<oneshot::Receiver<Carried>>>>);

impl PipeEnd {
    /// The end to give the `101`, and the sender the pipe reports to.
    pub fn new() -> (PipeEnd, oneshot::Sender<Carried>) {
        let (tx, rx) = oneshot::channel();
        (PipeEnd(Arc::new(Mutex::new(Some(rx)))), tx)
    }

    /// Waits for the pipe to close; `None` when it never started.
    pub async fn closed(&self) -> Option<Carried> {
        let rx = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        rx.await.ok()
    }
}

/// Bytes a pipe carried: client to backend, backend to client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// From the client to the backend.
    pub up: u64,
    /// From the backend to the client.
    pub down: u64,
}

/// Copies bytes both ways between `client` and `backend` until both have
/// closed, a write fails, or nothing moved in either direction for `idle`
/// (Varnish's `pipe_timeout`).
pub async fn splice<C, B>(client: C, backend: B, idle: Duration) -> Carried
where
    C: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut backend_rd, mut backend_wr) = tokio::io::split(backend);
    let mut from_client = vec![0u8; 16 << 10];
    let mut from_backend = vec![0u8; 16 << 10];
    let mut carried = Carried::default();
    let (mut client_open, mut backend_open) = (true, true);
    let quiet = tokio::time::sleep(idle);
    tokio::pin!(quiet);
    while client_open || backend_open {
        tokio::select! {
            r = client_rd.read(&mut from_client), if client_open => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    let _ = backend_wr.shutdown().await;
                }
                Ok(n) => {
                    if backend_wr.write_all(&from_client[..n]).await.is_err() {
                        break;
                    }
                    carried.up += n as u64;
                    quiet.as_mut().reset(tokio::time::Instant::now() + idle);
                }
            },
            r = backend_rd.read(&mut from_backend), if backend_open => match r {
                Ok(0) | Err(_) => {
                    backend_open = false;
                    let _ = client_wr.shutdown().await;
                }
                Ok(n) => {
                    if client_wr.write_all(&from_backend[..n]).await.is_err() {
                        break;
                    }
                    carried.down += n as u64;
                    quiet.as_mut().reset(tokio::time::Instant::now() + idle);
                }
            },
            () = &mut quiet => {
                tracing::debug!(idle = ?idle, "pipe idle: closed");
                break;
            }
        }
    }
    carried
}
