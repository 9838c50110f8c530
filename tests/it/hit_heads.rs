//! The head of a hit as the client gets it: since session 17 the usual hit
//! writes its stored fields from the object (`RespBody::Stored`), the
//! response's own map holding only what each delivery sets. Each field
//! the origin sent comes once, in its order; `Age`, `X-Cache`,
//! `Accept-Ranges` and `Content-Length` are lacquer's, once each, on every
//! way a stored object is delivered.
use crate::common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// The field lines of a raw answer named `name` (any case), in order.
fn lines_named<'a>(answer: &'a str, name: &str) -> Vec<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// `path` fetched once, stored, and fetched again: the raw hit, checked to
/// be a 200 whose body is `hello`.
async fn hello_hit(lq: &lacquer::server::Running, path: &str) -> String {
    let get = format!("GET {path} HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n");
    raw(lq.addr(), get.as_bytes(), WAIT).await;
    wait_stored(lq, path).await;
    let hit = raw(lq.addr(), get.as_bytes(), WAIT).await;
    assert!(hit.starts_with("HTTP/1.1 200 OK\r\n"), "{hit}");
    assert!(hit.ends_with("\r\n\r\nhello"), "{hit}");
    hit
}

#[tokio::test]
async fn a_hit_carries_each_stored_field_once_and_its_own_delivery_fields() {
    let origin = Origin::start().await;
    let date = http_date(-3);
    let date_sent = date.clone();
    origin.route("/f", move |_, _| {
        Reply::ok("hello")
            .header("cache-control", "max-age=60")
            .header("x-cache", "origin-cache")
            .header("age", "5")
            .header("accept-ranges", "none")
            .header("x-custom", "a")
            .header("content-type", "text/plain")
            .header("x-custom", "b")
            .header("date", &date_sent)
    });
    let lq = lacquer_for(&origin).await;
    let get = b"GET /f HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n";
    let miss = raw(lq.addr(), get, WAIT).await;
    assert!(miss.starts_with("HTTP/1.1 200"), "{miss}");
    wait_stored(&lq, "/f").await;
    for round in 0..2 {
        let hit = raw(lq.addr(), get, WAIT).await;
        assert!(hit.starts_with("HTTP/1.1 200 OK\r\n"), "{hit}");
        assert!(hit.ends_with("\r\n\r\nhello"), "{hit}");
        assert_eq!(origin.hits("/f"), 1, "round {round}: {hit}");
        let x_cache = lines_named(&hit, "x-cache");
        assert_eq!(x_cache.len(), 1, "{hit}");
        assert!(x_cache[0].starts_with("HIT"), "{hit}");
        let age = lines_named(&hit, "age");
        assert_eq!(age.len(), 1, "{hit}");
        assert!(age[0].parse::<u64>().expect("a number") >= 5, "{hit}");
        assert_eq!(lines_named(&hit, "accept-ranges"), ["bytes"], "{hit}");
        assert_eq!(lines_named(&hit, "content-length"), ["5"], "{hit}");
        assert_eq!(lines_named(&hit, "x-custom"), ["a", "b"], "{hit}");
        assert_eq!(lines_named(&hit, "content-type"), ["text/plain"], "{hit}");
        assert_eq!(lines_named(&hit, "date"), [date.as_str()], "{hit}");
        assert_eq!(lines_named(&hit, "connection"), ["close"], "{hit}");
        assert_eq!(lines_named(&hit, "via").len(), 1, "{hit}");
    }
    // The other ways of delivering the same object agree on those fields.
    let head = raw(
        lq.addr(),
        b"HEAD /f HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert_eq!(lines_named(&head, "content-length"), ["5"], "{head}");
    assert_eq!(lines_named(&head, "x-cache").len(), 1, "{head}");
    assert_eq!(lines_named(&head, "x-custom"), ["a", "b"], "{head}");
    let range = raw(
        lq.addr(),
        b"GET /f HTTP/1.1\r\nHost: h.test\r\nRange: bytes=1-2\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(range.starts_with("HTTP/1.1 206"), "{range}");
    assert!(range.ends_with("\r\n\r\nel"), "{range}");
    assert_eq!(lines_named(&range, "content-length"), ["2"], "{range}");
    assert_eq!(lines_named(&range, "x-custom"), ["a", "b"], "{range}");
    assert_eq!(origin.hits("/f"), 1);
}

#[tokio::test]
async fn hits_on_one_keep_alive_connection_are_framed_by_their_own_length() {
    let origin = Origin::start().await;
    for (path, body) in [("/a", "first"), ("/b", ""), ("/c", "the third one")] {
        origin.route(path, move |_, _| {
            Reply::ok(body).header("cache-control", "max-age=60")
        });
    }
    let lq = lacquer_for(&origin).await;
    for path in ["/a", "/b", "/c"] {
        let miss = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        raw(lq.addr(), miss.as_bytes(), WAIT).await;
        wait_stored(&lq, path).await;
    }
    // Three hits pipelined on one connection: each answer whole, in order.
    let pipelined = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let all = raw(lq.addr(), pipelined, WAIT).await;
    let answers: Vec<&str> = all.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{all}");
    for (answer, body) in answers.iter().zip(["first", "", "the third one"]) {
        assert!(answer.starts_with("200 OK\r\n"), "{all}");
        assert!(answer.ends_with(&format!("\r\n\r\n{body}")), "{all}");
        assert_eq!(
            lines_named(&format!("HTTP/1.1 {answer}"), "content-length"),
            [body.len().to_string()],
            "{all}"
        );
    }
    assert_eq!(origin.total(), 3);
}

/// `vcl_deliver` on a hit whose stored fields are written from the object:
/// it reads them (the length too), adds fields, and replaces or removes
/// stored ones (which then come out once, changed); what it removes
/// unconditionally is left out from the start.
#[tokio::test]
async fn vcl_deliver_reads_and_changes_the_stored_fields_of_a_hit() {
    let origin = Origin::start().await;
    for path in ["/keep", "/change"] {
        origin.route(path, |_, _| {
            Reply::ok("hello")
                .header("cache-control", "max-age=60")
                .header("content-type", "text/plain")
                .header("server", "origin/1.0")
                .header("x-custom", "a")
                .header("x-custom", "b")
                .header("x-gone", "1")
        });
    }
    let policy = r#"
sub vcl_deliver {
    set resp.http.X-Seen-Type = resp.http.Content-Type;
    set resp.http.X-Seen-Length = resp.http.Content-Length;
    set resp.http.X-Seen-Age = resp.http.Age;
    if (req.url ~ "change") {
        set resp.http.X-Custom = "replaced";
        unset resp.http.X-Gone;
    }
    unset resp.http.Server;
    return (deliver);
}
"#;
    let lq = with_policy(origin.addr, policy).await;
    for path in ["/keep", "/change"] {
        let hit = hello_hit(&lq, path).await;
        assert_eq!(lines_named(&hit, "x-cache").len(), 1, "{hit}");
        assert!(lines_named(&hit, "x-cache")[0].starts_with("HIT"), "{hit}");
        assert_eq!(lines_named(&hit, "x-seen-type"), ["text/plain"], "{hit}");
        assert_eq!(lines_named(&hit, "x-seen-length"), ["5"], "{hit}");
        let age = lines_named(&hit, "age");
        assert_eq!(age.len(), 1, "{hit}");
        assert_eq!(lines_named(&hit, "x-seen-age"), age, "{hit}");
        assert_eq!(lines_named(&hit, "content-length"), ["5"], "{hit}");
        assert_eq!(lines_named(&hit, "content-type"), ["text/plain"], "{hit}");
        assert!(lines_named(&hit, "server").is_empty(), "{hit}");
        if path == "/keep" {
            assert_eq!(lines_named(&hit, "x-custom"), ["a", "b"], "{hit}");
            assert_eq!(lines_named(&hit, "x-gone"), ["1"], "{hit}");
        } else {
            assert_eq!(lines_named(&hit, "x-custom"), ["replaced"], "{hit}");
            assert!(lines_named(&hit, "x-gone").is_empty(), "{hit}");
        }
        assert_eq!(origin.hits(path), 1, "{hit}");
    }
}

/// The fields each delivery sets (`X-Cache`, `Age`, `Via`, kept beside the
/// object's on the usual hit since session 18) as `vcl_deliver` sees and
/// changes them: read like any other, replaced or removed once, and a
/// stored `Via` goes with the delivery's when it is removed.
#[tokio::test]
async fn vcl_deliver_reads_and_changes_the_fields_a_hit_sets() {
    let origin = Origin::start().await;
    for path in ["/plain", "/set", "/via-gone", "/up-kept", "/up-gone"] {
        let upstream = path.starts_with("/up");
        origin.route(path, move |_, _| {
            let reply = Reply::ok("hello").header("cache-control", "max-age=60");
            if upstream {
                reply.header("via", "1.0 up")
            } else {
                reply
            }
        });
    }
    let policy = r#"
sub vcl_deliver {
    set resp.http.X-Seen-Cache = resp.http.X-Cache;
    set resp.http.X-Seen-Via = resp.http.Via;
    if (req.url ~ "set") {
        set resp.http.X-Cache = "policy";
        unset resp.http.Age;
    }
    if (req.url ~ "gone") {
        unset resp.http.Via;
    }
    return (deliver);
}
"#;
    let lq = with_policy(origin.addr, policy).await;
    for path in ["/plain", "/set", "/via-gone", "/up-kept", "/up-gone"] {
        let hit = hello_hit(&lq, path).await;
        assert_eq!(origin.hits(path), 1, "{hit}");
        let seen_cache = lines_named(&hit, "x-seen-cache");
        assert_eq!(seen_cache.len(), 1, "{hit}");
        assert!(seen_cache[0].starts_with("HIT"), "{hit}");
        if path == "/set" {
            assert_eq!(lines_named(&hit, "x-cache"), ["policy"], "{hit}");
            assert!(lines_named(&hit, "age").is_empty(), "{hit}");
        } else {
            assert_eq!(lines_named(&hit, "x-cache"), seen_cache, "{hit}");
            assert_eq!(lines_named(&hit, "age").len(), 1, "{hit}");
        }
        let via = lines_named(&hit, "via");
        let seen_via = lines_named(&hit, "x-seen-via");
        match path {
            "/via-gone" | "/up-gone" => assert!(via.is_empty(), "{hit}"),
            "/up-kept" => {
                assert_eq!(via.len(), 2, "{hit}");
                assert_eq!(via[0], "1.0 up", "{hit}");
                assert!(via[1].contains("lacquer"), "{hit}");
            }
            _ => {
                assert_eq!(via.len(), 1, "{hit}");
                assert!(via[0].contains("lacquer"), "{hit}");
            }
        }
        if path.starts_with("/up") {
            assert_eq!(seen_via, ["1.0 up"], "{hit}");
        } else {
            assert_eq!(seen_via.len(), 1, "{hit}");
            assert!(seen_via[0].contains("lacquer"), "{hit}");
        }
    }
}

/// A whole-response operation of `vcl_deliver` (`std.collect`) on a hit
/// whose fields are written from the object: the object's `Via` and the
/// delivery's are one field after it, in that order, and the other fields
/// the delivery set are still there once each.
#[tokio::test]
async fn std_collect_in_vcl_deliver_joins_the_objects_and_the_deliverys_fields() {
    let origin = Origin::start().await;
    origin.route("/c", |_, _| {
        Reply::ok("hello")
            .header("cache-control", "max-age=60")
            .header("via", "1.0 up")
    });
    let policy = r#"
import std;
sub vcl_deliver {
    std.collect(resp.http.Via);
    return (deliver);
}
"#;
    let lq = with_policy(origin.addr, policy).await;
    let hit = hello_hit(&lq, "/c").await;
    let via = lines_named(&hit, "via");
    assert_eq!(via.len(), 1, "{hit}");
    assert!(via[0].starts_with("1.0 up, "), "{hit}");
    assert!(via[0].contains("lacquer"), "{hit}");
    assert_eq!(lines_named(&hit, "age").len(), 1, "{hit}");
    assert_eq!(lines_named(&hit, "accept-ranges"), ["bytes"], "{hit}");
    let x_cache = lines_named(&hit, "x-cache");
    assert_eq!(x_cache.len(), 1, "{hit}");
    assert!(x_cache[0].starts_with("HIT"), "{hit}");
    assert_eq!(lines_named(&hit, "content-length"), ["5"], "{hit}");
    assert_eq!(origin.hits("/c"), 1, "{hit}");
}
