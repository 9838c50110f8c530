//! The client-facing listeners: HTTP/1.1 with keep-alive, header limits and
//! timeouts, each connection served by the [`Proxy`].

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod admin;

use crate::config::{Config, ServerConfig};
use crate::pipeline::{Proxy, SetupError};

/// Why lacquer could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The settings do not make a working proxy.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// A running instance: its bound addresses and accept loops. Dropping it
/// stops accepting (connections in progress finish on their own).
pub struct Running {
    /// The proxy serving requests.
    pub proxy: Arc<Proxy>,
    /// Bound addresses, in the order of `server.listen`.
    pub addrs: Vec<SocketAddr>,
    /// The admin listener's address, when on.
    pub admin: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Waits until every accept loop ends (they end only on error).
    pub async fn wait(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds every listen address and starts serving. Must run inside a tokio
/// runtime.
pub async fn start(config: Arc<Config>) -> Result<Running, StartError> {
    let proxy = Proxy::new(config.clone())?;
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for &addr in &config.server.listen {
        let (listener, bound) = bind(addr).await?;
        addrs.push(bound);
        let proxy = proxy.clone();
        let settings = config.server.clone();
        tasks.push(tokio::spawn(accept_loop(listener, proxy, settings)));
    }
    let admin = start_admin(&config, &proxy, &mut tasks).await?;
    Ok(Running {
        proxy,
        addrs,
        admin,
        tasks,
    })
}

/// A listener on `addr` and the address it got.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// Binds the admin listener (when configured) and serves it on the
/// current runtime.
async fn start_admin(
    config: &Config,
    proxy: &Arc<Proxy>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = config.admin.listen else {
        return Ok(None);
    };
    let (listener, bound) = bind(addr).await?;
    tasks.push(tokio::spawn(admin::serve(listener, proxy.clone())));
    Ok(Some(bound))
}

/// Binds every listen address once per worker thread (`SO_REUSEPORT`, so the
/// kernel spreads connections over the workers) and serves each worker's
/// sockets on its own single-threaded runtime.
///
/// Why not one work-stealing runtime: on a 1 KiB hit the work per request is
/// a few microseconds, and a profile showed thread wake-ups between
/// work-stealing workers (futex, task switches) costing more than lacquer's
/// own code. A runtime per core keeps each connection, its timers and its
/// buffers on one thread. The cache, the backend pool and the coalescing
/// table are shared by all workers. Must run inside a tokio runtime (which
/// keeps the background tasks: pool reaping, and the caller's own).
pub async fn start_workers(config: Arc<Config>, workers: usize) -> Result<Running, StartError> {
    let proxy = Proxy::new(config.clone())?;
    let mut tasks = Vec::new();
    let admin = start_admin(&config, &proxy, &mut tasks).await?;
    let workers = workers.max(1);
    let mut addrs = Vec::new();
    let mut per_worker: Vec<Vec<std::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    for &addr in &config.server.listen {
        let mut bound = addr;
        for (i, list) in per_worker.iter_mut().enumerate() {
            // Port 0 picks a port once; the other workers join that port.
            let socket =
                reuseport_listener(bound).map_err(|source| StartError::Bind { addr, source })?;
            if i == 0 {
                bound = socket
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, source })?;
                addrs.push(bound);
            }
            list.push(socket);
        }
    }
    for (i, listeners) in per_worker.into_iter().enumerate() {
        let proxy = proxy.clone();
        let settings = config.server.clone();
        std::thread::Builder::new()
            .name(format!("lacquer-worker-{i}"))
            .spawn(move || worker(listeners, proxy, settings))
            .map_err(|source| StartError::Bind {
                addr: addrs
                    .first()
                    .copied()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                source,
            })?;
    }
    Ok(Running {
        proxy,
        addrs,
        admin,
        tasks,
    })
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    listener.into_std()
}

fn worker(listeners: Vec<std::net::TcpListener>, proxy: Arc<Proxy>, settings: ServerConfig) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "worker runtime failed to start");
            return;
        }
    };
    rt.block_on(async move {
        let mut loops = Vec::new();
        for l in listeners {
            match TcpListener::from_std(l) {
                Ok(l) => loops.push(tokio::spawn(accept_loop(
                    l,
                    proxy.clone(),
                    settings.clone(),
                ))),
                Err(e) => tracing::error!(error = %e, "listener setup failed"),
            }
        }
        for l in loops {
            let _ = l.await;
        }
    });
}

async fn accept_loop(listener: TcpListener, proxy: Arc<Proxy>, settings: ServerConfig) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(settings.header_read_timeout.0)
        .max_headers(settings.max_headers)
        .max_header_size(usize::try_from(settings.max_header_bytes.0).unwrap_or(usize::MAX));
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
            });
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                if e.is_parse() || e.is_parse_too_large() || e.is_timeout() {
                    // hyper has answered 400 / 431 or closed a slow client.
                    tracing::info!(client = %peer, error = %e, "bad request refused");
                } else {
                    tracing::debug!(client = %peer, error = %e, "client connection ended");
                }
            }
        });
    }
}
