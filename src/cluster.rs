//! Keeping several lacquer nodes coherent: every invalidation a node accepts
//! from a client is forwarded to each peer's admin listener, in order,
//! retried with backoff while the peer is down, signed with the shared
//! secret, and applied once per node (each carries an id). What a node
//! receives from a peer is not forwarded again.
//!
//! The secret never travels: each request carries its id, the time it was
//! sent and an HMAC-SHA256, keyed with the secret, of id, time and body
//! ([`signature`]). A receiver checks the MAC (in constant time), refuses
//! requests sent more than [`MAX_CLOCK_SKEW`] away from its own clock, and
//! applies an id once, so a captured request can neither be altered nor
//! replayed.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode};
use http_body_util::Full;
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

use crate::background::Background;
use crate::config::ClusterConfig;
use crate::invalidate::op::Invalidation;

/// Header carrying an invalidation's id.
pub const ID_HEADER: &str = "x-lacquer-invalidation-id";
/// Header carrying the time a peer sent the request (seconds since the
/// Unix epoch).
pub const TIMESTAMP_HEADER: &str = "x-lacquer-timestamp";
/// Header carrying the request's MAC, as lowercase hex (see [`signature`]).
pub const SIGNATURE_HEADER: &str = "x-lacquer-signature";
/// Path of the peer endpoint on the admin listener.
pub const APPLY_PATH: &str = "/cluster/apply";
/// Largest difference between a request's timestamp and the receiver's
/// clock; older (or later) requests are refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// How long applied ids are remembered; longer than the accepted clock
/// skew both ways, so a replay is either remembered or too old.
const SEEN_FOR: Duration = Duration::from_secs(3600);

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 keyed with `secret` over `id`, a line feed, `timestamp` in
/// decimal, a line feed, and `body`, as lowercase hex: what a peer sends in
/// [`SIGNATURE_HEADER`].
pub fn signature(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// Why a peer's request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    /// The id, timestamp or signature header is missing or malformed.
    #[error("missing or malformed {0} header")]
    Malformed(&'static str),
    /// The MAC does not match: another secret, or an altered request.
    #[error("wrong signature (another cluster.secret, or an altered request)")]
    BadSignature,
    /// The timestamp is too far from this node's clock.
    #[error("sent {skew_secs} s away from this node's clock (at most {} s accepted)", MAX_CLOCK_SKEW.as_secs())]
    Stale {
        /// Distance between the timestamp and this node's clock.
        skew_secs: u64,
    },
}

impl Refused {
    /// The status a peer gets for it.
    pub fn status(&self) -> StatusCode {
        match self {
            Refused::Malformed(_) => StatusCode::BAD_REQUEST,
            Refused::BadSignature | Refused::Stale { .. } => StatusCode::FORBIDDEN,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase or uppercase hex to bytes.
fn from_hex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            let ok = digits.len() == 2 && pair.iter().all(u8::is_ascii_hexdigit);
            ok.then(|| u8::from_str_radix(digits, 16).ok()).flatten()
        })
        .collect()
}

/// One invalidation on its way to a peer.
#[derive(Debug)]
struct Message {
    id: String,
    body: String,
}

/// One peer's queue, until its sender is started.
struct PeerQueue {
    address: String,
    rx: mpsc::Receiver<Arc<Message>>,
}

/// This node's view of the cluster.
pub struct Cluster {
    node: String,
    seq: AtomicU64,
    secret: String,
    retry_max: Duration,
    peers: Vec<mpsc::Sender<Arc<Message>>>,
    /// The peers' queues, handed to their senders by [`Cluster::background`]
    /// (what is forwarded before that waits in them).
    queues: std::sync::Mutex<Vec<PeerQueue>>,
    seen: moka::sync::Cache<String, ()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// The cluster of `cfg`, with one queue per peer; `None` without peers
    /// or a secret. Nothing is sent until the server starts the peers'
    /// senders ([`Cluster::background`]).
    pub fn new(cfg: &ClusterConfig) -> Option<Arc<Cluster>> {
        if cfg.peers.is_empty() && cfg.secret.is_empty() {
            return None;
        }
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
        let mut queues = Vec::new();
        for address in &cfg.peers {
            let (tx, rx) = mpsc::channel(cfg.queue_limit.max(1));
            peers.push(tx);
            queues.push(PeerQueue {
                address: address.clone(),
                rx,
            });
        }
        Some(Arc::new(Cluster {
            node,
            seq: AtomicU64::new(0),
            secret: cfg.secret.clone(),
            retry_max: cfg.retry_max.0,
            peers,
            queues: std::sync::Mutex::new(queues),
            seen: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SEEN_FOR)
                .build(),
        }))
    }

    /// One sender per peer, delivering its queue in order: background
    /// work for the server. The queues are handed over once; later calls
    /// return nothing.
    pub fn background(&self) -> Vec<Background> {
        let queues = std::mem::take(&mut *self.queues.lock().unwrap_or_else(|p| p.into_inner()));
        queues
            .into_iter()
            .map(|q| {
                Background::new(
                    format!("peer sender {}", q.address),
                    deliver_to_peer(q.address, self.secret.clone(), self.retry_max, q.rx),
                )
            })
            .collect()
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

    /// Checks a peer's request: its signature over `id`, `timestamp` and
    /// `body` (constant-time comparison), then its timestamp. Returns the
    /// id to apply.
    pub fn verify<'a>(
        &self,
        headers: &'a http::HeaderMap,
        body: &[u8],
    ) -> Result<&'a str, Refused> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or(Refused::Malformed(name))
        };
        let id = header(ID_HEADER)?;
        let timestamp: u64 = header(TIMESTAMP_HEADER)?
            .parse()
            .map_err(|_| Refused::Malformed(TIMESTAMP_HEADER))?;
        let given =
            from_hex(header(SIGNATURE_HEADER)?).ok_or(Refused::Malformed(SIGNATURE_HEADER))?;
        if self.secret.is_empty() {
            return Err(Refused::BadSignature);
        }
        mac(&self.secret, id, timestamp, body)
            .verify_slice(&given)
            .map_err(|_| Refused::BadSignature)?;
        let skew_secs = unix_now().abs_diff(timestamp);
        if skew_secs > MAX_CLOCK_SKEW.as_secs() {
            return Err(Refused::Stale { skew_secs });
        }
        Ok(id)
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
        // Signed at each try: a message retried for hours is not stale.
        let now = unix_now();
        let req = Request::post(APPLY_PATH)
            .header("host", address)
            .header(ID_HEADER, &msg.id)
            .header(TIMESTAMP_HEADER, now)
            .header(
                SIGNATURE_HEADER,
                signature(secret, &msg.id, now, msg.body.as_bytes()),
            )
            .body(Full::new(Bytes::from(msg.body.clone())))
            .map_err(|e| e.to_string())?;
        let resp = crate::fetch::oneshot::request(address, req).await?;
        Ok(resp.status())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_odd_or_signed_input() {
        let sig = signature("0123456789abcdef", "n-1", 1_700_000_000, b"ban x");
        assert_eq!(sig.len(), 64);
        assert_eq!(from_hex(&sig).map(|b| b.len()), Some(32));
        assert_eq!(from_hex("0aFf"), Some(vec![0x0a, 0xff]));
        for bad in ["abc", "+f", "zz"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }
}
