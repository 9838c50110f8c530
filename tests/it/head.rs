//! HEAD (RFC 9111 §4.3.5): answered from a stored GET; a HEAD that reaches
//! the origin (here: passed by the policy) updates the stored GET's headers
//! and freshness when it describes the same representation, never its body,
//! and invalidates it when it does not.
use crate::common::*;

const PASS_HEAD: &str = r#"
sub vcl_recv {
    if (req.method == "HEAD") { return (pass); }
}
"#;

/// `/h`: GETs answer `body` with ETag "a", max-age=60, X-Version: 1; HEADs
/// answer with `head_etag`, max-age=120, X-Version: 2.
fn route(origin: &Origin, head_etag: &'static str) {
    origin.route("/h", move |seen, _| {
        if seen.method == http::Method::HEAD {
            Reply::ok("")
                .header("etag", head_etag)
                .header("cache-control", "max-age=120")
                .header("x-version", "2")
        } else {
            Reply::ok("body")
                .header("etag", "\"a\"")
                .header("cache-control", "max-age=60")
                .header("x-version", "1")
        }
    });
}

#[tokio::test]
async fn a_head_is_answered_from_a_stored_get() {
    let origin = Origin::start().await;
    route(&origin, "\"a\"");
    let lq = lacquer_for(&origin).await;
    get(lq.addr(), "/h").await;
    wait_stored(&lq, "/h").await;
    let head = send(lq.addr(), "HEAD", "/h", &[], "").await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(is_hit(&head), "{}", head.x_cache());
    assert_eq!(head.header("x-version"), Some("1"));
    assert_eq!(origin.hits("/h"), 1);
}

#[tokio::test]
async fn a_passed_head_with_the_same_etag_updates_the_stored_headers() {
    let origin = Origin::start().await;
    route(&origin, "\"a\"");
    let lq = with_policy(origin.addr, PASS_HEAD).await;
    get(lq.addr(), "/h").await;
    wait_stored(&lq, "/h").await;
    let head = send(lq.addr(), "HEAD", "/h", &[], "").await;
    assert_eq!(head.header("x-version"), Some("2"), "the HEAD was passed");
    let got = get(lq.addr(), "/h").await;
    assert!(is_hit(&got), "{}", got.x_cache());
    assert_eq!(got.text(), "body", "the body is never updated");
    assert_eq!(got.header("x-version"), Some("2"));
    assert_eq!(got.header("cache-control"), Some("max-age=120"));
    assert_eq!(origin.hits("/h"), 2, "one GET, one HEAD");
    // The freshness came from the HEAD too: fresh past the GET's 60 s.
    pass_time(&lq, &origin, std::time::Duration::from_secs(90)).await;
    let later = get(lq.addr(), "/h").await;
    assert!(is_hit(&later), "{}", later.x_cache());
    assert_eq!(origin.hits("/h"), 2);
}

#[tokio::test]
async fn a_passed_head_with_another_etag_invalidates_the_stored_get() {
    let origin = Origin::start().await;
    route(&origin, "\"b\"");
    let lq = with_policy(origin.addr, PASS_HEAD).await;
    get(lq.addr(), "/h").await;
    wait_stored(&lq, "/h").await;
    send(lq.addr(), "HEAD", "/h", &[], "").await;
    let got = get(lq.addr(), "/h").await;
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(origin.hits("/h"), 3, "GET, HEAD, GET");
}
