//! The example policies of vcl-lite/examples/ through lacquer, end to end:
//! a real origin, the policy compiled as shipped (or with its switch
//! flipped, as an operator would), and what the client sees.
use crate::common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One request on a connection that starts with a PROXY v1 header naming
/// `client` as the client address; the raw response.
async fn from_client(addr: SocketAddr, client: &str, method: &str, path: &str) -> String {
    let req = format!(
        "PROXY TCP4 {client} 127.0.0.1 40000 80\r\n{method} {path} HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n"
    );
    raw(addr, req.as_bytes(), Duration::from_secs(5)).await
}

#[tokio::test]
async fn accept_encoding_keeps_one_variant_per_encoding() {
    let origin = Origin::start().await;
    origin.route("/page", |seen, n| {
        let ae = seen.header_or_none("accept-encoding");
        Reply::ok(format!("v{n} ae={ae}"))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Encoding")
    });
    origin.route("/logo.png", |seen, _| {
        Reply::ok(format!(
            "png ae={}",
            seen.headers.contains_key("accept-encoding")
        ))
        .header("cache-control", "max-age=60")
    });
    let example = include_str!("../../vcl-lite/examples/accept_encoding.vcl");
    // The example is for `compression.enabled = false`: otherwise lacquer
    // normalises Accept-Encoding itself, after vcl_recv.
    let lq = with_policy_and(origin.addr, example, |c| c.compression.enabled = false).await;
    let a = lq.addr();
    let spellings = [
        "gzip, deflate",
        "deflate, gzip",
        "gzip;q=1.0, identity",
        "br, gzip",
        "gzip, br",
        "identity",
        "",
    ];
    for ae in spellings {
        let got = if ae.is_empty() {
            get(a, "/page").await
        } else {
            get_with(a, "/page", &[("accept-encoding", ae)]).await
        };
        assert_eq!(got.status, 200);
        // Every variant fetched is stored before the next request.
        let fetched = origin.hits("/page");
        wait_stored_n(&lq, "/page", fetched).await;
    }
    // gzip, br, and none (identity and absent alike).
    assert_eq!(origin.hits("/page"), 3);
    let gz = get_with(a, "/page", &[("accept-encoding", "x-foo, gzip")]).await;
    assert!(is_hit(&gz), "{}", gz.x_cache());
    assert_eq!(gz.text(), "v1 ae=gzip");
    let png = get_with(a, "/logo.png", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        png.text(),
        "png ae=false",
        "already compressed: no encoding"
    );
}

#[tokio::test]
async fn esi_html_assembles_html_pages_without_a_handshake() {
    let origin = Origin::start().await;
    origin.route("/page", |_, n| {
        Reply::ok(format!(
            "<html><body>page {n}: <esi:include src=\"/frag\"/> end</body></html>"
        ))
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "max-age=60")
    });
    origin.route("/frag", |_, n| {
        Reply::ok(format!("FRAGMENT {n}"))
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=60")
    });
    origin.route("/plain.txt", |_, _| {
        Reply::ok("text <esi:include src=\"/frag\"/>")
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=60")
    });
    let example = include_str!("../../vcl-lite/examples/esi_html.vcl");
    let lq = with_policy(origin.addr, example).await;
    let a = lq.addr();
    let first = get(a, "/page").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.text(),
        "<html><body>page 1: FRAGMENT 1 end</body></html>"
    );
    wait_stored(&lq, "/page").await;
    let again = get(a, "/page").await;
    assert_eq!(again.text(), first.text());
    assert!(is_hit(&again), "{}", again.x_cache());
    assert_eq!(origin.hits("/page"), 1);
    assert_eq!(origin.hits("/frag"), 1);
    let plain = get(a, "/plain.txt").await;
    assert!(
        plain.text().contains("<esi:include"),
        "not HTML: not processed"
    );
}

/// grace.vcl with a short TTL, so that grace can be seen.
fn grace_policy() -> String {
    include_str!("../../vcl-lite/examples/grace.vcl").replace(
        "set beresp.grace = 1h;",
        "set beresp.grace = 1h;\n    if (bereq.url ~ \"^/short\") { set beresp.ttl = 1s; }",
    )
}

#[tokio::test]
async fn grace_serves_stale_while_refreshing_and_marks_hits() {
    let origin = Origin::start().await;
    origin.route("/short", |_, n| {
        Reply::ok(format!("v{n}")).header("cache-control", "max-age=60")
    });
    let lq = with_policy(origin.addr, &grace_policy()).await;
    let a = lq.addr();
    let first = get(a, "/short").await;
    assert_eq!(first.x_cache(), "MISS", "vcl_deliver sets X-Cache");
    assert!(first.header("x-age").is_some());
    wait_stored(&lq, "/short").await;
    let hit = get(a, "/short").await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.text(), "v1");
    expire(&lq, &origin).await;
    let stale = get(a, "/short").await;
    assert_eq!(stale.text(), "v1", "in grace: the stale object");
    assert_eq!(stale.x_cache(), "HIT");
    wait_fresh(&lq, "/short").await;
    assert_eq!(origin.hits("/short"), 2, "one background refresh");
    assert_eq!(get(a, "/short").await.text(), "v2");
}

#[tokio::test]
async fn grace_retries_a_5xx_once() {
    let origin = Origin::start().await;
    origin.route("/err", |_, n| Reply::new(500).body(format!("err {n}")));
    let lq = with_policy(origin.addr, &grace_policy()).await;
    let got = get(lq.addr(), "/err").await;
    assert_eq!(got.status, 500);
    assert_eq!(got.text(), "err 2", "the retry's answer");
    assert_eq!(origin.hits("/err"), 2, "retried once");
}

#[tokio::test]
async fn grace_retries_a_dead_backend_twice_then_answers_itself() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    // Accepts and hangs up at once: every fetch fails.
    let dead = tcp_backend(move |stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { drop(stream) }
    })
    .await;
    let lq = with_policy(dead, &grace_policy()).await;
    let got = get(lq.addr(), "/any").await;
    assert_eq!(got.text(), "backend unavailable");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "first try and 2 retries"
    );
}

#[tokio::test]
async fn maintenance_switch_off_serves_and_on_answers_503_except_the_office() {
    let origin = Origin::start().await;
    origin.route("/", |_, n| Reply::ok(format!("site {n}")));
    let shipped = include_str!("../../vcl-lite/examples/maintenance.vcl");
    let lq = with_policy(origin.addr, shipped).await;
    assert_eq!(get(lq.addr(), "/").await.text(), "site 1", "switch off");

    let on = shipped.replace(
        "set req.http.X-Maintenance = \"off\";",
        "set req.http.X-Maintenance = \"on\";",
    );
    assert_ne!(on, shipped, "the switch is where the example says");
    let lq = with_policy_and(origin.addr, &on, |c| c.server.proxy_protocol = true).await;
    let outside = from_client(lq.addr(), "198.51.100.7", "GET", "/").await;
    assert!(outside.starts_with("HTTP/1.1 503"), "{outside}");
    assert!(outside.contains("We'll be back soon"), "{outside}");
    let lower = outside.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 600"), "{outside}");
    assert!(lower.contains("content-type: text/html"), "{outside}");
    assert_eq!(origin.hits("/"), 1, "nothing reached the origin");
    let office = from_client(lq.addr(), "203.0.113.9", "GET", "/").await;
    assert!(office.starts_with("HTTP/1.1 200"), "{office}");
    assert!(office.ends_with("site 2"), "{office}");
}

#[tokio::test]
async fn purge_acl_purges_for_trusted_clients_and_refuses_others() {
    let origin = Origin::start().await;
    origin.route("/p", |_, n| {
        Reply::ok(format!("p{n}")).header("cache-control", "max-age=60")
    });
    let example = include_str!("../../vcl-lite/examples/purge_acl.vcl");
    let lq = with_policy_and(origin.addr, example, |c| c.server.proxy_protocol = true).await;
    let a = lq.addr();
    let first = from_client(a, "127.0.0.1", "GET", "/p").await;
    assert!(first.ends_with("p1"), "{first}");
    wait_stored(&lq, "/p").await;

    let refused = from_client(a, "10.0.0.66", "PURGE", "/p").await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    assert!(refused.ends_with("\r\n\r\n405 Not allowed\n"), "{refused}");
    let still = from_client(a, "127.0.0.1", "GET", "/p").await;
    assert!(still.ends_with("p1"), "not purged: {still}");

    let purged = from_client(a, "127.0.0.1", "PURGE", "/p").await;
    assert!(purged.starts_with("HTTP/1.1 200"), "{purged}");
    assert!(purged.ends_with("\r\n\r\n200 Purged /p\n"), "{purged}");
    let after = from_client(a, "127.0.0.1", "GET", "/p").await;
    assert!(after.ends_with("p2"), "{after}");
    assert_eq!(origin.hits("/p"), 2);
}

#[tokio::test]
async fn xkey_cookies_keeps_the_cookies_that_matter_and_purges_by_key() {
    let origin = Origin::start().await;
    origin.route("/product/1", |seen, n| {
        Reply::ok(format!("cookie={} #{n}", seen.header_or_none("cookie")))
            .header("cache-control", "max-age=600")
            .header("xkey", "product-1 listing")
            .header("set-cookie", "_ga=GA1.1; Path=/")
    });
    let example = include_str!("../../vcl-lite/examples/xkey_cookies.vcl");
    let lq = with_policy(origin.addr, example).await;
    let a = lq.addr();
    let eur = get_with(a, "/product/1", &[("cookie", "_ga=1; currency=EUR")]).await;
    assert_eq!(eur.text(), "cookie=currency=EUR; #1");
    // The tracking cookie was taken off, so the page was stored.
    assert_eq!(eur.header("set-cookie"), None);
    assert_eq!(eur.header("xkey"), None);
    wait_stored(&lq, "/product/1").await;
    let again = get_with(a, "/product/1", &[("cookie", "currency=EUR; _fbp=2")]).await;
    assert!(is_hit(&again), "{:?}", again.headers);
    let usd = get_with(a, "/product/1", &[("cookie", "currency=USD")]).await;
    assert_eq!(usd.text(), "cookie=currency=USD; #2");
    // A session: passed, with every cookie.
    let mine = get_with(a, "/product/1", &[("cookie", "session=s1; currency=EUR")]).await;
    assert_eq!(mine.text(), "cookie=session=s1; currency=EUR #3");
    wait_stored_n(&lq, "/product/1", 2).await;
    let purged = send(a, "PURGE", "/", &[("xkey-purge", "listing")], "").await;
    assert_eq!(purged.status, 200);
    assert!(
        purged.text().contains("Invalidated 2 objects"),
        "{}",
        purged.text()
    );
    let refetched = get_with(a, "/product/1", &[("cookie", "currency=EUR")]).await;
    assert_eq!(refetched.text(), "cookie=currency=EUR; #4");
    // From outside the ACL (behind a load balancer), refused.
    let behind = with_policy_and(origin.addr, example, |c| c.server.proxy_protocol = true).await;
    let req = "PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\nPURGE / HTTP/1.1\r\nHost: test.example\r\nxkey-purge: listing\r\nConnection: close\r\n\r\n";
    let refused = raw(behind.addr(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    assert_eq!(origin.hits("/product/1"), 4);
}
