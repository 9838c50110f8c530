//! Storage: a byte budget that holds, and objects over the size limit
//! delivered but not stored.
use crate::common::*;
use lacquer::config::ByteSize;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_budget_keeps_stored_bytes_within_it() {
    let origin = Origin::start().await;
    for i in 0..200 {
        origin.route(&format!("/obj/{i}"), |_, _| {
            Reply::ok(vec![b'o'; 10 << 10]).header("cache-control", "max-age=600")
        });
    }
    let mut config = config_for(origin.addr);
    config.cache.storage = ByteSize(1 << 20);
    config.cache.max_object_size = ByteSize(64 << 10);
    let lq = lacquer(config).await;
    for i in 0..200 {
        let got = get(lq.addr(), &format!("/obj/{i}")).await;
        assert_eq!(got.body.len(), 10 << 10);
        assert!(lq.proxy.store().stored_bytes() <= 1 << 20);
    }
    let stored = lq.proxy.store().stored_bytes();
    assert!(
        stored <= 1 << 20,
        "stored {stored} bytes over a 1 MiB budget"
    );
    assert!(
        stored >= 512 << 10,
        "only {stored} bytes stored: the budget is not used"
    );
    // Some objects are still hits.
    let mut hits = 0;
    for i in 0..200 {
        if get(lq.addr(), &format!("/obj/{i}"))
            .await
            .x_cache()
            .starts_with("HIT")
        {
            hits += 1;
        }
    }
    assert!(hits > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_the_size_limit_are_delivered_not_stored() {
    let origin = Origin::start().await;
    origin.route("/big-known", |_, _| {
        Reply::ok(vec![b'k'; 300 << 10]).header("cache-control", "max-age=600")
    });
    origin.route("/big-chunked", |_, _| {
        Reply::ok("").header("cache-control", "max-age=600").chunks(
            64 << 10,
            5,
            Duration::from_millis(1),
        )
    });
    origin.route("/small", |_, _| {
        Reply::ok(vec![b's'; 100 << 10]).header("cache-control", "max-age=600")
    });
    let mut config = config_for(origin.addr);
    config.cache.max_object_size = ByteSize(200 << 10);
    let lq = lacquer(config).await;
    for path in ["/big-known", "/big-chunked", "/small"] {
        for _ in 0..2 {
            let got = get(lq.addr(), path).await;
            assert_eq!(got.status, 200);
        }
    }
    assert_eq!(get(lq.addr(), "/big-known").await.body.len(), 300 << 10);
    assert_eq!(get(lq.addr(), "/big-chunked").await.body.len(), 320 << 10);
    assert_eq!(origin.hits("/big-known"), 3);
    assert_eq!(origin.hits("/big-chunked"), 3);
    assert_eq!(origin.hits("/small"), 1);
}
