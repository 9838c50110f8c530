//! The basic promise: a cacheable page is fetched once and then served from
//! the cache.
use crate::common::*;

#[tokio::test]
async fn second_request_is_a_hit() {
    let origin = Origin::start().await;
    origin.route("/a", |_, n| {
        Reply::ok(format!("body {n}")).header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let first = get(lq.addr(), "/a").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "body 1");
    assert_eq!(first.x_cache(), "MISS");
    let second = get(lq.addr(), "/a").await;
    assert_eq!(second.text(), "body 1");
    assert_eq!(second.x_cache(), "HIT 1");
    assert!(second.header("age").is_some());
    assert_eq!(origin.hits("/a"), 1);
}
