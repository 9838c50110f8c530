//! RFC 9111 details: `Age` counts by its first member and is ignored when
//! that is not a non-negative integer (§5.1), a revalidation sends the stored `ETag` as stored,
//! `Expect: 100-continue` uploads are answered `100 Continue` and passed,
//! HTTP dates with wrong case or weekday are read, Vary values normalised.
use crate::common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Routes `path` to answer `v<n>` with max-age=100 and `ages` as `Age`
/// field lines.
fn route_age(origin: &Origin, path: &str, ages: &'static [&'static str]) {
    origin.route(path, move |_, n| {
        let mut r = Reply::ok(format!("v{n}")).header("cache-control", "max-age=100");
        for a in ages {
            r = r.header("age", a);
        }
        r
    });
}

#[tokio::test]
async fn age_counts_by_its_first_member_and_is_ignored_when_invalid() {
    let origin = Origin::start().await;
    // max-age=100: an Age of 200 makes the object stale on arrival.
    let fresh: [(&str, &'static [&'static str]); 5] = [
        ("/age/float", &["200.5"]),
        ("/age/negative", &["-200"]),
        ("/age/text", &["abc"]),
        ("/age/list-0-first", &["0, 200"]),
        ("/age/lines-0-first", &["0", "200"]),
    ];
    let stale: [(&str, &'static [&'static str]); 2] = [
        ("/age/list-old-first", &["200, 0"]),
        ("/age/lines-old-first", &["200", "0"]),
    ];
    for (path, ages) in fresh.iter().chain(&stale) {
        route_age(&origin, path, ages);
    }
    let lq = lacquer_for(&origin).await;
    for (path, _) in fresh {
        let (_, hit) = get_twice(&lq, path, &[]).await;
        assert!(is_hit(&hit), "{path}: {}", hit.x_cache());
        assert!(age_of(&hit) < 100, "{path}: Age {}", age_of(&hit));
        assert_eq!(origin.hits(path), 1, "{path}");
    }
    for (path, _) in stale {
        let (_, again) = get_unstored_twice(lq.addr(), path, &[]).await;
        assert_eq!(again.text(), "v2", "{path}: {}", again.x_cache());
        assert_eq!(origin.hits(path), 2, "{path}");
    }
}

/// Routes `path`: the first answer carries `etag` (raw bytes) and
/// `max-age=1`; later ones 304.
fn route_etag(origin: &Origin, path: &str, etag: &'static [u8]) {
    origin.route(path, move |_, n| {
        let r = if n == 1 {
            Reply::ok("body")
        } else {
            Reply::new(304)
        };
        r.header_bytes("etag", etag)
            .header("cache-control", "max-age=1")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revalidation_sends_the_stored_etag_as_stored() {
    let origin = Origin::start().await;
    // Unquoted (a broken origin: it compares what it sent) and obs-text.
    let cases: [(&str, &'static [u8]); 3] = [
        ("/inm/unquoted", b"abcdef"),
        ("/inm/obs-text", b"\"abc\xfc\""),
        ("/inm/weak", b"W/\"abc\""),
    ];
    for (path, etag) in cases {
        route_etag(&origin, path, etag);
    }
    let lq = lacquer_for(&origin).await;
    for (path, _) in cases {
        assert_eq!(get(lq.addr(), path).await.text(), "body");
    }
    expire(&lq, &origin).await;
    for (path, etag) in cases {
        let got = get(lq.addr(), path).await;
        assert_eq!((got.status, got.text().as_str()), (200, "body"), "{path}");
        let seen = origin.last(path).expect("revalidated");
        assert_eq!(
            seen.headers.get("if-none-match").map(|v| v.as_bytes()),
            Some(etag),
            "{path}"
        );
    }
}

/// Reads from `s` until `needle` arrives (or the connection ends, or 5 s
/// pass): what was read.
async fn read_until(s: &mut tokio::net::TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_the_body_passed() {
    let origin = Origin::start().await;
    origin.route("/upload", |seen, _| {
        Reply::ok(format!("{} {}", seen.method, seen.body_len))
    });
    let lq = lacquer_for(&origin).await;
    let mut s = tokio::net::TcpStream::connect(lq.addr()).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\
          Expect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // The client sends the body only once told to continue.
    let interim = read_until(&mut s, "\r\n\r\n").await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "no 100 Continue: {interim:?}"
    );
    s.write_all(b"hello").await.unwrap();
    let rest = read_until(&mut s, "POST 5").await;
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.ends_with("POST 5"), "{rest}");
    assert_eq!(origin.hits("/upload"), 1);
}

#[tokio::test]
async fn an_expires_with_wrong_case_or_weekday_still_gives_freshness() {
    let origin = Origin::start().await;
    for (path, expires) in [
        ("/exp/upper", "THU, 18 AUG 2050 02:01:18 gmt"),
        ("/exp/weekday", "Thu Aug  8 02:01:18 2050"),
    ] {
        origin.route(path, move |_, n| {
            Reply::ok(format!("v{n}")).header("expires", expires)
        });
    }
    let lq = lacquer_for(&origin).await;
    for path in ["/exp/upper", "/exp/weekday"] {
        let (_, hit) = get_twice(&lq, path, &[]).await;
        assert!(is_hit(&hit), "{path}: {}", hit.x_cache());
        assert_eq!(origin.hits(path), 1, "{path}");
    }
}

#[tokio::test]
async fn vary_matches_list_values_that_differ_only_in_spacing_or_case() {
    let origin = Origin::start().await;
    origin.route("/vary/norm", |_, n| {
        Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=60")
            .header("vary", "foo, accept-language")
    });
    let lq = lacquer_for(&origin).await;
    let first = [("foo", "1,2"), ("accept-language", "en, de")];
    get_twice(&lq, "/vary/norm", &first).await;
    let same = get_with(
        lq.addr(),
        "/vary/norm",
        &[("foo", " 1, 2 "), ("accept-language", "EN ,   de")],
    )
    .await;
    assert!(is_hit(&same), "{}", same.x_cache());
    let other = get_with(
        lq.addr(),
        "/vary/norm",
        &[("foo", "1,2"), ("accept-language", "de, en")],
    )
    .await;
    assert_eq!(other.text(), "v2", "preference order is kept");
}
