//! Odd backend answers that must not leak one user's data to another or
//! mis-frame a client connection: a `Vary` lacquer cannot parse, and a
//! `Content-Length` sent alongside `Transfer-Encoding: chunked`.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_unparsable_vary_is_not_stored() {
    let origin = Origin::start().await;
    for (path, vary) in [
        ("/space", "Cookie Session"),
        ("/param", "Cookie;q=1"),
        ("/paren", "Cookie, (x)"),
    ] {
        let vary = vary.to_string();
        origin.route(path, move |seen, _| {
            Reply::ok(format!("page for {}", seen.header_or_none("cookie")))
                .header("cache-control", "max-age=300")
                .header("vary", &vary)
        });
    }
    // Non-ASCII in Vary: written raw, as the red team did.
    let raw = tcp_backend(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok(n) = s.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let cookie = req
                .lines()
                .find_map(|l| l.strip_prefix("cookie: "))
                .unwrap_or("none")
                .to_string();
            let body = format!("page for {cookie}");
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nContent-Length: {}\r\nVary: Cookie, X-",
                body.len()
            )
            .into_bytes();
            head.push(0xe9);
            head.extend_from_slice(b"\r\n\r\n");
            head.extend_from_slice(body.as_bytes());
            if s.write_all(&head).await.is_err() {
                return;
            }
        }
    })
    .await;

    let lq = lacquer_for(&origin).await;
    for path in ["/space", "/param", "/paren"] {
        let alice = get_with(lq.addr(), path, &[("cookie", "user=alice")]).await;
        assert_eq!(alice.text(), "page for user=alice");
        // No wait: a request while alice's fetch runs would join it.
        let bob = get_with(lq.addr(), path, &[("cookie", "user=bob")]).await;
        assert_eq!(
            bob.text(),
            "page for user=bob",
            "{path}: alice's page served to bob"
        );
        assert_eq!(origin.hits(path), 2, "{path}");
    }

    let mut config = config_for(raw);
    config.cache.grace = lacquer::config::Seconds(Duration::ZERO);
    let lq = lacquer(config).await;
    let alice = get_with(lq.addr(), "/raw", &[("cookie", "user=alice")]).await;
    assert_eq!(alice.text(), "page for user=alice");
    assert_eq!(stored(&lq, "/raw"), 0, "alice's page is in the store");
    let bob = get_with(lq.addr(), "/raw", &[("cookie", "user=bob")]).await;
    assert_eq!(
        bob.text(),
        "page for user=bob",
        "alice's page served to bob"
    );
}

/// The origin frames its body with chunked coding and also sends a stale
/// `Content-Length: 1`.
async fn chunked_with_length() -> std::net::SocketAddr {
    tcp_backend(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok(n) = s.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            let answer = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
            if s.write_all(answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn chunked_wins_over_content_length_on_misses_and_hits() {
    let lq = lacquer(config_for(chunked_with_length().await)).await;
    // Two requests on one kept-alive connection: the first is the miss, the
    // second a hit. With the stale length forwarded, the client reads `a`
    // and the rest of the body spills into the next answer.
    let out = raw(
        lq.addr(),
        b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let answers: Vec<&str> = out.split("HTTP/1.1 ").filter(|a| !a.is_empty()).collect();
    assert_eq!(answers.len(), 2, "{out:?}");
    for a in answers {
        assert!(a.starts_with("200"), "{a:?}");
        assert!(
            !a.to_ascii_lowercase().contains("content-length: 1\r\n"),
            "stale length forwarded: {a:?}"
        );
        let body = a.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert!(
            body == "abc" || body == "3\r\nabc\r\n0\r\n\r\n",
            "body {body:?} in {a:?}"
        );
    }
}

#[tokio::test]
async fn chunked_wins_over_content_length_for_coalesced_followers() {
    let lq = lacquer(config_for(chunked_with_length().await)).await;
    let all = get_concurrently(lq.addr(), "/y", 8).await;
    for g in all {
        assert_eq!(g.status, 200);
        assert_eq!(g.text(), "abc");
        assert_ne!(g.header("content-length"), Some("1"));
    }
}

#[tokio::test]
async fn backend_error_details_go_to_the_admin_listener_not_to_clients() {
    // A port nothing listens on: connections are refused.
    let closed = crate::process::free_addr();
    let lq = lacquer(config_for(closed)).await;
    let got = get(lq.addr(), "/down").await;
    assert_eq!(got.status, 502);
    let body = got.text();
    for secret in ["refused", "os error", "default", &closed.port().to_string()] {
        assert!(
            !body.contains(secret),
            "{secret:?} told to the client: {body}"
        );
    }
    assert!(body.contains("backend fetch failed"), "{body}");
    let admin = lq.admin.expect("admin listener");
    let listing = get(admin, "/backends").await.text();
    assert!(
        listing.contains("last error") && listing.contains("Connection refused"),
        "{listing}"
    );

    // A timeout names neither the backend nor the timeout setting.
    let origin = Origin::start().await;
    origin.route("/slow", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(2))
    });
    let lq = lacquer_with(&origin, |c| {
        c.backend[0].name = "app-internal-7".into();
        c.backend[0].first_byte_timeout = lacquer::config::Seconds(Duration::from_millis(200));
    })
    .await;
    let got = get(lq.addr(), "/slow").await;
    assert_eq!(got.status, 504);
    assert!(!got.text().contains("app-internal-7"), "{}", got.text());
    assert!(got.text().contains("backend timed out"), "{}", got.text());
}
