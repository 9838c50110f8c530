//! BAN: expressions applied to every object stored before them, checked at
//! lookup and by the background lurker.
use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn a_url_ban_removes_what_matches_and_nothing_else() {
    let origin = Origin::start().await;
    for p in ["/a/1", "/a/2", "/b/1", "/ab"] {
        cacheable_with(&origin, p, &[("content-type", "text/html")]);
    }
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    for p in ["/a/1", "/a/2", "/b/1", "/ab"] {
        get(a, p).await;
    }
    let got = ban(a, r#"req.url ~ "^/a/""#).await;
    assert_eq!(got.status, 200, "{}", got.text());
    for p in ["/a/1", "/a/2"] {
        let got = get(a, p).await;
        assert_eq!((got.x_cache(), got.text()), ("MISS", format!("{p} v2")));
    }
    for p in ["/b/1", "/ab"] {
        assert!(
            get(a, p).await.x_cache().starts_with("HIT"),
            "{p} was banned"
        );
    }
    // Objects stored after the ban are not affected by it.
    assert!(get(a, "/a/1").await.x_cache().starts_with("HIT"));
}

#[tokio::test]
async fn bans_on_headers_status_and_host() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/img", &[("content-type", "image/png")]);
    cacheable_with(&origin, "/page", &[("content-type", "text/html")]);
    origin.route("/gone", |_, n| {
        Reply::new(404)
            .body(format!("gone {n}"))
            .header("cache-control", "max-age=600")
    });
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    for p in ["/img", "/page", "/gone"] {
        get(a, p).await;
    }
    get_with(a, "/page", &[("host", "shop.example")]).await;
    assert_eq!(
        ban(a, r#"obj.http.content-type ~ "^image/""#).await.status,
        200
    );
    assert_eq!(ban(a, "obj.status == 404").await.status, 200);
    assert_eq!(
        ban(
            a,
            r#"req.http.host == "shop.example" && req.url == "/page""#
        )
        .await
        .status,
        200
    );
    assert_eq!(get(a, "/img").await.x_cache(), "MISS");
    assert_eq!(get(a, "/gone").await.x_cache(), "MISS");
    assert_eq!(
        get_with(a, "/page", &[("host", "shop.example")])
            .await
            .x_cache(),
        "MISS"
    );
    assert!(get(a, "/page").await.x_cache().starts_with("HIT"));
}

#[tokio::test]
async fn the_lurker_removes_banned_objects_and_empties_the_list() {
    let origin = Origin::start().await;
    for i in 0..20 {
        cacheable_with(
            &origin,
            &format!("/l/{i}"),
            &[("content-type", "text/plain")],
        );
    }
    let mut config = config_for(origin.addr);
    config.invalidation.ban_lurker_sleep = lacquer::config::Seconds(Duration::from_millis(100));
    let lq = lacquer(config).await;
    let a = lq.addr();
    for i in 0..20 {
        get(a, &format!("/l/{i}")).await;
    }
    ban(a, r#"req.url ~ "^/l/1""#).await; // /l/1 and /l/10../l/19
    wait_until("the lurker's pass", async || lq.proxy.bans().is_empty()).await;
    assert_eq!(
        lq.proxy.store().entry_count(),
        9,
        "lurker did not remove the 11 banned objects"
    );
    assert_eq!(lq.proxy.bans().len(), 0, "ban list not pruned");
    // A ban that needs the request cannot be decided by the lurker: it stays.
    ban(a, r#"req.http.cookie ~ "x""#).await;
    // Nothing to wait for: three lurker periods pass, and the ban is there.
    sleep_ms(300).await;
    assert_eq!(lq.proxy.bans().len(), 1);
}

#[tokio::test]
async fn a_thousand_bans_keep_lookups_correct() {
    let origin = Origin::start().await;
    for i in 0..50 {
        cacheable_with(
            &origin,
            &format!("/many/{i}"),
            &[("content-type", "text/plain")],
        );
    }
    // The lurker stays asleep: lookups alone must apply the 1,000 bans.
    let mut config = config_for(origin.addr);
    config.invalidation.ban_lurker_sleep = lacquer::config::Seconds(Duration::from_secs(3600));
    let lq = lacquer(config).await;
    let a = lq.addr();
    for i in 0..50 {
        get(a, &format!("/many/{i}")).await;
    }
    // 1,000 bans, only the even objects match one.
    for i in 0..1000 {
        let target = if i % 20 == 0 {
            format!("/many/{}", i / 10)
        } else {
            format!("/nothing/{i}")
        };
        assert_eq!(
            ban(a, &format!("req.url == \"{target}\"")).await.status,
            200
        );
    }
    assert!(lq.proxy.bans().len() >= 900);
    for i in 0..50 {
        let got = get(a, &format!("/many/{i}")).await;
        let banned = i % 2 == 0;
        assert_eq!(
            got.x_cache() == "MISS",
            banned,
            "/many/{i}: {}",
            got.x_cache()
        );
    }
}

#[tokio::test]
async fn an_identical_newer_ban_supersedes_the_older() {
    let origin = Origin::start().await;
    let lq = lacquer_for(&origin).await;
    ban(lq.addr(), r#"req.url ~ "^/x""#).await;
    ban(lq.addr(), "req.url  ~  ^/x").await;
    assert_eq!(lq.proxy.bans().len(), 1);
}

#[tokio::test]
async fn bad_bans_are_refused_with_position_and_acl_applies() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/keep", &[("content-type", "text/plain")]);
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    get(a, "/keep").await;
    for (expr, expect) in [
        ("req.uri ~ x", "column 1"),
        ("req.url =~ x", "column 9"),
        (r#"req.url ~ "(""#, "regex"),
        (r#"req.url == "open"#, "unterminated"),
        ("", "empty"),
    ] {
        let got = ban(a, expr).await;
        assert_eq!(got.status, 400, "{expr}");
        assert!(got.text().contains(expect), "{expr}: {}", got.text());
    }
    let got = send(a, "BAN", "/", &[], "").await;
    assert_eq!(got.status, 400);
    assert_eq!(lq.proxy.bans().len(), 0);
    assert!(get(a, "/keep").await.x_cache().starts_with("HIT"));

    let mut config = config_for(origin.addr);
    config.invalidation.purge_acl =
        lacquer::invalidate::acl::Acl(vec!["10.0.0.0/8".parse().unwrap()]);
    let locked = lacquer(config).await;
    assert_eq!(ban(locked.addr(), "obj.status == 200").await.status, 405);
    assert_eq!(locked.proxy.bans().len(), 0);
}
