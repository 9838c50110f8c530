//! Keeping several lacquer nodes coherent: every invalidation a node accepts
//! from a client is forwarded to each peer's admin listener, in order,
//! retried with backoff while the peer is down, authenticated with the
//! shared secret, and applied once per node (each carries an id). What a
//! node receives from a peer is not forwarded again.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::invalidate::op::Invalidation;

/// Header carrying the shared secret between nodes.
pub const SECRET_HEADER: &str = "x-lacquer-secret";
/// Header carrying an invalidation's id.
pub const ID_HEADER: &str = "x-lacquer-invalidation-id";
/// Path of the peer endpoint on the admin listener.
pub const APPLY_PATH: &str = "/cluster/apply";

/// One invalidation on its way to a peer.
#[derive(Debug)]
struct Message {
    id: String,
    body: String,
}

/// This node's view of the cluster.
pub struct Cluster {
    node: String,
    seq: AtomicU64,
    secret: String,
    peers: Vec<mpsc::Sender<Arc<Message>>>,
    seen: moka::sync::Cache<String, ()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// Starts one sender task per peer. `None` without peers or outside a
    /// tokio runtime.
    pub fn start(cfg: &ClusterConfig) -> Option<Arc<Cluster>> {
        if cfg.peers.is_empty() && cfg.secret.is_empty() {
            return None;
        }
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let node = {
            use std::hash::BuildHasher;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let r = std::collections::hash_map::RandomState::new()
                .hash_one((nanos, std::process::id()));
            format!("{r:016x}")
        };
        let mut peers = Vec::new();
        for address in &cfg.peers {
            let (tx, rx) = mpsc::channel(cfg.queue_limit.max(1));
            rt.spawn(deliver_to_peer(
                address.clone(),
                cfg.secret.clone(),
                cfg.retry_max.0,
                rx,
            ));
            peers.push(tx);
        }
        Some(Arc::new(Cluster {
            node,
            seq: AtomicU64::new(0),
            secret: cfg.secret.clone(),
            peers,
            seen: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }))
    }

    /// Queues `inv` for every peer.
    pub fn forward(&self, inv: &Invalidation) {
        if self.peers.is_empty() {
            return;
        }
        let id = format!(
            "{}-{}",
            self.node,
            self.seq.fetch_add(1, Ordering::Relaxed) + 1
        );
        self.seen.insert(id.clone(), ());
        let msg = Arc::new(Message {
            id,
            body: inv.encode(),
        });
        for peer in &self.peers {
            if peer.try_send(msg.clone()).is_err() {
                tracing::error!(id = %msg.id, "peer queue full or closed; invalidation dropped for that peer");
            }
        }
    }

    /// Whether `given` is the shared secret (constant-time comparison).
    pub fn authorized(&self, given: &[u8]) -> bool {
        let want = self.secret.as_bytes();
        if self.secret.is_empty() || given.len() != want.len() {
            return false;
        }
        given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// True the first time `id` is seen: apply it; false: already applied.
    pub fn first_time(&self, id: &str) -> bool {
        let mut first = false;
        self.seen.entry(id.to_string()).or_insert_with(|| {
            first = true;
        });
        first
    }
}

/// Sends every queued message to one peer, in order; retries a message with
/// exponential backoff (100 ms doubling up to `retry_max`) while the peer is
/// unreachable or failing, so a peer that comes back catches up.
async fn deliver_to_peer(
    address: String,
    secret: String,
    retry_max: Duration,
    mut rx: mpsc::Receiver<Arc<Message>>,
) {
    while let Some(msg) = rx.recv().await {
        let mut delay = Duration::from_millis(100);
        loop {
            match send(&address, &secret, &msg).await {
                Ok(status) if status.is_success() || status == StatusCode::NOT_FOUND => break,
                Ok(status) if status.is_client_error() => {
                    tracing::error!(peer = %address, id = %msg.id, %status, "peer refused an invalidation; not retried");
                    break;
                }
                Ok(status) => {
                    tracing::warn!(peer = %address, id = %msg.id, %status, "peer failed; retrying")
                }
                Err(e) => {
                    tracing::warn!(peer = %address, id = %msg.id, error = %e, "peer unreachable; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(retry_max.max(Duration::from_millis(100)));
        }
    }
}

async fn send(address: &str, secret: &str, msg: &Message) -> Result<StatusCode, String> {
    let exchange = async {
        let req = Request::post(APPLY_PATH)
            .header("host", address)
            .header(SECRET_HEADER, secret)
            .header(ID_HEADER, &msg.id)
            .body(Full::new(Bytes::from(msg.body.clone())))
            .map_err(|e| e.to_string())?;
        let resp = crate::fetch::oneshot::request(address, req).await?;
        Ok(resp.status())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}
