//! The client-facing listeners: HTTP/1.1 with keep-alive, header limits and
//! timeouts, each connection served by the [`Proxy`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub mod admin;
pub mod descriptors;

pub mod proxy_protocol;
pub mod services;

pub use services::Services;

use crate::config::{Config, ServerConfig};
use crate::fetch::tunnel::PipeEnd;
use crate::h1;
use crate::log_limited;
use crate::observe::access_log::RequestLine;
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

/// A running instance: its bound addresses, accept loops and background
/// services. Dropping it stops accepting and aborts the services
/// (connections in progress finish on their own).
pub struct Running {
    /// The proxy serving requests.
    pub proxy: Arc<Proxy>,
    /// Bound addresses, in the order of `server.listen`.
    pub addrs: Vec<SocketAddr>,
    /// The admin listener's address, when on.
    pub admin: Option<SocketAddr>,
    /// The proxy's background services (lurker, probes, reapers, peer
    /// senders), on the runtime that started the server.
    pub services: Services,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    active: Arc<ActiveConnections>,
}

/// How long [`Running::shutdown`] waits for the background services to end
/// once told to (they end at their next await).
const SERVICES_STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

fn lifecycle() -> (watch::Sender<bool>, Lifecycle) {
    let (tx, rx) = watch::channel(false);
    (
        tx,
        Lifecycle {
            stop: rx,
            active: Arc::new(ActiveConnections::default()),
        },
    )
}

impl Running {
    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Graceful shutdown: the health endpoint starts failing, listeners stop
    /// accepting, every connection finishes the request in flight and
    /// closes; then the background services stop. Waits up to `timeout`
    /// for the connections; returns the connections still open then (0
    /// when all drained).
    pub async fn shutdown(&self, timeout: std::time::Duration) -> usize {
        self.proxy.start_draining();
        self.stop.send_replace(true);
        let left = match tokio::time::timeout(timeout, self.active.wait_idle()).await {
            Ok(()) => 0,
            Err(_) => self.active.count.load(Ordering::Acquire),
        };
        // After the drain: a purge served while draining is still forwarded.
        self.services.stop(SERVICES_STOP_BOUND).await;
        left
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

/// Where client connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the runtime that starts the server (in-process use, tests).
    Caller,
    /// On this many worker threads, each with a single-threaded runtime of
    /// its own (the binary; see [`start_workers`] for why).
    Workers(usize),
}

/// Starts serving `proxy`, the one start path of the binary and of
/// in-process use: binds every `server.listen` address and `admin.listen`,
/// then starts the accept loops (on the calling runtime or on worker
/// threads, per `threads`), the admin listener and the proxy's background
/// services (lurker, probes, reapers, peer senders) on the calling runtime.
/// Must run inside a tokio runtime; the proxy may have been built anywhere.
pub async fn start_proxy(proxy: Arc<Proxy>, threads: Threads) -> Result<Running, StartError> {
    let config = proxy.config();
    let (stop_tx, life) = lifecycle();
    let mut tasks = Vec::new();
    // Everything is bound before anything starts: a bind error leaves
    // nothing running.
    let (addrs, listeners) = match threads {
        Threads::Caller => {
            let mut addrs = Vec::new();
            let mut listeners = Vec::new();
            for &addr in &config.server.listen {
                let (listener, bound) = bind(addr).await?;
                addrs.push(bound);
                listeners.push(listener);
            }
            (addrs, Listeners::Caller(listeners))
        }
        Threads::Workers(n) => {
            let (addrs, per_worker) = bind_workers(&config.server.listen, n.max(1))?;
            (addrs, Listeners::Workers(per_worker))
        }
    };
    let admin = match config.admin.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    match listeners {
        Listeners::Caller(listeners) => {
            for listener in listeners {
                tasks.push(tokio::spawn(accept_loop(
                    listener,
                    proxy.clone(),
                    config.server.clone(),
                    life.clone(),
                )));
            }
        }
        Listeners::Workers(per_worker) => {
            for (i, listeners) in per_worker.into_iter().enumerate() {
                let proxy = proxy.clone();
                let settings = config.server.clone();
                let life = life.clone();
                std::thread::Builder::new()
                    .name(format!("lacquer-worker-{i}"))
                    .spawn(move || worker(listeners, proxy, settings, life))
                    .map_err(|source| StartError::Bind {
                        addr: addrs
                            .first()
                            .copied()
                            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                        source,
                    })?;
            }
        }
    }
    let admin = admin.map(|(listener, bound)| {
        tasks.push(tokio::spawn(admin::serve(listener, proxy.clone())));
        bound
    });
    let services = Services::start(proxy.background(), &tokio::runtime::Handle::current());
    Ok(Running {
        proxy,
        addrs,
        admin,
        services,
        tasks,
        stop: stop_tx,
        active: life.active,
    })
}

/// Client listeners, bound and not yet served.
enum Listeners {
    /// For accept loops on the calling runtime.
    Caller(Vec<TcpListener>),
    /// Per worker thread, one socket per address.
    Workers(Vec<Vec<std::net::TcpListener>>),
}

/// [`start_proxy`] on the calling runtime for a proxy built from `config`.
pub async fn start(config: Arc<Config>) -> Result<Running, StartError> {
    start_proxy(Proxy::new(config)?, Threads::Caller).await
}

/// [`start_proxy`] on the calling runtime, with a proxy built by the caller
/// (e.g. with its own policy). `_config` is what the proxy was built from;
/// the proxy's own settings are used.
pub async fn start_with(_config: Arc<Config>, proxy: Arc<Proxy>) -> Result<Running, StartError> {
    start_proxy(proxy, Threads::Caller).await
}

/// A listener on `addr` and the address it got.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// [`start_proxy`] with a proxy built from `config`, serving on `workers`
/// worker threads: every listen address is bound once per worker thread
/// (`SO_REUSEPORT`, so the kernel spreads connections over the workers) and
/// each worker's sockets are served on its own single-threaded runtime.
///
/// Why not one work-stealing runtime: on a 1 KiB hit the work per request is
/// a few microseconds, and a profile showed thread wake-ups between
/// work-stealing workers (futex, task switches) costing more than lacquer's
/// own code. A runtime per core keeps each connection, its timers and its
/// buffers on one thread. The cache, the backend pool and the coalescing
/// table are shared by all workers. Must run inside a tokio runtime (which
/// runs the admin listener and the background services).
pub async fn start_workers(config: Arc<Config>, workers: usize) -> Result<Running, StartError> {
    start_proxy(Proxy::new(config)?, Threads::Workers(workers)).await
}

/// Every address of `listen` bound once per worker; the bound addresses
/// (port 0 resolved) and each worker's sockets.
#[allow(clippy::type_complexity)]
fn bind_workers(
    listen: &[SocketAddr],
    workers: usize,
) -> Result<(Vec<SocketAddr>, Vec<Vec<std::net::TcpListener>>), StartError> {
    let mut addrs = Vec::new();
    let mut per_worker: Vec<Vec<std::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    for &addr in listen {
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
    Ok((addrs, per_worker))
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

fn worker(
    listeners: Vec<std::net::TcpListener>,
    proxy: Arc<Proxy>,
    settings: ServerConfig,
    life: Lifecycle,
) {
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
                    life.clone(),
                ))),
                Err(e) => tracing::error!(error = %e, "listener setup failed"),
            }
        }
        for l in loops {
            let _ = l.await;
        }
        // Accepting has stopped (shutdown). Dropping this runtime would
        // cancel every connection it serves, so it keeps running until they
        // have finished their requests in flight (bodies included); the
        // main thread bounds that wait by `server.drain_timeout` and exits.
        life.active.wait_idle().await;
    });
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    settings: ServerConfig,
    life: Lifecycle,
) {
    let h1 = Arc::new(h1::Settings::of(&settings));
    let proxy_sources = proxy.config().proxy_sources();
    let mut stop = life.stop.clone();
    let mut backoff = descriptors::AcceptBackoff::new("client", &listener);
    // `server.send_buffer`, for each accepted socket (0: left alone).
    let send_buffer = (settings.send_buffer.0 > 0)
        .then(|| usize::try_from(settings.send_buffer.0).unwrap_or(usize::MAX));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(c) => {
                backoff.accepted();
                c
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tokio::select! {
                    () = backoff.failed(&e) => continue,
                    () = stopped(&mut stop) => return,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        if let Some(size) = send_buffer {
            if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(size) {
                crate::log_limited!(1, warn, error = %e, "setting server.send_buffer failed");
            }
        }
        // `server.ip` / `local.ip` and `remote.ip` for the policy.
        let conn = stream.local_addr().ok().map(|local| {
            Arc::new(crate::lifecycle::ConnInfo {
                local,
                remote: peer,
                tlvs: None,
                client_text: std::sync::OnceLock::new(),
            })
        });
        let proxy = proxy.clone();
        let h1 = h1.clone();
        let life = life.clone();
        let settings_proxy_protocol = settings.proxy_protocol;
        let header_timeout = settings.header_read_timeout.0;
        // Behind HAProxy, only the HAProxy hosts may speak: anyone else
        // could claim any client address with a forged PROXY header.
        if settings_proxy_protocol && !proxy_sources.allows(peer.ip()) {
            log_limited!(5, warn, peer = %peer,
                "connection from outside server.proxy_protocol_from closed");
            drop(stream);
            continue;
        }
        // Counted here, before the task starts, so a burst cannot overshoot.
        let Some(active) = ActiveConnections::enter(&life.active, settings.max_connections) else {
            tokio::spawn(refuse_connection(stream, peer));
            continue;
        };
        tokio::spawn(async move {
            let _active = active;
            let mut conn = conn;
            if !settings_proxy_protocol {
                serve(stream, peer, conn, proxy, &h1, life.stop).await;
                return;
            }
            // Behind HAProxy: the real client address comes first.
            let mut io = tokio::io::BufReader::with_capacity(512, stream);
            let read = proxy_protocol::read_header_tlvs(&mut io);
            let client = match tokio::time::timeout(header_timeout, read).await {
                Ok(Ok(header)) => {
                    if let (Some(tlvs), Some(c)) = (header.tlvs, conn.as_deref()) {
                        conn = Some(Arc::new(crate::lifecycle::ConnInfo {
                            tlvs: Some(Arc::new(tlvs)),
                            ..c.clone()
                        }));
                    }
                    header.client.unwrap_or(peer)
                }
                Ok(Err(e)) => {
                    log_limited!(5, info, peer = %peer, error = %e,
                        "connection without a valid PROXY header closed");
                    return;
                }
                Err(_) => {
                    log_limited!(5, info, peer = %peer,
                        "no PROXY header in time; connection closed");
                    return;
                }
            };
            serve(io, client, conn, proxy, &h1, life.stop).await;
        });
    }
}

/// Answers a connection over `server.max_connections` with a 503 and
/// closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    log_limited!(5, warn, client = %peer, "server.max_connections reached; connection refused");
    let body = "503 Service Unavailable\ntoo many connections\n";
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(resp.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// Serves one client connection until it ends, or until shutdown, when it
/// finishes its request in flight and closes.
async fn serve<I>(
    io: I,
    client: SocketAddr,
    conn: Option<Arc<crate::lifecycle::ConnInfo>>,
    proxy: Arc<Proxy>,
    settings: &h1::Settings,
    stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let access_log = proxy.config().server.access_log;
    let queue = proxy.config().server.access_log_queue;
    let result = if access_log {
        let handler = |req: http::Request<h1::RequestBody>| {
            let proxy = &proxy;
            let conn = conn.clone();
            async move {
                let line = RequestLine::capture(
                    req.method(),
                    &req.uri().to_string(),
                    req.version(),
                    req.headers(),
                );
                let start = std::time::Instant::now();
                let (resp, outcome) = proxy.handle_on(req, client, conn).await;
                match resp.extensions().get::<PipeEnd>().cloned() {
                    // A pipe's line is written when it closes, with its bytes.
                    Some(end) => {
                        let ttfb = start.elapsed();
                        tokio::spawn(async move {
                            if let Some(carried) = end.closed().await {
                                line.log_pipe(client, carried, ttfb, queue);
                            }
                        });
                    }
                    None => line.log(client, &resp, outcome, start.elapsed(), queue),
                }
                resp
            }
        };
        h1::serve(io, settings, handler, stop).await
    } else {
        // The pipeline's future as it is (`h1::Answer`), the proxy
        // borrowed: nothing wraps, moves or counts references per request.
        let handler = |req| proxy.handle_on(req, client, conn.clone());
        h1::serve(io, settings, handler, stop).await
    };
    if let Err(e) = result {
        if e.is_bad_request() {
            // Answered 400 / 431, or a slow client closed.
            log_limited!(10, info, client = %client, error = %e, "bad request refused");
        } else {
            tracing::debug!(client = %client, error = %e, "client connection ended");
        }
    }
}

/// Resolves once shutdown has been signalled (or the signal is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Shutdown signal and the count of open client connections, shared by
/// every accept loop of one instance.
#[derive(Clone)]
struct Lifecycle {
    stop: watch::Receiver<bool>,
    active: Arc<ActiveConnections>,
}

/// Open client connections.
#[derive(Default)]
struct ActiveConnections {
    count: AtomicUsize,
    idle: Notify,
}

struct ActiveGuard(Arc<ActiveConnections>);

impl ActiveConnections {
    /// Resolves once no connection is open.
    async fn wait_idle(&self) {
        loop {
            // Registered before the count is read, so a connection closing
            // in between still wakes this.
            let idle = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Counts a new connection, unless `max` are already open.
    fn enter(this: &Arc<Self>, max: usize) -> Option<ActiveGuard> {
        this.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ActiveGuard(this.clone()))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
