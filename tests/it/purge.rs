//! PURGE from application code: by URL (every variant, host-aware), by
//! surrogate key, hard or soft, only from the purge ACL.
use crate::common::*;
use std::time::Duration;

async fn purge(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    send(addr, "PURGE", path, headers, "").await
}

#[tokio::test]
async fn purge_removes_every_variant_of_the_url_and_only_that_host() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/p", &[("vary", "accept-language")]);
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    for lang in ["en", "fr"] {
        get_with(a, "/p", &[("accept-language", lang)]).await;
    }
    get_with(a, "/p", &[("host", "other.example")]).await;
    assert_eq!(origin.hits("/p"), 3);
    let got = purge(a, "/p", &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.text().contains("purged 2 objects"), "{}", got.text());
    for lang in ["en", "fr"] {
        let got = get_with(a, "/p", &[("accept-language", lang)]).await;
        assert_eq!(got.x_cache(), "MISS");
    }
    let other = get_with(a, "/p", &[("host", "other.example")]).await;
    assert!(
        other.x_cache().starts_with("HIT"),
        "other host's object was purged"
    );
    assert_eq!(origin.hits("/p"), 5);
    let none = purge(a, "/nothing-here", &[]).await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn clients_outside_the_acl_get_405_and_nothing_changes() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/acl", &[("vary", "accept-language")]);
    let mut config = config_for(origin.addr);
    config.invalidation.purge_acl =
        lacquer::invalidate::acl::Acl(vec!["10.0.0.0/8".parse().unwrap()]);
    let lq = lacquer(config).await;
    get(lq.addr(), "/acl").await;
    let got = purge(lq.addr(), "/acl", &[]).await;
    assert_eq!(got.status, 405);
    assert!(got.text().contains("not allowed"));
    let got = purge(lq.addr(), "/acl", &[("surrogate-key", "anything")]).await;
    assert_eq!(got.status, 405);
    assert!(get(lq.addr(), "/acl").await.x_cache().starts_with("HIT"));
    assert_eq!(origin.hits("/acl"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_purged_object_is_delivered_stale_once_and_refreshed() {
    let origin = Origin::start().await;
    origin.route("/soft", |_, n| {
        Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(if n > 1 { 200 } else { 0 }))
    });
    let lq = lacquer_grace(&origin, 10).await; // soft purges: stale for grace
    let a = lq.addr();
    assert_eq!(get(a, "/soft").await.text(), "v1");
    let got = purge(a, "/soft", &[("x-purge", "soft")]).await;
    assert!(
        got.text().contains("soft-purged 1 object"),
        "{}",
        got.text()
    );
    let stale = get(a, "/soft").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "v1"));
    wait_fresh(&lq, "/soft").await;
    let fresh = get(a, "/soft").await;
    assert_eq!(
        (fresh.text().as_str(), &fresh.x_cache()[..3]),
        ("v2", "HIT")
    );
    assert_eq!(origin.hits("/soft"), 2);
}

#[tokio::test]
async fn surrogate_keys_purge_every_tagged_object_and_are_not_delivered() {
    let origin = Origin::start().await;
    for (path, header, keys) in [
        ("/k1", "surrogate-key", "product-1 category-a"),
        ("/k2", "surrogate-key", "category-a"),
        ("/k3", "xkey", "category-b"),
        ("/k4", "surrogate-key", "product-4"),
    ] {
        origin.route(path, move |_, n| {
            Reply::ok(format!("v{n}"))
                .header("cache-control", "max-age=600")
                .header(header, keys)
        });
    }
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    for p in ["/k1", "/k2", "/k3", "/k4"] {
        let miss = get(a, p).await;
        assert!(miss.header("surrogate-key").is_none() && miss.header("xkey").is_none());
        let hit = get(a, p).await;
        assert!(hit.x_cache().starts_with("HIT"));
        assert!(hit.header("surrogate-key").is_none() && hit.header("xkey").is_none());
    }
    let got = purge(a, "/", &[("surrogate-key", "category-a category-b")]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.text().contains("purged 3 objects"), "{}", got.text());
    for p in ["/k1", "/k2", "/k3"] {
        assert_eq!(get(a, p).await.x_cache(), "MISS", "{p} was not purged");
    }
    assert!(get(a, "/k4").await.x_cache().starts_with("HIT"));
    let none = purge(a, "/", &[("surrogate-key", "no-such-key")]).await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn a_soft_key_purge_keeps_objects_for_grace() {
    let origin = Origin::start().await;
    origin.route("/sk", |_, n| {
        Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=600")
            .header("surrogate-key", "t")
    });
    let lq = lacquer_grace(&origin, 10).await; // soft purges: stale for grace
    get(lq.addr(), "/sk").await;
    let got = purge(
        lq.addr(),
        "/",
        &[("surrogate-key", "t"), ("x-purge", "soft")],
    )
    .await;
    assert!(
        got.text().contains("soft-purged 1 object"),
        "{}",
        got.text()
    );
    let stale = get(lq.addr(), "/sk").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "v1"));
}

#[tokio::test]
async fn too_many_keys_are_refused() {
    let origin = Origin::start().await;
    let lq = lacquer_for(&origin).await;
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let got = purge(lq.addr(), "/", &[("surrogate-key", &keys.join(" "))]).await;
    assert_eq!(got.status, 400);
    assert!(got.text().contains("at most 256"), "{}", got.text());
    let got = purge(lq.addr(), "/", &[("surrogate-key", "  ")]).await;
    assert_eq!(got.status, 400);
}
