//! How a response was served is counted from what the lifecycle decided,
//! not from the `X-Cache` header a policy may remove or rewrite.
use crate::common::*;

const UNSET_X_CACHE: &str = r#"
sub vcl_recv {
    if (req.url ~ "^/pass") { return (pass); }
}
sub vcl_deliver {
    unset resp.http.X-Cache;
    set resp.http.X-Served = "by lacquer";
}
"#;

#[tokio::test]
async fn outcomes_are_counted_when_the_policy_removes_x_cache() {
    let origin = Origin::start().await;
    origin.route("/page", |_, n| {
        Reply::ok(format!("page v{n}")).header("cache-control", "max-age=60")
    });
    origin.route("/pass", |_, n| Reply::ok(format!("pass v{n}")));
    let lq = with_policy(origin.addr, UNSET_X_CACHE).await;

    let miss = get(lq.addr(), "/page").await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), None, "the policy removed it");
    assert_eq!(miss.header("x-served"), Some("by lacquer"));
    // Ask until an answer is counted as a hit (the miss stores the object
    // as it streams, so the very next request may still miss).
    let hit = "lacquer_requests_total{outcome=\"hit\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut page_requests = 1;
    while metric(&lq, hit) == 0 && std::time::Instant::now() < deadline {
        assert_eq!(get(lq.addr(), "/page").await.text(), "page v1");
        page_requests += 1;
    }
    get(lq.addr(), "/pass").await;
    assert_eq!(origin.hits("/page"), 1);
    assert_eq!(origin.hits("/pass"), 1);

    let hits = metric(&lq, hit);
    let misses = metric(&lq, "lacquer_requests_total{outcome=\"miss\"}");
    assert!(hits >= 1, "no hit counted");
    assert!(misses >= 1, "no miss counted");
    assert_eq!(hits + misses, page_requests);
    assert_eq!(metric(&lq, "lacquer_requests_total{outcome=\"pass\"}"), 1);
    assert_eq!(metric(&lq, "lacquer_requests_total{outcome=\"synth\"}"), 0);
}
