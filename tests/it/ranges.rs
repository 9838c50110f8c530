//! Range requests (RFC 9110 §14) through lacquer with a real origin: 206
//! slices and multipart/byteranges of cached objects (byte-exact), 416,
//! invalid and excessive ranges, If-Range, ranges on misses (one whole
//! fetch, answered as the bytes arrive) and on passes (forwarded), HEAD,
//! Accept-Ranges, and ESI pages (whole).
use crate::common::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::Duration;

/// 1000 bytes, each position distinct enough that a wrong offset shows.
fn body() -> Bytes {
    (0..1000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Routes `path` to `body()` (text/plain, fresh for 10 minutes, a strong
/// ETag `"v1"`) with `extra` headers.
fn object(origin: &Origin, path: &str, extra: &[(&str, &str)]) {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    origin.route(path, move |_, _| {
        let mut r = Reply::ok(body())
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .header("etag", "\"v1\"");
        for (k, v) in &extra {
            r = r.header(k, v);
        }
        r
    });
}

/// lacquer in front of an origin serving `object(path)`, with the object
/// already stored (one origin hit).
async fn stored_object(path: &str) -> (Origin, lacquer::server::Running) {
    let origin = Origin::start().await;
    object(&origin, path, &[]);
    let lq = lacquer_for(&origin).await;
    let first = get(lq.addr(), path).await;
    assert_eq!(first.status, 200);
    wait_stored(&lq, path).await;
    (origin, lq)
}

async fn ranged(lq: &lacquer::server::Running, path: &str, range: &str) -> Got {
    get_with(lq.addr(), path, &[("range", range)]).await
}

#[tokio::test]
async fn a_single_range_of_a_hit_is_a_206_slice() {
    let (origin, lq) = stored_object("/r").await;
    let g = ranged(&lq, "/r", "bytes=100-199").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(g.header("content-length"), Some("100"));
    assert_eq!(g.header("content-type"), Some("text/plain"));
    assert_eq!(g.body, body().slice(100..200));
    assert!(is_hit(&g), "{}", g.x_cache());
    // The last byte, and a last position past the end (clamped).
    let g = ranged(&lq, "/r", "bytes=999-5000").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 999-999/1000"));
    assert_eq!(g.body, body().slice(999..));
    assert_eq!(origin.hits("/r"), 1);
}

#[tokio::test]
async fn suffix_and_open_ranges() {
    let (origin, lq) = stored_object("/s").await;
    let g = ranged(&lq, "/s", "bytes=-10").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(g.body, body().slice(990..));
    let g = ranged(&lq, "/s", "bytes=-5000").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 0-999/1000"));
    assert_eq!(g.body, body());
    let g = ranged(&lq, "/s", "bytes=900-").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 900-999/1000"));
    assert_eq!(g.header("content-length"), Some("100"));
    assert_eq!(g.body, body().slice(900..));
    assert_eq!(origin.hits("/s"), 1);
}

/// The parts of a multipart/byteranges body: (headers, bytes) each, after
/// checking the framing byte by byte (RFC 9110 §14.6).
fn parts(g: &Got) -> Vec<(Vec<String>, Bytes)> {
    let ct = g.header("content-type").expect("content-type");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content-type {ct}"));
    let delim = format!("--{boundary}");
    let close = format!("\r\n--{boundary}--\r\n");
    let b = &g.body[..];
    assert!(
        b.starts_with(delim.as_bytes()),
        "body starts with the boundary"
    );
    assert!(
        b.ends_with(close.as_bytes()),
        "body ends with the close delimiter"
    );
    let inner = &b[delim.len()..b.len() - close.len()];
    let sep = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    let mut rest = inner;
    loop {
        let next = find(rest, sep.as_bytes());
        let part = &rest[..next.unwrap_or(rest.len())];
        let part = part
            .strip_prefix(b"\r\n")
            .expect("CRLF after the delimiter");
        let end = find(part, b"\r\n\r\n").expect("blank line after the part's headers");
        let head = String::from_utf8(part[..end].to_vec()).expect("ASCII headers");
        let data = Bytes::copy_from_slice(&part[end + 4..]);
        out.push((head.split("\r\n").map(str::to_string).collect(), data));
        match next {
            Some(n) => rest = &rest[n + sep.len()..],
            None => break,
        }
    }
    assert_eq!(
        g.header("content-length")
            .map(|v| v.parse::<usize>().unwrap()),
        Some(g.body.len())
    );
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn several_ranges_are_a_byte_exact_multipart_body() {
    let (origin, lq) = stored_object("/m").await;
    let g = ranged(&lq, "/m", "bytes=0-9, 500-509,-3").await;
    assert_eq!(g.status, 206);
    assert!(g.header("content-range").is_none());
    let got = parts(&g);
    let want = [(0, 9), (500, 509), (997, 999)];
    assert_eq!(got.len(), want.len());
    for ((head, data), (a, b)) in got.iter().zip(want) {
        assert_eq!(
            head,
            &vec![
                "Content-Type: text/plain".to_string(),
                format!("Content-Range: bytes {a}-{b}/1000"),
            ]
        );
        assert_eq!(data, &body().slice(a..=b));
    }
    // Each response has its own boundary.
    let again = ranged(&lq, "/m", "bytes=0-9, 500-509,-3").await;
    assert_ne!(again.header("content-type"), g.header("content-type"));
    assert_eq!(origin.hits("/m"), 1);
}

#[tokio::test]
async fn unsatisfiable_ranges_get_416_with_the_length() {
    let (origin, lq) = stored_object("/u").await;
    for range in ["bytes=1000-", "bytes=5000-6000, 1000-1001", "bytes=-0"] {
        let g = ranged(&lq, "/u", range).await;
        assert_eq!(g.status, 416, "{range}");
        assert_eq!(g.header("content-range"), Some("bytes */1000"), "{range}");
        assert!(g.body.is_empty());
        assert!(g.header("cache-control").is_none());
    }
    assert_eq!(origin.hits("/u"), 1);
}

#[tokio::test]
async fn invalid_excessive_and_overlapping_ranges_get_the_whole_200() {
    let (origin, lq) = stored_object("/w").await;
    let many = format!(
        "bytes={}",
        (0..17)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",")
    );
    for range in [
        "bytes=5-1",
        "bytes=a-b",
        "items=0-9",
        "bytes 0-9",
        "bytes=0 - 9",
        many.as_str(),
        "bytes=0-99,50-149",
        "bytes=0-,-1",
    ] {
        let g = ranged(&lq, "/w", range).await;
        assert_eq!(g.status, 200, "{range}");
        assert_eq!(g.body, body(), "{range}");
        assert_eq!(g.header("accept-ranges"), Some("bytes"));
        assert!(g.header("content-range").is_none());
    }
    // 16 ranges (the default limit) are served.
    let sixteen = format!(
        "bytes={}",
        (0..16)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",")
    );
    let g = ranged(&lq, "/w", &sixteen).await;
    assert_eq!(g.status, 206);
    assert_eq!(parts(&g).len(), 16);
    assert_eq!(origin.hits("/w"), 1);
}

#[tokio::test]
async fn max_ranges_is_a_setting_and_0_turns_ranges_off() {
    let origin = Origin::start().await;
    object(&origin, "/l", &[("accept-ranges", "bytes")]);
    let lq = lacquer_with(&origin, |c| c.server.max_ranges = 2).await;
    get(lq.addr(), "/l").await;
    wait_stored(&lq, "/l").await;
    assert_eq!(ranged(&lq, "/l", "bytes=0-1,5-6").await.status, 206);
    assert_eq!(ranged(&lq, "/l", "bytes=0-1,5-6,9-10").await.status, 200);
    let off = lacquer_with(&origin, |c| c.server.max_ranges = 0).await;
    get(off.addr(), "/l").await;
    wait_stored(&off, "/l").await;
    let g = ranged(&off, "/l", "bytes=0-1").await;
    assert_eq!(g.status, 200);
    assert!(g.header("accept-ranges").is_none());
}

#[tokio::test]
async fn if_range_needs_a_strong_match() {
    let (origin, lq) = stored_object("/i").await;
    let with = |if_range: &'static str| {
        let addr = lq.addr();
        async move {
            get_with(
                addr,
                "/i",
                &[("range", "bytes=0-9"), ("if-range", if_range)],
            )
            .await
        }
    };
    let g = with("\"v1\"").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.body, body().slice(0..10));
    let g = with("\"v0\"").await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, body());
    let g = with("W/\"v1\"").await;
    assert_eq!(g.status, 200);
    let g = with("Sun, 06 Nov 1994 08:49:37 GMT").await;
    assert_eq!(g.status, 200, "no Last-Modified to match");
    assert_eq!(origin.hits("/i"), 1);
}

#[tokio::test]
async fn if_range_with_a_weak_etag_or_a_last_modified_date() {
    let origin = Origin::start().await;
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    origin.route("/weak", |_, _| {
        Reply::ok(body())
            .header("cache-control", "max-age=600")
            .header("etag", "W/\"v1\"")
    });
    origin.route("/dated", |_, _| {
        Reply::ok(body())
            .header("cache-control", "max-age=600")
            .header("last-modified", LM)
    });
    let lq = lacquer_for(&origin).await;
    for p in ["/weak", "/dated"] {
        get(lq.addr(), p).await;
        wait_stored(&lq, p).await;
    }
    let g = get_with(
        lq.addr(),
        "/weak",
        &[("range", "bytes=0-9"), ("if-range", "W/\"v1\"")],
    )
    .await;
    assert_eq!(g.status, 200, "weak tags never match If-Range");
    assert_eq!(
        get_with(lq.addr(), "/weak", &[("range", "bytes=0-9")])
            .await
            .status,
        206
    );
    // The origin's Date (now) is long after Last-Modified: a strong date.
    let g = get_with(
        lq.addr(),
        "/dated",
        &[("range", "bytes=0-9"), ("if-range", LM)],
    )
    .await;
    assert_eq!(g.status, 206);
    assert_eq!(g.body, body().slice(0..10));
    let other = "Sun, 06 Nov 1994 08:49:38 GMT";
    let g = get_with(
        lq.addr(),
        "/dated",
        &[("range", "bytes=0-9"), ("if-range", other)],
    )
    .await;
    assert_eq!(g.status, 200);
}

#[tokio::test]
async fn if_none_match_wins_over_range() {
    let (_origin, lq) = stored_object("/c").await;
    let g = get_with(
        lq.addr(),
        "/c",
        &[("range", "bytes=0-9"), ("if-none-match", "\"v1\"")],
    )
    .await;
    assert_eq!(g.status, 304);
}

#[tokio::test]
async fn a_range_on_a_miss_fetches_the_whole_object_once() {
    let origin = Origin::start().await;
    object(&origin, "/miss", &[]);
    let lq = lacquer_for(&origin).await;
    let g = ranged(&lq, "/miss", "bytes=10-19").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(g.header("content-length"), Some("10"));
    assert_eq!(g.body, body().slice(10..20));
    assert_eq!(g.x_cache(), "MISS");
    let seen = origin.last("/miss").expect("fetched");
    assert_eq!(seen.header_or_none("range"), "none");
    wait_stored(&lq, "/miss").await;
    let whole = get(lq.addr(), "/miss").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, body());
    assert!(is_hit(&whole), "{}", whole.x_cache());
    assert_eq!(origin.hits("/miss"), 1);
}

#[tokio::test]
async fn ranges_on_a_coalesced_miss_share_one_fetch() {
    let origin = Origin::start().await;
    origin.route("/co", |_, _| {
        Reply::ok(body())
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(300))
    });
    let lq = lacquer_for(&origin).await;
    let ranges = [
        "bytes=0-0",
        "bytes=-1",
        "bytes=300-",
        "bytes=2000-",
        "bytes=0-1,5-6",
    ];
    let tasks: Vec<_> = ranges
        .into_iter()
        .map(|r| {
            let addr = lq.addr();
            tokio::spawn(async move { get_with(addr, "/co", &[("range", r)]).await })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(origin.hits("/co"), 1);
    assert_eq!((got[0].status, &got[0].body[..]), (206, &body()[0..1]));
    assert_eq!((got[1].status, &got[1].body[..]), (206, &body()[999..]));
    assert_eq!((got[2].status, &got[2].body[..]), (206, &body()[300..]));
    assert_eq!(got[3].status, 416);
    assert_eq!(got[3].header("content-range"), Some("bytes */1000"));
    // Several ranges while the body streams in: the whole 200.
    assert_eq!((got[4].status, got[4].body.clone()), (200, body()));
}

#[tokio::test]
async fn a_range_on_a_miss_is_answered_as_soon_as_its_bytes_arrive() {
    let origin = Origin::start().await;
    // 1000 bytes, then a pause longer than the test waits, then 1000 more.
    origin.route("/slow", |_, _| {
        Reply::ok("")
            .header("cache-control", "max-age=600")
            .header("content-length", "2000")
            .chunks(1000, 2, Duration::from_secs(60))
    });
    let lq = lacquer_for(&origin).await;
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        let g = ranged(&lq, "/slow", "bytes=100-199").await;
        (
            g.status,
            g.header("content-range").map(str::to_string),
            g.body,
        )
    })
    .await
    .expect("the range arrives before the origin's body ends");
    assert_eq!(resp.0, 206);
    assert_eq!(resp.1.as_deref(), Some("bytes 100-199/2000"));
    assert_eq!(resp.2, Bytes::from(vec![b'x'; 100]));
}

#[tokio::test]
async fn a_range_on_a_chunked_miss_gets_the_whole_200() {
    let origin = Origin::start().await;
    origin.route("/chunked", |_, _| {
        Reply::ok("")
            .header("cache-control", "max-age=600")
            .chunks(100, 3, Duration::ZERO)
    });
    let lq = lacquer_for(&origin).await;
    let g = ranged(&lq, "/chunked", "bytes=0-9").await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body.len(), 300);
    wait_stored(&lq, "/chunked").await;
    let g = ranged(&lq, "/chunked", "bytes=0-9").await;
    assert_eq!(
        (g.status, g.body.len()),
        (206, 10),
        "a hit knows its length"
    );
    assert_eq!(g.header("content-range"), Some("bytes 0-9/300"));
}

#[tokio::test]
async fn a_range_on_a_pass_reaches_the_origin_and_its_206_is_relayed() {
    let origin = Origin::start().await;
    origin.route("/pass/r", |seen, _| {
        match seen.headers.get("range").and_then(|v| v.to_str().ok()) {
            Some("bytes=2-4") => Reply::new(206)
                .header("content-range", "bytes 2-4/10")
                .body("234"),
            _ => Reply::ok("0123456789"),
        }
    });
    let lq = with_policy(
        origin.addr,
        "sub vcl_recv {\n    if (req.url ~ \"^/pass\") { return (pass); }\n}\n",
    )
    .await;
    let g = ranged(&lq, "/pass/r", "bytes=2-4").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 2-4/10"));
    assert_eq!(g.text(), "234");
    assert_eq!(g.x_cache(), "PASS");
    assert_eq!(
        origin.last("/pass/r").unwrap().header_or_none("range"),
        "bytes=2-4"
    );
}

#[tokio::test]
async fn head_with_a_range_gets_the_206_head() {
    let (origin, lq) = stored_object("/h").await;
    let g = send(lq.addr(), "HEAD", "/h", &[("range", "bytes=10-29")], "").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 10-29/1000"));
    assert_eq!(g.header("content-length"), Some("20"));
    assert!(g.body.is_empty());
    assert_eq!(origin.hits("/h"), 1);
}

#[tokio::test]
async fn head_with_a_range_on_a_miss_gets_the_206_head() {
    let origin = Origin::start().await;
    object(&origin, "/hm", &[]);
    let lq = lacquer_for(&origin).await;
    let g = send(lq.addr(), "HEAD", "/hm", &[("range", "bytes=-100")], "").await;
    assert_eq!(g.status, 206);
    assert_eq!(g.header("content-range"), Some("bytes 900-999/1000"));
    assert_eq!(g.header("content-length"), Some("100"));
    assert!(g.body.is_empty());
    assert_eq!(g.x_cache(), "MISS");
    wait_stored(&lq, "/hm").await;
    assert_eq!(get(lq.addr(), "/hm").await.body, body());
    assert_eq!(origin.hits("/hm"), 1);
}

#[tokio::test]
async fn if_range_on_a_miss() {
    let origin = Origin::start().await;
    object(&origin, "/im", &[]);
    object(&origin, "/im2", &[]);
    let lq = lacquer_for(&origin).await;
    let g = get_with(
        lq.addr(),
        "/im",
        &[("range", "bytes=0-9"), ("if-range", "\"v1\"")],
    )
    .await;
    assert_eq!((g.status, g.body.clone()), (206, body().slice(0..10)));
    let g = get_with(
        lq.addr(),
        "/im2",
        &[("range", "bytes=0-9"), ("if-range", "\"v0\"")],
    )
    .await;
    assert_eq!((g.status, g.body.clone()), (200, body()));
}

#[tokio::test]
async fn hits_and_misses_say_accept_ranges() {
    let origin = Origin::start().await;
    object(&origin, "/a", &[("accept-ranges", "none")]);
    let lq = lacquer_for(&origin).await;
    let miss = get(lq.addr(), "/a").await;
    assert_eq!(miss.header("accept-ranges"), Some("bytes"));
    wait_stored(&lq, "/a").await;
    let hit = get(lq.addr(), "/a").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.header("accept-ranges"), Some("bytes"));
}

#[tokio::test]
async fn an_esi_page_with_a_range_gets_the_whole_assembled_page() {
    let origin = Origin::start().await;
    origin.route("/page", |_, _| {
        Reply::ok("<p><esi:include src=\"/frag\"/></p>")
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("cache-control", "max-age=60")
    });
    origin.route("/frag", |_, _| {
        Reply::ok("fragment").header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let miss = ranged(&lq, "/page", "bytes=0-2").await;
    assert_eq!(
        (miss.status, miss.text().as_str()),
        (200, "<p>fragment</p>")
    );
    wait_stored(&lq, "/page").await;
    wait_stored(&lq, "/frag").await;
    let hit = ranged(&lq, "/page", "bytes=0-2").await;
    assert!(is_hit(&hit));
    assert_eq!((hit.status, hit.text().as_str()), (200, "<p>fragment</p>"));
    assert!(hit.header("accept-ranges").is_none());
    assert!(hit.header("content-range").is_none());
}

#[tokio::test]
async fn a_range_read_streams_only_its_bytes() {
    // A streamed 206 ends after its last byte: the client's body is exactly
    // the range even though the connection stays open.
    let origin = Origin::start().await;
    object(&origin, "/stream", &[]);
    let lq = lacquer_for(&origin).await;
    let mut sender = connect::<http_body_util::Empty<Bytes>>(lq.addr()).await;
    for (range, want) in [("bytes=0-4", 0..5), ("bytes=995-", 995..1000)] {
        let req = http::Request::get("/stream")
            .header("host", "test.example")
            .header("range", range)
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 206);
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, body().slice(want));
    }
}

#[tokio::test]
async fn a_content_coded_body_gets_one_range_but_not_several() {
    let origin = Origin::start().await;
    object(&origin, "/gz", &[("content-encoding", "gzip")]);
    let lq = lacquer_for(&origin).await;
    // A client that accepts gzip gets the stored (coded) bytes; ranges of
    // decoded bodies are in compression.rs.
    let gzip_ranged = async |range: &str| {
        get_with(
            lq.addr(),
            "/gz",
            &[("range", range), ("accept-encoding", "gzip")],
        )
        .await
    };
    get_with(lq.addr(), "/gz", &[("accept-encoding", "gzip")]).await;
    wait_stored(&lq, "/gz").await;
    let one = gzip_ranged("bytes=0-9").await;
    assert_eq!((one.status, one.body.clone()), (206, body().slice(0..10)));
    assert_eq!(one.header("content-encoding"), Some("gzip"));
    let several = gzip_ranged("bytes=0-9,20-29").await;
    assert_eq!((several.status, several.body.clone()), (200, body()));
}

/// `server.send_buffer` set to a small client send buffer (4 KiB: a
/// 256 KiB answer takes many writes): a miss, a hit and a range of a
/// large object still arrive byte-exact, and the origin is asked once.
#[tokio::test]
async fn a_set_send_buffer_still_delivers_large_answers_whole() {
    let origin = Origin::start().await;
    let big: Bytes = (0..(256u32 << 10))
        .map(|i| (i % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    let served = big.clone();
    origin.route("/big", move |_, _| {
        Reply::ok(served.clone())
            .header("cache-control", "max-age=600")
            .header("content-type", "application/octet-stream")
    });
    let lq = lacquer_with(&origin, |c| {
        c.server.send_buffer = lacquer::config::ByteSize(4 << 10)
    })
    .await;
    let miss = get(lq.addr(), "/big").await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.body, big);
    wait_stored(&lq, "/big").await;
    let hit = get(lq.addr(), "/big").await;
    assert_eq!(hit.body, big);
    let part = ranged(&lq, "/big", "bytes=65536-131071").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, big.slice(65536..131072));
    assert_eq!(origin.hits("/big"), 1);
}
