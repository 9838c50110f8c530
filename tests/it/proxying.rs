//! Proxying: header hygiene in both directions, passes with bodies, and
//! backend connections closed while idle never surfacing as errors.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_added() {
    let origin = Origin::start().await;
    origin.route("/h", |_, _| {
        Reply::ok("ok")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("x-app", "1")
            .header("via", "1.1 app")
    });
    let lq = lacquer_for(&origin).await;
    let got = get_with(
        lq.addr(),
        "/h",
        &[
            ("host", "shop.example"),
            ("connection", "x-secret"),
            ("x-secret", "do not forward"),
            ("keep-alive", "timeout=1"),
            ("te", "trailers"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    let seen = origin.last("/h").unwrap();
    assert_eq!(seen.headers["host"], "shop.example");
    assert_eq!(seen.headers["x-kept"], "yes");
    for gone in ["x-secret", "keep-alive", "te"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the origin"
        );
    }
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["via"], "1.1 lacquer");
    assert_eq!(got.header("x-app"), Some("1"));
    assert!(got.header("keep-alive").is_none());
    assert!(got.header("proxy-connection").is_none());
    let via: Vec<_> = got.headers.get_all("via").iter().collect();
    assert_eq!(via, ["1.1 app", "1.1 lacquer"]);
}

/// Under a loaded VCL the client is appended to `X-Forwarded-For` once,
/// before vcl_recv (the policy sees the chain), and the backend gets it so
/// on a miss, a pass, after a restart and for an ESI fragment.
#[tokio::test]
async fn under_a_policy_the_backend_gets_the_client_in_forwarded_for_once() {
    const QUIET: &str = r#"
sub vcl_recv {
    if (req.url == "/pass") { return (pass); }
    if (req.url == "/again") { set req.url = "/restarted"; return (restart); }
}
sub vcl_backend_response {
    if (bereq.url == "/page") { set beresp.do_esi = true; }
}
"#;
    let naming = format!(
        "{QUIET}\nsub vcl_deliver {{ set resp.http.X-Seen = req.http.X-Forwarded-For; }}\n"
    );
    for (policy, names_it) in [(QUIET.to_string(), false), (naming, true)] {
        let origin = Origin::start().await;
        for path in ["/miss", "/pass", "/restarted", "/frag"] {
            origin.route(path, |_, _| Reply::ok("x"));
        }
        origin.route("/again", |_, _| Reply::ok("not this one"));
        origin.route("/page", |_, _| {
            Reply::ok("<esi:include src=\"/frag\"/>").header("cache-control", "max-age=60")
        });
        let lq = with_policy(origin.addr, &policy).await;
        let xff = [("x-forwarded-for", "203.0.113.7")];
        for path in ["/miss", "/pass", "/again", "/page"] {
            let got = get_with(lq.addr(), path, &xff).await;
            assert_eq!(got.status, 200, "{path}");
            let seen = if names_it {
                Some("203.0.113.7, 127.0.0.1")
            } else {
                None
            };
            assert_eq!(
                got.header("x-seen"),
                seen,
                "{path}, policy reads it: {names_it}"
            );
        }
        for path in ["/miss", "/pass", "/restarted", "/page", "/frag"] {
            let seen = origin
                .last(path)
                .unwrap_or_else(|| panic!("{path} not fetched"));
            assert_eq!(
                seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1",
                "{path}, policy reads it: {names_it}"
            );
        }
        assert_eq!(origin.hits("/again"), 0);
    }
}

/// What looks at the request's fields besides the policy sees the client
/// in `X-Forwarded-For` under a VCL that never names the header, as in
/// Varnish: a `Vary: X-Forwarded-For` answer is one variant per client
/// (not one client's answer for every client that sent none).
#[tokio::test]
async fn vary_on_forwarded_for_keeps_clients_apart_under_a_policy() {
    let origin = Origin::start().await;
    origin.route("/v", |seen, _| {
        Reply::ok(format!("for {}", seen.header_or_none("x-forwarded-for")))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Forwarded-For")
    });
    let policy = "vcl 4.1;\nsub vcl_recv { if (req.url == \"/none\") { return (synth(404)); } }\n";
    let lq = with_policy_and(origin.addr, policy, |c| c.server.proxy_protocol = true).await;
    let wait = Duration::from_secs(3);
    let from = |client: &str| {
        format!(
            "PROXY TCP4 {client} 10.0.0.1 40000 80\r\nGET /v HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    };
    let one = raw(lq.addr(), from("203.0.113.7").as_bytes(), wait).await;
    assert!(one.ends_with("for 203.0.113.7"), "{one}");
    wait_stored(&lq, "/v").await;
    let two = raw(lq.addr(), from("198.51.100.9").as_bytes(), wait).await;
    assert!(
        two.ends_with("for 198.51.100.9"),
        "client 2 got client 1's variant: {two}"
    );
    let again = raw(lq.addr(), from("203.0.113.7").as_bytes(), wait).await;
    assert!(again.ends_with("for 203.0.113.7"), "{again}");
    assert_eq!(origin.hits("/v"), 2);
}

#[tokio::test]
async fn non_get_methods_are_passed_with_their_bodies() {
    let origin = Origin::start().await;
    origin.route("/form", |seen, _| {
        Reply::ok(format!("{} {}", seen.method, seen.body_len))
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let got = send(lq.addr(), method, "/form", &[], vec![b'p'; 12345]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), format!("{method} 12345"));
        assert_eq!(got.x_cache(), "PASS");
    }
    assert_eq!(origin.hits("/form"), 5);
}

/// A backend that answers the first request of each connection (keep-alive)
/// and then closes the connection the moment a second request arrives — the
/// race of a backend closing an idle connection as lacquer reuses it.
async fn closes_when_reused() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let addr = tcp_backend(move |mut s| {
        let count = count.clone();
        async move {
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            // Read one whole request (head + Content-Length body).
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                got.extend_from_slice(&buf[..n]);
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok",
                )
                .await;
            // Wait for the next request on this connection, then drop it unanswered.
            let _ = s.read(&mut buf).await;
        }
    })
    .await;
    (addr, answered)
}

#[tokio::test]
async fn idle_connections_closed_by_the_backend_are_retried_for_idempotent_requests() {
    let (addr, answered) = closes_when_reused().await;
    let lq = lacquer(config_for(addr)).await;
    for (i, method) in ["GET", "GET", "DELETE", "PUT", "HEAD", "GET"]
        .iter()
        .enumerate()
    {
        let body: &[u8] = if *method == "PUT" { b"replayable" } else { b"" };
        let got = send(lq.addr(), method, "/r", &[], body.to_vec()).await;
        assert_eq!(got.status, 200, "{method} (request {i}) got {}", got.status);
        // The scenario: the backend's close reaches the idle pooled
        // connection before the next request takes it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_post_is_not_retried_after_the_backend_dropped_it() {
    let (addr, answered) = closes_when_reused().await;
    let lq = lacquer(config_for(addr)).await;
    assert_eq!(get(lq.addr(), "/r").await.status, 200);
    // The scenario: the backend's close reaches the idle pooled connection.
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The POST goes out on the pooled connection, which the backend drops:
    // lacquer must not send it twice.
    let got = send(lq.addr(), "POST", "/r", &[], "once").await;
    assert_eq!(got.status, 502);
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn absolute_form_requests_use_the_uri_host() {
    let origin = Origin::start().await;
    origin.route("/abs", |seen, _| {
        Reply::ok(seen.headers["host"].to_str().unwrap().to_string())
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let out = raw(
        lq.addr(),
        b"GET http://other.example/abs HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(out.ends_with("other.example"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_pooled_limited_and_dropped_when_idle() {
    use lacquer::config::Seconds;
    use std::sync::atomic::Ordering;
    let origin = Origin::start().await;
    origin.route("/p", |_, _| {
        Reply::ok("p").delay(Duration::from_millis(100))
    });
    origin.route("/q", |_, _| Reply::ok("q"));
    let mut config = config_for(origin.addr);
    config.backend[0].max_connections = 2;
    config.backend[0].idle_timeout = Seconds(Duration::from_millis(500));
    let lq = lacquer(config).await;
    let addr = lq.addr();
    let clients: Vec<_> = (0..6)
        .map(|_| tokio::spawn(async move { send(addr, "POST", "/p", &[], "x").await }))
        .collect();
    for c in clients {
        assert_eq!(c.await.unwrap().status, 200);
    }
    assert_eq!(origin.max_concurrent.load(Ordering::SeqCst), 2);
    assert_eq!(origin.connections(), 2, "connections were not reused");
    // Sequential requests reuse one pooled connection...
    for _ in 0..3 {
        send(addr, "POST", "/q", &[], "x").await;
    }
    assert_eq!(origin.connections(), 2);
    // ...until it has been idle longer than idle_timeout (time passing is
    // the scenario).
    tokio::time::sleep(Duration::from_millis(700)).await;
    send(addr, "POST", "/q", &[], "x").await;
    assert_eq!(origin.connections(), 3);
}

#[tokio::test]
async fn idle_pooled_connections_are_closed_without_further_traffic() {
    use lacquer::config::Seconds;
    let (addr, closed) = counts_closed_connections().await;
    let mut config = config_for(addr);
    config.backend[0].idle_timeout = Seconds(Duration::from_millis(200));
    let lq = lacquer(config).await;
    assert_eq!(get(lq.addr(), "/").await.status, 200);
    assert_eq!(closed.load(std::sync::atomic::Ordering::SeqCst), 0);
    wait_until("the idle connection closed", async || {
        closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
}

/// A keep-alive backend that counts connections lacquer closed.
async fn counts_closed_connections() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let closed = std::sync::Arc::new(AtomicUsize::new(0));
    let count = closed.clone();
    let addr = tcp_backend(move |mut s| {
        let count = count.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Ok(_) => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                }
            }
        }
    })
    .await;
    (addr, closed)
}

/// A raw request for `target` on its own connection; the whole answer.
async fn raw_get(addr: std::net::SocketAddr, target: &str, host: &str) -> String {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    raw(addr, request.as_bytes(), Duration::from_secs(3)).await
}

#[tokio::test]
async fn absolute_form_targets_are_normalised_like_host_and_userinfo_refused() {
    let origin = Origin::start().await;
    route_with(&origin, "/x", 200, &[("cache-control", "max-age=60")]);
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    let first = raw_get(a, "http://T2.TEST/x", "ignored.example").await;
    assert!(first.contains("x-cache: MISS"), "{first}");
    assert_eq!(origin.last("/x").unwrap().header_or_none("host"), "t2.test");
    wait_stored(&lq, "/x").await;
    for (target, host) in [
        ("/x", "t2.test"),
        ("/x", "T2.Test:80"),
        ("http://t2.test:80/x", "t2.test"),
        ("HTTP://T2.test:/x", "t2.test"),
    ] {
        let out = raw_get(a, target, host).await;
        assert!(out.contains("x-cache: HIT"), "{target} {host}: {out}");
    }
    assert_eq!(origin.hits("/x"), 1);
    // A purge in absolute form finds the object.
    let purged = raw(
        a,
        b"PURGE http://T2.test:80/x HTTP/1.1\r\nHost: t2.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(purged.starts_with("HTTP/1.1 200"), "{purged}");
    let again = raw_get(a, "/x", "t2.test").await;
    assert!(again.contains("x-cache: MISS"), "{again}");
    assert_eq!(origin.hits("/x"), 2);
    // Credentials in the target are refused, never forwarded.
    let out = raw_get(a, "http://user:pw@t2.test/x", "t2.test").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(origin.hits("/x"), 2);
}

#[tokio::test]
async fn unsafe_and_unknown_methods_invalidate_and_are_counted() {
    let origin = Origin::start().await;
    route_with(&origin, "/u", 200, &[("cache-control", "max-age=60")]);
    // The test client is outside the purge ACL.
    let lq = lacquer_with(&origin, |c| {
        c.invalidation.purge_acl =
            lacquer::invalidate::acl::Acl(vec!["10.0.0.0/8".parse().unwrap()]);
    })
    .await;
    let a = lq.addr();
    get(a, "/u").await;
    wait_stored(&lq, "/u").await;
    // Known-safe methods pass without invalidating.
    for method in ["OPTIONS", "PROPFIND", "REPORT"] {
        let got = send(a, method, "/u", &[], "").await;
        assert_eq!(got.status, 200, "{method}");
        assert!(is_hit(&get(a, "/u").await), "{method} evicted /u");
    }
    assert_eq!(origin.hits("/u"), 4);
    // Unsafe ones, and (RFC 9111 §4.4) those whose safety is unknown.
    for method in ["POST", "PUT", "DELETE", "PATCH", "FOO", "M-SEARCH"] {
        assert_eq!(send(a, method, "/u", &[], "b").await.status, 200);
        let got = get(a, "/u").await;
        assert_eq!(got.x_cache(), "MISS", "{method} did not invalidate /u");
        wait_stored(&lq, "/u").await;
    }
    assert_eq!(origin.hits("/u"), 16);
    let metrics = get(lq.admin.unwrap(), "/metrics").await.text();
    assert!(
        metrics.contains("lacquer_invalidations_total{kind=\"unsafe_method\"} 6"),
        "{metrics}"
    );
}
