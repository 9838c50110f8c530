//! Several nodes kept coherent: an invalidation sent to one node reaches
//! every peer, including one that was unreachable when it was sent.
use crate::common::*;
use crate::process::free_addr;
use lacquer::config::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "correct-horse-battery-staple";

fn node_config(origin: SocketAddr, admin: SocketAddr, peers: &[SocketAddr]) -> Config {
    let mut c = config_for(origin);
    c.admin.listen = Some(admin);
    c.cluster.peers = peers.iter().map(|p| p.to_string()).collect();
    c.cluster.secret = SECRET.into();
    c.cluster.retry_max = lacquer::config::Seconds(Duration::from_millis(300));
    // Soft purges leave objects deliverable stale for grace.
    c.cache.grace = lacquer::config::Seconds(Duration::from_secs(10));
    c
}

/// A TCP relay from `from` to `to`, started when the test says so: until
/// then `from` refuses connections, as a node that is down.
async fn relay(from: SocketAddr, to: SocketAddr) -> tokio::task::JoinHandle<()> {
    let l = TcpListener::bind(from).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut a, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut b) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_ban_and_key_purge_reach_every_node_even_one_that_was_down() {
    let origin = Origin::start().await;
    for p in ["/x", "/tagged", "/banned/1", "/kept"] {
        let tag = if p == "/tagged" { "tag-1" } else { "other" };
        origin.route(p, move |seen, n| {
            Reply::ok(format!("{} v{n}", seen.path))
                .header("cache-control", "max-age=600")
                .header("surrogate-key", tag)
        });
    }
    let (admin_a, admin_b, admin_c) = (free_addr(), free_addr(), free_addr());
    // A and B reach C through a relay that is down at first.
    let c_via_relay = free_addr();
    let a = lacquer(node_config(origin.addr, admin_a, &[admin_b, c_via_relay])).await;
    let b = lacquer(node_config(origin.addr, admin_b, &[admin_a, c_via_relay])).await;
    let c = lacquer(node_config(origin.addr, admin_c, &[admin_a, admin_b])).await;
    let nodes = [a.addr(), b.addr(), c.addr()];
    for node in nodes {
        for p in ["/x", "/banned/1", "/kept"] {
            get(node, p).await;
        }
    }
    // /tagged only differs from /x by its URL; purge it by key.
    for node in nodes {
        get(node, "/tagged").await;
    }
    let hits_before = origin.total();

    assert_eq!(send(a.addr(), "PURGE", "/x", &[], "").await.status, 200);
    assert_eq!(
        send(
            a.addr(),
            "BAN",
            "/",
            &[("x-ban", r#"req.url ~ "^/banned/""#)],
            ""
        )
        .await
        .status,
        200
    );
    let by_key = send(
        b.addr(),
        "PURGE",
        "/",
        &[("surrogate-key", "tag-1"), ("x-purge", "soft")],
        "",
    )
    .await;
    assert_eq!(by_key.status, 200, "{}", by_key.text());

    // A and B are coherent at once (B got A's, A got B's), each peer's
    // invalidations in the order they were sent, but A's and B's in no
    // order between them.
    for node in [a.addr(), b.addr()] {
        assert!(
            eventually(async || get(node, "/x").await.x_cache() == "MISS").await,
            "purge missing on {node}"
        );
        assert!(
            eventually(async || get(node, "/banned/1").await.x_cache() == "MISS").await,
            "ban missing on {node}"
        );
        assert!(
            eventually(async || get(node, "/tagged").await.x_cache() == "STALE").await,
            "key purge missing on {node}"
        );
    }
    // C was unreachable: it still has everything.
    assert!(get(c.addr(), "/x").await.x_cache().starts_with("HIT"));
    assert_eq!(c.proxy.bans().len(), 0);

    // C comes back: the retries deliver, in order.
    let _relay = relay(c_via_relay, admin_c).await;
    assert!(
        eventually(async || c.proxy.bans().len() == 1).await,
        "ban never reached C"
    );
    assert!(eventually(async || get(c.addr(), "/x").await.x_cache() == "MISS").await);
    assert_eq!(get(c.addr(), "/banned/1").await.x_cache(), "MISS");
    // B's key purge comes on B's retries, not A's.
    assert!(
        eventually(async || get(c.addr(), "/tagged").await.x_cache() == "STALE").await,
        "key purge never reached C"
    );
    assert!(get(c.addr(), "/kept").await.x_cache().starts_with("HIT"));
    // Each node applied the ban once (nothing bounced back and forth).
    for node in [&a, &b, &c] {
        assert_eq!(node.proxy.bans().len(), 1);
    }
    assert!(origin.total() > hits_before);
}

/// The signature a peer sends: HMAC-SHA256 of id, timestamp and body, keyed
/// with the secret, in hex (computed here independently of lacquer).
fn sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{id}\n{timestamp}\n{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn forwarded_invalidations_need_a_signature_and_apply_once() {
    let origin = Origin::start().await;
    origin.route("/s", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=600")
    });
    let admin = free_addr();
    let node = lacquer(node_config(origin.addr, admin, &[])).await;
    get(node.addr(), "/s").await;
    let purge = "url hard test.example /s";
    let post = async |headers: &[(&str, &str)], body: &'static str| {
        send(admin, "POST", "/cluster/apply", headers, body).await
    };
    let signed = async |key: &str, id: &str, at: u64, signed_body: &str, body: &'static str| {
        let at_text = at.to_string();
        let mac = sign(key, id, at, signed_body);
        let headers = [
            ("x-lacquer-invalidation-id", id),
            ("x-lacquer-timestamp", at_text.as_str()),
            ("x-lacquer-signature", mac.as_str()),
        ];
        post(&headers, body).await
    };
    let now = unix_now();

    // The secret itself is no password: sent in clear, it is refused.
    let cleartext = post(
        &[
            ("x-lacquer-secret", SECRET),
            ("x-lacquer-invalidation-id", "peer-0"),
        ],
        purge,
    )
    .await;
    assert_eq!(cleartext.status, 400, "{}", cleartext.text());
    let wrong_key = signed("not-the-secret-at-all", "peer-1", now, purge, purge).await;
    assert_eq!(wrong_key.status, 403, "{}", wrong_key.text());
    // The MAC covers the body: a signed request with another body is refused.
    let altered = signed(SECRET, "peer-1", now, "url hard test.example /other", purge).await;
    assert_eq!(altered.status, 403, "{}", altered.text());
    // And the time: an old request is refused even when signed.
    let old = signed(SECRET, "peer-1", now - 3600, purge, purge).await;
    assert_eq!(old.status, 403, "{}", old.text());
    assert!(old.text().contains("clock"), "{}", old.text());
    assert!(get(node.addr(), "/s").await.x_cache().starts_with("HIT"));

    let garbage = signed(SECRET, "peer-2", now, "drop everything", "drop everything").await;
    assert_eq!(garbage.status, 400);
    let ok = signed(SECRET, "peer-3", now, purge, purge).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    get(node.addr(), "/s").await;
    // A replay of the same request is applied once.
    let again = signed(SECRET, "peer-3", now, purge, purge).await;
    assert!(again.text().contains("already applied"), "{}", again.text());
    assert!(get(node.addr(), "/s").await.x_cache().starts_with("HIT"));
    assert_eq!(origin.hits("/s"), 2);
}
