//! ESI assembly through lacquer, with a real origin: when ESI applies,
//! includes (nested, relative, absolute, concurrent, streamed in order),
//! every error path, the other ESI elements, limits, and HTTP details.
use crate::common::*;
use http_body_util::BodyExt;
use lacquer::config::{ByteSize, EsiOnError, Seconds};
use std::time::{Duration, Instant};

const ESI: (&str, &str) = ("surrogate-control", "content=\"ESI/1.0\"");

/// Routes `path` to an ESI page (the handshake header), fresh for a minute.
fn page(origin: &Origin, path: &str, body: &'static str) {
    origin.route(path, move |_, _| {
        Reply::ok(body)
            .header(ESI.0, ESI.1)
            .header("content-type", "text/html")
            .header("cache-control", "max-age=60")
    });
}

/// Routes `path` to a plain fragment "`text`#n", fresh for `max_age`
/// seconds (0: `no-store`).
fn fragment(origin: &Origin, path: &str, text: &'static str, max_age: u32) {
    let cc = match max_age {
        0 => "no-store".to_string(),
        n => format!("max-age={n}"),
    };
    origin.route(path, move |_, n| {
        Reply::ok(format!("{text}#{n}")).header("cache-control", &cc)
    });
}

#[tokio::test]
async fn includes_are_assembled_and_cached_separately() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/page",
        "<html><esi:include src=\"/a\"/>|<esi:include src=\"/b\"/></html>",
    );
    fragment(&origin, "/a", "A", 60);
    fragment(&origin, "/b", "B", 60);
    let lq = lacquer_for(&origin).await;
    let first = get(lq.addr(), "/page").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "<html>A#1|B#1</html>");
    assert_eq!(first.x_cache(), "MISS");
    assert!(first.header("surrogate-control").is_none());
    for url in ["/page", "/a", "/b"] {
        wait_stored(&lq, url).await;
    }
    let second = get(lq.addr(), "/page").await;
    assert_eq!(second.text(), "<html>A#1|B#1</html>");
    assert!(is_hit(&second), "{}", second.x_cache());
    // Every part in the cache: an exact length, no chunking.
    assert_eq!(second.header("content-length"), Some("20"));
    assert_eq!(
        (origin.hits("/page"), origin.hits("/a"), origin.hits("/b")),
        (1, 1, 1)
    );
    // The backend was told lacquer does ESI.
    let seen = origin.last("/page").expect("page fetched");
    assert_eq!(
        seen.headers
            .get("surrogate-capability")
            .map(|v| v.as_bytes()),
        Some(&b"lacquer=\"ESI/1.0\""[..])
    );
}

#[tokio::test]
async fn without_the_handshake_or_a_setting_markup_is_delivered_as_is() {
    let origin = Origin::start().await;
    origin.route("/plain", |_, _| {
        Reply::ok("x<esi:include src=\"/a\"/>y")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=60")
    });
    fragment(&origin, "/a", "A", 60);
    let lq = lacquer_for(&origin).await;
    assert_eq!(
        get(lq.addr(), "/plain").await.text(),
        "x<esi:include src=\"/a\"/>y"
    );
    assert_eq!(origin.hits("/a"), 0);
}

#[tokio::test]
async fn paths_and_content_types_setting_turns_esi_on() {
    let origin = Origin::start().await;
    for (path, ct) in [
        ("/esi/page", "text/html; charset=utf-8"),
        ("/esi/data", "application/json"),
        ("/other", "text/html"),
    ] {
        let ct = ct.to_string();
        origin.route(path, move |_, _| {
            Reply::ok("[<esi:include src=\"/a\"/>]")
                .header("content-type", &ct)
                .header("cache-control", "max-age=60")
        });
    }
    fragment(&origin, "/a", "A", 60);
    let lq = lacquer_with(&origin, |c| c.esi.paths = vec!["^/esi/".into()]).await;
    assert_eq!(get(lq.addr(), "/esi/page").await.text(), "[A#1]");
    assert_eq!(
        get(lq.addr(), "/esi/data").await.text(),
        "[<esi:include src=\"/a\"/>]"
    );
    assert_eq!(
        get(lq.addr(), "/other").await.text(),
        "[<esi:include src=\"/a\"/>]"
    );
}

#[tokio::test]
async fn nested_includes_and_relative_and_absolute_src() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/shop/index.html",
        "[<esi:include src=\"box\"/>][<esi:include src=\"http://test.example/abs\"/>][<esi:include src=\"//cdn.example/c\"/>][<esi:include src=\"http://evil.example/x\" onerror=\"continue\"/>]",
    );
    // An ESI fragment with a relative include of its own.
    page(&origin, "/shop/box", "box(<esi:include src=\"../inner\"/>)");
    fragment(&origin, "/inner", "inner", 60);
    fragment(&origin, "/abs", "abs", 60);
    fragment(&origin, "/c", "cdn", 60);
    fragment(&origin, "/x", "evil", 60);
    let lq = lacquer_with(&origin, |c| {
        c.esi.allowed_hosts = vec!["cdn.example".into()]
    })
    .await;
    let got = get(lq.addr(), "/shop/index.html").await;
    assert_eq!(got.text(), "[box(inner#1)][abs#1][cdn#1][]");
    assert_eq!(origin.hits("/x"), 0, "a host not allowed is never fetched");
    let cdn = origin.last("/c").expect("cdn fetched");
    assert_eq!(
        cdn.headers.get("host").map(|v| v.as_bytes()),
        Some(&b"cdn.example"[..])
    );
    // Again, all from the cache, nested page included.
    for url in ["/shop/index.html", "/shop/box", "/inner", "/abs", "/c"] {
        wait_stored(&lq, url).await;
    }
    let again = get(lq.addr(), "/shop/index.html").await;
    assert_eq!(again.text(), "[box(inner#1)][abs#1][cdn#1][]");
    assert!(again.header("content-length").is_some());
    assert_eq!(origin.total(), 5);
}

#[tokio::test]
async fn a_fragment_that_expires_is_refetched_alone() {
    let origin = Origin::start().await;
    page(&origin, "/shell", "shell[<esi:include src=\"/price\"/>]");
    fragment(&origin, "/price", "price", 1);
    let lq = lacquer_no_grace(&origin).await;
    assert_eq!(get(lq.addr(), "/shell").await.text(), "shell[price#1]");
    expire(&lq, &origin).await;
    let got = get(lq.addr(), "/shell").await;
    assert_eq!(got.text(), "shell[price#2]");
    assert!(is_hit(&got), "the shell stays cached: {}", got.x_cache());
    assert_eq!((origin.hits("/shell"), origin.hits("/price")), (1, 2));
}

#[tokio::test]
async fn failing_includes_alt_continue_and_default_error_body() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/p",
        "1[<esi:include src=\"/missing\" alt=\"/alt\"/>]2[<esi:include src=\"/missing\" onerror=\"continue\"/>]3[<esi:include src=\"/missing\"/>]",
    );
    fragment(&origin, "/alt", "alt", 60);
    route_with(&origin, "/missing", 404, &[]);
    let lq = lacquer_for(&origin).await;
    let got = get(lq.addr(), "/p").await;
    assert_eq!(got.status, 200, "the page keeps its status");
    let text = got.text();
    assert!(text.starts_with("1[alt#1]2[]3["), "{text}");
    // Varnish 7's default: the fragment's error body is included.
    assert!(text.contains("/missing #"), "{text}");
}

#[tokio::test]
async fn try_uses_except_when_an_include_fails() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/t",
        "<esi:try><esi:attempt>ok:<esi:include src=\"/good\"/><esi:include src=\"/bad\"/></esi:attempt><esi:except>fallback</esi:except></esi:try>|<esi:try><esi:attempt><esi:include src=\"/good\"/></esi:attempt><esi:except>never</esi:except></esi:try>",
    );
    fragment(&origin, "/good", "good", 60);
    route_with(&origin, "/bad", 500, &[]);
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/t").await.text(), "fallback|good#1");
}

#[tokio::test]
async fn strict_mode_aborts_delivery_on_an_unhandled_failure() {
    let origin = Origin::start().await;
    page(&origin, "/s", "before<esi:include src=\"/bad\"/>after");
    route_with(&origin, "/bad", 503, &[]);
    let lq = lacquer_with(&origin, |c| c.esi.on_error = EsiOnError::Abort).await;
    let resp = get_streaming(lq.addr(), "/s").await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await;
    assert!(body.is_err(), "the response must be cut, not completed");
}

#[tokio::test]
async fn timeouts_and_refused_connections_fail_the_include() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/t",
        "<esi:try><esi:attempt><esi:include src=\"/slow\"/></esi:attempt><esi:except>slow failed</esi:except></esi:try>",
    );
    origin.route("/slow", |_, _| {
        Reply::ok("late").delay(Duration::from_secs(3))
    });
    page(
        &origin,
        "/r",
        "<esi:try><esi:attempt><esi:include src=\"/gone\"/></esi:attempt><esi:except>refused</esi:except></esi:try>",
    );
    fragment(&origin, "/gone", "gone", 0);
    let lq = lacquer_with(&origin, |c| {
        c.backend[0].first_byte_timeout = Seconds(Duration::from_millis(300));
    })
    .await;
    assert_eq!(get(lq.addr(), "/t").await.text(), "slow failed");
    // The page is cached; the fragment is not (max-age=0). Origin down.
    assert_eq!(get(lq.addr(), "/r").await.text(), "gone#1");
    wait_stored(&lq, "/r").await;
    origin.stop();
    assert_eq!(get(lq.addr(), "/r").await.text(), "refused");
}

#[tokio::test]
async fn a_fragment_body_cut_off_fails_the_include() {
    // A raw backend: the page is fine, /cut promises 100 bytes and sends 5.
    let addr = tcp_backend(|mut s| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 4096];
        let Ok(n) = s.read(&mut buf).await else { return };
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let reply: &[u8] = if head.starts_with("GET /cut ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort"
        } else {
            b"HTTP/1.1 200 OK\r\nsurrogate-control: content=\"ESI/1.0\"\r\ncache-control: max-age=60\r\ncontent-length: 97\r\n\r\n<esi:try><esi:attempt><esi:include src=\"/cut\"/></esi:attempt><esi:except>cut</esi:except></esi:try>"
        };
        let _ = s.write_all(reply).await;
        let _ = s.shutdown().await;
    })
    .await;
    let lq = lacquer(config_for(addr)).await;
    assert_eq!(get(lq.addr(), "/page").await.text(), "cut");
}

#[tokio::test]
async fn remove_comment_and_esi_comments() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/r",
        "a<esi:remove><a href=\"/x\">no ESI</a></esi:remove>b<esi:comment text=\"gone\"/>c<!--esi <esi:include src=\"/f\"/> -->d",
    );
    fragment(&origin, "/f", "F", 60);
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/r").await.text(), "abc F#1 d");
}

#[tokio::test]
async fn choose_and_vars_follow_the_request() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/v",
        "<esi:choose><esi:when test=\"$(HTTP_COOKIE{group})=='beta'\">beta</esi:when><esi:otherwise>stable</esi:otherwise></esi:choose>|<esi:vars>$(QUERY_STRING{q}) $(HTTP_HOST)</esi:vars>|<esi:include src=\"/u/$(HTTP_COOKIE{user})\"/>",
    );
    fragment(&origin, "/u/ann", "ann", 60);
    fragment(&origin, "/u/bob", "bob", 60);
    origin.route("/v?q=42", |_, _| {
        Reply::ok("<esi:vars>$(QUERY_STRING{q})</esi:vars>").header(ESI.0, ESI.1)
    });
    let lq = lacquer_for(&origin).await;
    let ann = get_with(lq.addr(), "/v", &[("cookie", "user=ann; group=beta")]).await;
    assert_eq!(ann.text(), "beta| test.example|ann#1");
    let bob = get_with(lq.addr(), "/v", &[("cookie", "user=bob")]).await;
    assert_eq!(bob.text(), "stable| test.example|bob#1");
    assert_eq!(get(lq.addr(), "/v?q=42").await.text(), "42");
    assert_eq!(origin.hits("/v"), 1, "one stored page serves both users");
}

#[tokio::test]
async fn fragments_get_the_client_cookies_but_never_set_them() {
    let origin = Origin::start().await;
    page(&origin, "/c", "[<esi:include src=\"/cart\"/>]");
    origin.route("/cart", |seen, _| {
        let cookie = seen
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("cart for {cookie}"))
            .header("set-cookie", "tracking=1")
            .header("x-fragment", "yes")
    });
    let lq = lacquer_for(&origin).await;
    let got = get_with(
        lq.addr(),
        "/c",
        &[("cookie", "sid=7"), ("if-none-match", "\"x\"")],
    )
    .await;
    assert_eq!(got.text(), "[cart for sid=7]");
    assert!(got.header("set-cookie").is_none());
    assert!(got.header("x-fragment").is_none());
    let seen = origin.last("/cart").expect("cart fetched");
    assert!(
        seen.headers.get("if-none-match").is_none(),
        "client conditionals stay off fragments"
    );
}

#[tokio::test]
async fn loops_and_depth_are_not_fetched() {
    let origin = Origin::start().await;
    page(&origin, "/loop", "L[<esi:include src=\"/loop\"/>]");
    page(&origin, "/d1", "1<esi:include src=\"/d2\"/>");
    page(&origin, "/d2", "2<esi:include src=\"/d3\"/>");
    page(&origin, "/d3", "3<esi:include src=\"/d4\"/>");
    page(&origin, "/d4", "4");
    let lq = lacquer_with(&origin, |c| c.esi.max_depth = 2).await;
    assert_eq!(get(lq.addr(), "/loop").await.text(), "L[]");
    assert_eq!(origin.hits("/loop"), 1);
    // The page is level 0; with max_depth 2, /d3 (level 2) is fetched and
    // its include (level 3) is not.
    assert_eq!(get(lq.addr(), "/d1").await.text(), "123");
    assert_eq!(origin.hits("/d4"), 0);
}

#[tokio::test]
async fn two_hundred_includes_and_the_per_page_limit() {
    let origin = Origin::start().await;
    let mut body = String::new();
    for i in 0..300 {
        body.push_str(&format!("<esi:include src=\"/n/{i}\"/>,"));
        let text = format!("{i}");
        origin.route(&format!("/n/{i}"), move |_, _| {
            Reply::ok(text.clone()).header("cache-control", "max-age=60")
        });
    }
    let body: &'static str = Box::leak(body.into_boxed_str());
    page(&origin, "/many", body);
    let lq = lacquer_with(&origin, |c| c.esi.max_includes = 200).await;
    let got = get(lq.addr(), "/many").await;
    let expected: String = (0..200).map(|i| format!("{i},")).collect::<String>() + &",".repeat(100);
    assert_eq!(got.text(), expected);
    assert_eq!(
        origin.total(),
        201,
        "includes beyond the limit are not fetched"
    );
    assert!(
        origin
            .max_concurrent
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 32
    );
}

#[tokio::test]
async fn malformed_markup_is_removed_and_the_rest_delivered() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/m",
        "a<esi:include src=\"/f\"/>b<esi:include src=\"/f\"c<esi:try>d<esi:bogus/>e<esi:choose><esi:when>f",
    );
    fragment(&origin, "/f", "F", 60);
    let lq = lacquer_for(&origin).await;
    let got = get(lq.addr(), "/m").await;
    assert_eq!(got.status, 200);
    let text = got.text();
    assert!(text.starts_with("aF#1b"), "{text}");
    assert!(!text.contains("<esi:"), "{text}");
    let metrics = lq.proxy.render_metrics();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    assert!(value("lacquer_esi_errors_total") >= 3, "{metrics}");
    assert_eq!(value("lacquer_esi_includes_total"), 1, "{metrics}");
}

#[tokio::test]
async fn gzipped_pages_and_fragments_are_decoded() {
    let origin = Origin::start().await;
    let page_gz = gzip(b"<p><esi:include src=\"/z\"/></p>");
    origin.route("/gz", move |_, _| {
        Reply::ok(page_gz.clone())
            .header(ESI.0, ESI.1)
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
    });
    let frag_gz = gzip(b"zipped fragment");
    origin.route("/z", move |_, _| {
        Reply::ok(frag_gz.clone())
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    for _ in 0..2 {
        let got = get_with(lq.addr(), "/gz", &[("accept-encoding", "gzip")]).await;
        assert_eq!(got.text(), "<p>zipped fragment</p>");
        assert!(got.header("content-encoding").is_none());
        wait_stored(&lq, "/gz").await;
        wait_stored(&lq, "/z").await;
    }
    let seen = origin.last("/z").expect("fragment fetched");
    // A fetch for the cache asks for gzip (compression.enabled).
    assert_eq!(seen.header_or_none("accept-encoding"), "gzip");
    // The page when stored, the fragment once (the miss decodes the stored
    // copy, which the hit then uses).
    assert_eq!(metric(&lq, "lacquer_esi_decodes_total"), 2);
}

#[tokio::test]
async fn ten_slow_includes_are_fetched_at_once_and_streamed_in_order() {
    let origin = Origin::start().await;
    let mut body = String::from("head;");
    for i in 0..10 {
        body.push_str(&format!("<esi:include src=\"/slow/{i}\"/>;"));
        let text = format!("s{i}");
        origin.route(&format!("/slow/{i}"), move |_, _| {
            Reply::ok(text.clone())
                .header("cache-control", "no-store")
                .delay(Duration::from_millis(50))
        });
    }
    let body: &'static str = Box::leak(body.into_boxed_str());
    page(&origin, "/ten", body);
    let lq = lacquer_for(&origin).await;
    get(lq.addr(), "/ten").await; // the page is stored; fragments never are
    wait_stored(&lq, "/ten").await;
    let start = Instant::now();
    let mut resp = get_streaming(lq.addr(), "/ten").await;
    let first = resp
        .body_mut()
        .frame()
        .await
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("data frame");
    let first_at = start.elapsed();
    assert_eq!(
        &first[..],
        b"head;",
        "bytes before the first include leave first"
    );
    let rest = resp.into_body().collect().await.expect("body").to_bytes();
    let total = start.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "s0;s1;s2;s3;s4;s5;s6;s7;s8;s9;"
    );
    assert!(
        first_at < Duration::from_millis(50),
        "first bytes after {first_at:?}"
    );
    // One after another would take 500 ms.
    assert!(total < Duration::from_millis(200), "assembled in {total:?}");
    assert!(
        origin
            .max_concurrent
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 5
    );
}

#[tokio::test]
async fn pending_fragments_mean_no_content_length_and_http10_gets_close() {
    let origin = Origin::start().await;
    page(&origin, "/w", "x<esi:include src=\"/nostore\"/>y");
    fragment(&origin, "/nostore", "n", 0);
    let lq = lacquer_for(&origin).await;
    let wire = raw(
        lq.addr(),
        b"GET /w HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    let lower = wire.to_ascii_lowercase();
    assert!(lower.contains("transfer-encoding: chunked"), "{wire}");
    assert!(!lower.contains("content-length"), "{wire}");
    let wire10 = raw(
        lq.addr(),
        b"GET /w HTTP/1.0\r\nhost: test.example\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    let lower = wire10.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{wire10}");
    assert!(!lower.contains("content-length"), "{wire10}");
    assert!(wire10.ends_with("xn#2y"), "{wire10}");
}

#[tokio::test]
async fn etag_is_weakened_range_ignored_head_unassembled() {
    let origin = Origin::start().await;
    origin.route("/e", |_, _| {
        Reply::ok("[<esi:include src=\"/f\"/>]")
            .header(ESI.0, ESI.1)
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=60")
    });
    fragment(&origin, "/f", "F", 60);
    let lq = lacquer_for(&origin).await;
    let got = get_with(lq.addr(), "/e", &[("range", "bytes=0-1")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "[F#1]");
    assert_eq!(got.header("etag"), Some("W/\"v1\""));
    let not_modified = get_with(lq.addr(), "/e", &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(not_modified.status, 304);
    let head = send(lq.addr(), "HEAD", "/e", &[], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.header("content-length").is_none());
}

#[tokio::test]
async fn oversized_fragment_fails_the_include() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/big",
        "<esi:include src=\"/huge\" alt=\"/small\"/>",
    );
    origin.route("/huge", |_, _| Reply::ok(vec![b'h'; 4096]));
    fragment(&origin, "/small", "small", 60);
    let lq = lacquer_with(&origin, |c| c.esi.max_fragment_size = ByteSize(1024)).await;
    assert_eq!(get(lq.addr(), "/big").await.text(), "small#1");
}

#[tokio::test]
async fn an_esi_page_revalidates_with_its_strong_etag() {
    let origin = Origin::start().await;
    origin.route("/rv", |seen, _| {
        if seen.headers.get("if-none-match").map(|v| v.as_bytes()) == Some(&b"\"v1\""[..]) {
            return Reply::new(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=1");
        }
        Reply::ok("[<esi:include src=\"/f\"/>]")
            .header(ESI.0, ESI.1)
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=1")
    });
    fragment(&origin, "/f", "F", 60);
    // No grace (revalidate at once), keep (so the stale page is kept to be
    // revalidated).
    let lq = lacquer_with(&origin, |c| {
        c.cache.grace = Seconds(Duration::ZERO);
        c.cache.keep = Seconds(Duration::from_secs(30));
    })
    .await;
    assert_eq!(get(lq.addr(), "/rv").await.text(), "[F#1]");
    expire(&lq, &origin).await;
    let again = get(lq.addr(), "/rv").await;
    assert_eq!(again.text(), "[F#1]", "the 304 kept the template");
    assert_eq!(again.header("etag"), Some("W/\"v1\""));
    let seen = origin.last("/rv").expect("revalidated");
    assert_eq!(
        seen.headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..]),
        "the backend gets its own strong ETag back"
    );
    assert_eq!(origin.hits("/rv"), 2);
}

#[tokio::test]
async fn a_background_refresh_of_a_page_fetches_no_fragment() {
    let origin = Origin::start().await;
    origin.route("/bg", |_, n| {
        Reply::ok(format!("v{n}[<esi:include src=\"/live\"/>]"))
            .header(ESI.0, ESI.1)
            .header("cache-control", "max-age=1")
    });
    fragment(&origin, "/live", "live", 0); // never stored
    let lq = lacquer_grace(&origin, 10).await;
    assert_eq!(get(lq.addr(), "/bg").await.text(), "v1[live#1]");
    expire(&lq, &origin).await;
    // In grace: the stale page is assembled for this client (one fragment
    // fetch) while one background fetch refreshes the page.
    let stale = get(lq.addr(), "/bg").await;
    assert_eq!(stale.x_cache(), "STALE");
    assert_eq!(stale.text(), "v1[live#2]");
    // The refreshed page is stored once its refresh is over.
    wait_fresh(&lq, "/bg").await;
    assert_eq!(origin.hits("/bg"), 2, "the page was refreshed");
    assert_eq!(
        origin.hits("/live"),
        2,
        "the refresh, whose response nobody reads, assembled nothing"
    );
    assert_eq!(get(lq.addr(), "/bg").await.text(), "v2[live#3]");
}

#[tokio::test]
async fn a_gzipped_fragment_is_decoded_once_and_charged_not_at_every_hit() {
    let origin = Origin::start().await;
    let mut body = String::from("[");
    for _ in 0..8 {
        body.push_str("<esi:include src=\"/zf\"/>");
    }
    body.push(']');
    let body: &'static str = Box::leak(body.into_boxed_str());
    page(&origin, "/zp", body);
    let text = "z".repeat(256 << 10);
    let zipped = gzip(text.as_bytes());
    origin.route("/zf", move |_, _| {
        Reply::ok(zipped.clone())
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    // Stored as the backend sent it, by a client that takes gzip.
    let direct = get_with(lq.addr(), "/zf", &[("accept-encoding", "gzip")]).await;
    assert_eq!(direct.header("content-encoding"), Some("gzip"));
    wait_stored(&lq, "/zf").await;
    let stored_before = metric(&lq, "lacquer_stored_bytes");
    for _ in 0..10 {
        let got = get(lq.addr(), "/zp").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), 2 + 8 * text.len());
        assert!(got.body[1..].starts_with(text.as_bytes()));
        wait_stored(&lq, "/zp").await;
    }
    assert_eq!(origin.hits("/zf"), 1);
    assert_eq!(
        metric(&lq, "lacquer_esi_decodes_total"),
        1,
        "decoded once, for the first page, not for each include of each hit"
    );
    let stored_after = metric(&lq, "lacquer_stored_bytes");
    assert!(
        stored_after >= stored_before + text.len() as u64,
        "the decoded body is charged: {stored_before} -> {stored_after}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_fragment_fails_once_and_is_not_expanded_again() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/bp",
        "a<esi:include src=\"/bomb\" alt=\"/small\"/>b<esi:include src=\"/bomb\" onerror=\"continue\"/>c",
    );
    // 16 KiB on the wire, 16 MiB decoded.
    let bomb = zeros_gz(1 << 20, 16);
    assert!(bomb.len() < 32 << 10, "{}", bomb.len());
    origin.route("/bomb", move |_, _| {
        Reply::ok(bomb.clone())
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
    });
    fragment(&origin, "/small", "small", 60);
    let lq = lacquer_with(&origin, |c| c.esi.max_fragment_size = ByteSize(1 << 20)).await;
    let direct = get_with(lq.addr(), "/bomb", &[("accept-encoding", "gzip")]).await;
    assert_eq!(direct.status, 200);
    wait_stored(&lq, "/bomb").await;
    for _ in 0..5 {
        let got = get(lq.addr(), "/bp").await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.text(),
            "asmall#1bc",
            "the include failed: alt, then continue"
        );
        wait_stored(&lq, "/bp").await;
    }
    assert_eq!(origin.hits("/bomb"), 1);
    assert_eq!(origin.hits("/small"), 1);
    assert_eq!(
        metric(&lq, "lacquer_esi_decodes_total"),
        1,
        "the failure is remembered with the stored fragment"
    );
}

#[test]
fn a_page_being_assembled_does_not_block_its_worker() {
    const N: usize = 16;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let origin = Origin::start().await;
        let mut body = String::new();
        for i in 0..N {
            body.push_str(&format!("<esi:include src=\"/hf/{i}\"/>"));
            let zipped = zeros_gz(1 << 20, 4);
            origin.route(&format!("/hf/{i}"), move |_, _| {
                Reply::ok(zipped.clone())
                    .header("content-encoding", "gzip")
                    .header("cache-control", "max-age=60")
            });
        }
        let body: &'static str = Box::leak(body.into_boxed_str());
        page(&origin, "/heavy", body);
        fragment(&origin, "/unrelated", "u", 60);
        let mut config = config_for(origin.addr);
        config.esi.max_fragment_size = ByteSize(8 << 20);
        // One worker thread: everything below is served by one runtime.
        let lq = lacquer::server::start_workers(std::sync::Arc::new(config), 1)
            .await
            .expect("start lacquer");
        for i in 0..N {
            let got = get_with(
                lq.addr(),
                &format!("/hf/{i}"),
                &[("accept-encoding", "gzip")],
            )
            .await;
            assert_eq!(got.header("content-encoding"), Some("gzip"));
        }
        assert_eq!(get(lq.addr(), "/unrelated").await.text(), "u#1");
        wait_stored(&lq, "/unrelated").await;
        let addr = lq.addr();
        let heavy = tokio::spawn(async move { get(addr, "/heavy").await });
        let deadline = Instant::now() + Duration::from_secs(20);
        while metric(&lq, "lacquer_esi_decoding") == 0 {
            assert!(Instant::now() < deadline, "no decode started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The heavy page is being decoded: an unrelated request on the same
        // worker is answered meanwhile, not after all of it.
        let unrelated = get(addr, "/unrelated").await;
        let decoded = metric(&lq, "lacquer_esi_decodes_total");
        assert_eq!(unrelated.text(), "u#1");
        assert!(
            decoded < N as u64,
            "the unrelated request waited for {decoded} of {N} decodes"
        );
        let heavy = heavy.await.expect("heavy client");
        assert_eq!(heavy.status, 200);
        assert_eq!(heavy.body.len(), N * (4 << 20));
        lq.shutdown(Duration::from_secs(1)).await;
    });
}

/// Serves `body` at `/p` with fragments `/f` ("F") and `/g` ("G"); returns
/// the delivered page and the origin hits of `/f` and `/g`.
async fn deliver(body: &'static str) -> (String, usize, usize) {
    let origin = Origin::start().await;
    page(&origin, "/p", body);
    fragment(&origin, "/f", "F", 60);
    fragment(&origin, "/g", "G", 60);
    let lq = lacquer_for(&origin).await;
    let text = get(lq.addr(), "/p").await.text();
    (text, origin.hits("/f"), origin.hits("/g"))
}

/// As Varnish: ESI markup inside an ordinary HTML comment is left alone
/// (only `<!--esi … -->` is processed) and not fetched.
#[tokio::test]
async fn an_include_in_an_html_comment_is_not_fetched() {
    let body = "a<!-- <esi:include src=\"/f\"/> -->b<!--esi <esi:include src=\"/g\"/> -->c";
    assert_eq!(
        deliver(body).await,
        ("a<!-- <esi:include src=\"/f\"/> -->b G#1 c".into(), 0, 1)
    );
}

/// As Varnish: ESI markup inside `<![CDATA[ … ]]>` is left alone.
#[tokio::test]
async fn an_include_in_cdata_is_not_fetched() {
    let body = "a<![CDATA[<esi:include src=\"/f\"/>]]>b<esi:include src=\"/g\"/>";
    assert_eq!(
        deliver(body).await,
        ("a<![CDATA[<esi:include src=\"/f\"/>]]>bG#1".into(), 0, 1)
    );
}

/// As Varnish: an HTML comment without `-->` runs to the end of the body.
#[tokio::test]
async fn an_unclosed_html_comment_runs_to_the_end() {
    let body = "a<esi:include src=\"/g\"/>b<!-- <esi:include src=\"/f\"/>";
    assert_eq!(
        deliver(body).await,
        ("aG#1b<!-- <esi:include src=\"/f\"/>".into(), 0, 1)
    );
}

/// As Varnish: a `</esi:remove>` inside CDATA does not close the remove.
#[tokio::test]
async fn a_remove_close_in_cdata_does_not_close_the_remove() {
    let body = "a<esi:remove>x<![CDATA[</esi:remove>]]><esi:include src=\"/f\"/></esi:remove>b<esi:include src=\"/g\"/>";
    assert_eq!(deliver(body).await, ("abG#1".into(), 0, 1));
}

/// The same inside an HTML comment.
#[tokio::test]
async fn a_remove_close_in_a_comment_does_not_close_the_remove() {
    let body = "a<esi:remove>x<!-- </esi:remove> --><esi:include src=\"/f\"/></esi:remove>b<esi:include src=\"/g\"/>";
    assert_eq!(deliver(body).await, ("abG#1".into(), 0, 1));
}

/// As Varnish: an `<esi:remove>` never closed removes the rest of the page.
#[tokio::test]
async fn an_unclosed_remove_removes_the_rest() {
    let body = "a<esi:include src=\"/g\"/>b<esi:remove>c<esi:include src=\"/f\"/>d";
    assert_eq!(deliver(body).await, ("aG#1b".into(), 0, 1));
}

/// As Varnish: an include with two `src` attributes is dropped, neither is
/// fetched.
#[tokio::test]
async fn an_include_with_two_src_is_dropped() {
    let body = "a<esi:include src=\"/f\" src=\"/g\"/>b";
    assert_eq!(deliver(body).await, ("ab".into(), 0, 0));
}

/// ESI 1.0 §4 defaults, quoted and unquoted: printed when the variable is
/// empty or unset.
#[tokio::test]
async fn variable_defaults_print_when_the_variable_is_empty() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/d",
        "<esi:vars>Hello $(HTTP_COOKIE{first_name}|'new user'), #$(HTTP_COOKIE{id}|default)</esi:vars>",
    );
    let lq = lacquer_for(&origin).await;
    assert_eq!(
        get(lq.addr(), "/d").await.text(),
        "Hello new user, #default"
    );
    let known = get_with(lq.addr(), "/d", &[("cookie", "first_name=Ann; id=7")]).await;
    assert_eq!(known.text(), "Hello Ann, #7");
    let empty = get_with(lq.addr(), "/d", &[("cookie", "first_name=; id=")]).await;
    assert_eq!(empty.text(), "Hello new user, #default");
    assert_eq!(origin.hits("/d"), 1);
}

/// ESI 1.0 §4: `$(HTTP_ACCEPT_LANGUAGE{da})` is true when the client's list
/// has that language (q-values and region subtags considered).
#[tokio::test]
async fn accept_language_is_a_boolean() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/l",
        "<esi:choose><esi:when test=\"$(HTTP_ACCEPT_LANGUAGE{da})\">dansk</esi:when><esi:otherwise>english</esi:otherwise></esi:choose>|<esi:vars>$(HTTP_ACCEPT_LANGUAGE{da})</esi:vars>",
    );
    let lq = lacquer_for(&origin).await;
    let lang = |al: &'static str| {
        let addr = lq.addr();
        async move {
            get_with(addr, "/l", &[("accept-language", al)])
                .await
                .text()
        }
    };
    assert_eq!(lang("da, en-gb;q=0.8").await, "dansk|true");
    assert_eq!(lang("en-GB,da-DK;q=0.5").await, "dansk|true");
    assert_eq!(lang("en, da;q=0").await, "english|false");
    assert_eq!(lang("de").await, "english|false");
    assert_eq!(get(lq.addr(), "/l").await.text(), "english|false");
}

/// Variables in an include's `src`, in the path and in the query, resolve
/// (defaults included) before the fetch; a value a request target cannot
/// carry is percent-encoded.
#[tokio::test]
async fn variables_in_src_path_and_query_resolve_before_the_fetch() {
    let origin = Origin::start().await;
    page(
        &origin,
        "/s",
        "[<esi:include src=\"/u/$(HTTP_COOKIE{user}|anon)/box?lang=$(QUERY_STRING{lang}|en)&da=$(HTTP_ACCEPT_LANGUAGE{da})&n=$(HTTP_COOKIE{name}|'new user')\"/>]",
    );
    origin.route("/s?lang=fr", |_, _| {
        Reply::ok("[<esi:include src=\"/u/$(HTTP_COOKIE{user}|anon)/box?lang=$(QUERY_STRING{lang}|en)&da=$(HTTP_ACCEPT_LANGUAGE{da})&n=$(HTTP_COOKIE{name}|'new user')\"/>]")
            .header(ESI.0, ESI.1)
    });
    fragment(
        &origin,
        "/u/anon/box?lang=en&da=false&n=new%20user",
        "anon",
        60,
    );
    fragment(&origin, "/u/ann/box?lang=fr&da=true&n=Ann", "ann", 60);
    let lq = lacquer_for(&origin).await;
    assert_eq!(get(lq.addr(), "/s").await.text(), "[anon#1]");
    let ann = get_with(
        lq.addr(),
        "/s?lang=fr",
        &[("cookie", "user=ann; name=Ann"), ("accept-language", "da")],
    )
    .await;
    assert_eq!(ann.text(), "[ann#1]");
}
