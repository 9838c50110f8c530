//! Headers `vcl_deliver` removes before anything in it could see them
//! (`unset resp.http.Server;` at its top) are left out of responses from
//! the cache and the policy runs without those removals: the client must
//! see what it would with every statement run, on misses, hits, ranges,
//! 304s and ESI pages alike.
use crate::common::*;

const EARLY: &str = r#"
sub vcl_backend_response {
    set beresp.http.X-Url = bereq.url;
    if (bereq.url == "/page") {
        set beresp.do_esi = true;
    }
}
sub vcl_deliver {
    # Read before its removal: removed where it stands, not left out.
    set resp.http.X-Url-Was = resp.http.X-Url;
    unset resp.http.X-Url;
    unset resp.http.Server;
    unset resp.http.X-Powered-By;
    unset resp.http.X-Varnish;
    unset resp.http.Via;
    unset resp.http.Age;
    unset resp.http.Accept-Ranges;
    unset resp.http.Vary;
    unset resp.http.Content-Range;
    set resp.http.X-After = "v=" + resp.http.Via + ",s=" + resp.http.Server + ",x=" + resp.http.X-Varnish;
}
"#;

/// The headers `EARLY` removes, absent; what it set, as it set it
/// (`url_was`: the object's `X-Url` as vcl_deliver read it).
fn removed_as_vcl_deliver_says(g: &Got, url_was: &str) {
    for name in [
        "x-url",
        "server",
        "x-powered-by",
        "x-varnish",
        "via",
        "age",
        "accept-ranges",
        "vary",
        "content-range",
    ] {
        assert_eq!(g.header(name), None, "{name} in {:?}", g.headers);
    }
    assert_eq!(g.header("x-url-was"), Some(url_was), "{:?}", g.headers);
    assert_eq!(g.header("x-after"), Some("v=,s=,x="), "{:?}", g.headers);
}

/// `path` fetched (`body`), stored, then served from the cache, each
/// answer as `EARLY` leaves it.
async fn miss_then_hit(lq: &lacquer::server::Running, path: &str, body: &str) {
    let miss = get(lq.addr(), path).await;
    assert_eq!(miss.text(), body);
    removed_as_vcl_deliver_says(&miss, path);
    wait_stored(lq, path).await;
    let hit = get(lq.addr(), path).await;
    assert!(is_hit(&hit), "{:?}", hit.headers);
    assert_eq!(hit.text(), body);
    removed_as_vcl_deliver_says(&hit, path);
}

#[tokio::test]
async fn headers_vcl_deliver_removes_first_are_absent_from_every_answer() {
    let origin = Origin::start().await;
    let app = [
        ("server", "app/1.0"),
        ("x-powered-by", "php"),
        ("etag", "\"e1\""),
    ];
    cacheable_with(&origin, "/e", &app);
    origin.route("/page", |_, _| {
        Reply::ok("a<esi:include src=\"/frag\"/>c")
            .header("cache-control", "max-age=600")
            .header("content-type", "text/html")
            .header("server", "app/1.0")
    });
    cacheable_with(&origin, "/frag", &app);
    let lq = with_policy(origin.addr, EARLY).await;
    let a = lq.addr();

    miss_then_hit(&lq, "/e", "/e v1").await;

    let range = get_with(a, "/e", &[("range", "bytes=0-1")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.text(), "/e");
    removed_as_vcl_deliver_says(&range, "/e");

    let unsatisfiable = get_with(a, "/e", &[("range", "bytes=100-200")]).await;
    assert_eq!(unsatisfiable.status, 416);
    // A 416 carries none of the object's own fields.
    removed_as_vcl_deliver_says(&unsatisfiable, "");

    let not_modified = get_with(a, "/e", &[("if-none-match", "\"e1\"")]).await;
    assert_eq!(not_modified.status, 304);
    removed_as_vcl_deliver_says(&not_modified, "/e");

    miss_then_hit(&lq, "/page", "a/frag v1c").await;
    // Gzip'd at delivery, which adds `Vary: Accept-Encoding`.
    let gzipped = get_with(a, "/page", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    removed_as_vcl_deliver_says(&gzipped, "/page");
    assert_eq!(origin.hits("/e"), 1);
    assert_eq!(origin.hits("/frag"), 1);
}

#[tokio::test]
async fn removals_after_a_way_out_of_vcl_deliver_are_not_made_early() {
    let policy = r#"
sub vcl_deliver {
    if (req.http.X-Keep) {
        return (deliver);
    }
    unset resp.http.Server;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}
"#;
    let origin = Origin::start().await;
    cacheable_with(&origin, "/k", &[("server", "app/1.0")]);
    let lq = with_policy(origin.addr, policy).await;
    let a = lq.addr();
    get(a, "/k").await;
    wait_stored(&lq, "/k").await;
    let kept = get_with(a, "/k", &[("x-keep", "1")]).await;
    assert!(is_hit(&kept));
    assert_eq!(kept.header("server"), Some("app/1.0"));
    assert!(kept.header("via").is_some(), "{:?}", kept.headers);
    assert!(kept.header("x-varnish").is_some(), "{:?}", kept.headers);
    let removed = get(a, "/k").await;
    assert!(is_hit(&removed));
    for name in ["server", "via", "x-varnish"] {
        assert_eq!(
            removed.header(name),
            None,
            "{name} in {:?}",
            removed.headers
        );
    }
}

/// `vcl_deliver` removing, first thing, every header a delivery makes or
/// reads; `{probe}` is where a statement can stop its removals from being
/// early.
const EVERYTHING: &str = r#"
import std;
sub vcl_recv {
    if (req.url ~ "^/pipe") {
        return (pipe);
    }
}
sub vcl_backend_response {
    set beresp.http.X-Url = bereq.url;
    if (bereq.url ~ "page") {
        set beresp.do_esi = true;
    }
}
sub vcl_deliver {
    {probe}
    unset resp.http.X-Url;
    unset resp.http.Server;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
    unset resp.http.Age;
    unset resp.http.Accept-Ranges;
    unset resp.http.Vary;
    unset resp.http.ETag;
    unset resp.http.Last-Modified;
    unset resp.http.Content-Type;
    unset resp.http.Content-Encoding;
    unset resp.http.Cache-Control;
    unset resp.http.Content-Range;
    unset resp.http.Content-Length;
    unset resp.http.X-Cache;
    set resp.http.Cache-Control = "private";
}
"#;

/// A request's fields.
type Fields = Vec<(&'static str, &'static str)>;

/// What a client can tell of an answer: status, fields (in name order;
/// `Date` is the clock's) and body, a multipart boundary (random) named
/// `BOUNDARY`.
fn seen_by_client(g: &Got) -> (u16, Vec<(String, String)>, String) {
    let body = String::from_utf8_lossy(&g.body).into_owned();
    let boundary = body
        .strip_prefix("--")
        .and_then(|rest| rest.split("\r\n").next())
        .filter(|b| !b.is_empty())
        .map(str::to_string);
    let unbound = |text: String| match &boundary {
        Some(b) => text.replace(b.as_str(), "BOUNDARY"),
        None => text,
    };
    let mut fields: Vec<(String, String)> = g
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() != "date")
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.to_string(), unbound(v))
        })
        .collect();
    fields.sort();
    (g.status, fields, unbound(body))
}

#[tokio::test]
async fn answers_are_those_of_the_whole_vcl_deliver() {
    let origin = Origin::start().await;
    let text = "lacquer ".repeat(400);
    let t = text.clone();
    origin.route("/t", move |_, _| {
        Reply::ok(t.clone())
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=600")
            .header("etag", "\"t1\"")
            .header("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT")
            .header("server", "app/1.0")
    });
    for (path, cc) in [
        ("/page", "max-age=600"),
        ("/nt-page", "max-age=600, no-transform"),
        ("/pipe-page", "max-age=600"),
    ] {
        origin.route(path, move |_, _| {
            Reply::ok("a<esi:include src=\"/frag\"/>c")
                .header("content-type", "text/html")
                .header("cache-control", cc)
                .header("server", "app/1.0")
        });
    }
    // The same bytes for both servers (one origin serves both).
    origin.route("/frag", |_, _| {
        Reply::ok("fragment")
            .header("content-type", "text/html")
            .header("cache-control", "max-age=600")
    });
    // Removals made early (left out of the answers) …
    let early = with_policy(origin.addr, &EVERYTHING.replace("{probe}", "")).await;
    // … and the same policy where a function call before them keeps every
    // statement running on the whole response.
    let probe = r#"set req.http.X-Probe = std.tolower("A");"#;
    let whole = with_policy(origin.addr, &EVERYTHING.replace("{probe}", probe)).await;
    let gzip = ("accept-encoding", "gzip");
    let requests: Vec<(&str, &str, Fields)> = vec![
        ("GET", "/t", vec![]),
        ("GET", "/t", vec![gzip]),
        ("HEAD", "/t", vec![]),
        ("GET", "/t", vec![("range", "bytes=0-1")]),
        ("GET", "/t", vec![("range", "bytes=0-1,4-5")]),
        ("GET", "/t", vec![("range", "bytes=0-1,4-5"), gzip]),
        ("GET", "/t", vec![("range", "bytes=5000-6000")]),
        ("GET", "/t", vec![("if-none-match", "\"t1\"")]),
        ("GET", "/t", vec![("if-none-match", "W/\"t1\""), gzip]),
        ("GET", "/page", vec![gzip]),
        ("GET", "/page", vec![]),
        ("HEAD", "/page", vec![gzip]),
        ("GET", "/nt-page", vec![gzip]),
        ("GET", "/pipe-page", vec![gzip]),
        ("GET", "/frag", vec![]),
    ];
    // Twice: misses (and first hits), then hits.
    for round in 0..2 {
        for (method, path, headers) in &requests {
            let a = send(early.addr(), method, path, headers, "").await;
            let b = send(whole.addr(), method, path, headers, "").await;
            assert_eq!(
                seen_by_client(&a),
                seen_by_client(&b),
                "round {round}: {method} {path} {headers:?}"
            );
        }
        wait_stored(&early, "/t").await;
        wait_stored(&whole, "/t").await;
    }
}
