//! Expiration (RFC 9111 §3, §4.2, §4.4, RFC 9213): what is stored, for how
//! long, and what removes it — as a client and the origin see it.
use crate::common::*;

use lacquer::config::Seconds;
use std::time::Duration;

/// An origin routing `path` to a 200 with `headers` (see `route_with`), and
/// lacquer with default settings in front of it.
async fn serving(path: &str, headers: &[(&str, &str)]) -> (Origin, lacquer::server::Running) {
    let origin = Origin::start().await;
    route_with(&origin, path, 200, headers);
    let lq = lacquer_for(&origin).await;
    (origin, lq)
}

/// `serving` `path` with `headers`, then `assert_stored` without request headers.
async fn assert_stored_when_served(path: &str, headers: &[(&str, &str)]) {
    let (origin, lq) = serving(path, headers).await;
    assert_stored(&origin, &lq, path, &[]).await;
}

/// `serving` `path` with `headers`, then `assert_not_stored` without request
/// headers.
async fn assert_not_stored_when_served(path: &str, headers: &[(&str, &str)]) {
    let (origin, lq) = serving(path, headers).await;
    assert_not_stored(&origin, &lq, path, &[]).await;
}

/// GETs `path` (a miss, stored), lets `ms` milliseconds pass for lacquer
/// (the object ages; see `pass_time`) and returns a second GET.
async fn miss_then_after(
    origin: &Origin,
    lq: &lacquer::server::Running,
    path: &str,
    ms: u64,
) -> Got {
    let first = get(lq.addr(), path).await;
    assert_eq!(first.x_cache(), "MISS");
    wait_stored(lq, path).await;
    pass_time(lq, origin, Duration::from_millis(ms)).await;
    get(lq.addr(), path).await
}

/// Asserts that `path` is stored: fetched once, then a hit with the same body.
async fn assert_stored(
    origin: &Origin,
    lq: &lacquer::server::Running,
    path: &str,
    headers: &[(&str, &str)],
) {
    assert_eq!(origin.hits(path), 0, "{path}: fresh path");
    let (a, b) = get_twice(lq, path, headers).await;
    assert_eq!(a.x_cache(), "MISS", "{path}: first request");
    assert_eq!(
        origin.hits(path),
        1,
        "{path}: origin hits after two requests"
    );
    assert!(
        is_hit(&b),
        "{path}: second request should be a hit, got {:?}",
        b.x_cache()
    );
    assert_eq!(b.status, a.status, "{path}");
    assert_eq!(b.body, a.body, "{path}");
    assert!(b.header("age").is_some(), "{path}: a hit has Age");
}

/// Asserts that `path` is not stored: each request reaches the origin, the
/// client gets the origin's answer each time, and the store holds nothing
/// for it.
async fn assert_not_stored(
    origin: &Origin,
    lq: &lacquer::server::Running,
    path: &str,
    headers: &[(&str, &str)],
) {
    assert_eq!(origin.hits(path), 0, "{path}: fresh path");
    let (a, b) = get_unstored_twice(lq.addr(), path, headers).await;
    assert_eq!(stored(lq, path), 0, "{path}: in the store");
    assert_eq!(
        origin.hits(path),
        2,
        "{path}: origin hits after two requests"
    );
    assert!(!is_hit(&a), "{path}: first {:?}", a.x_cache());
    assert!(!is_hit(&b), "{path}: second {:?}", b.x_cache());
    assert_eq!(a.text(), format!("{path} #1"));
    assert_eq!(b.text(), format!("{path} #2"));
}

/// Asserts that two GETs of `path` both reach the origin: the object was
/// stored already stale (`why` explains the failure).
async fn assert_refetched(origin: &Origin, addr: std::net::SocketAddr, path: &str, why: &str) {
    let (a, b) = get_unstored_twice(addr, path, &[]).await;
    assert_eq!(a.text(), format!("{path} #1"));
    assert!(!is_hit(&b), "{why}: {:?}", b.x_cache());
    assert_eq!(b.text(), format!("{path} #2"));
    assert_eq!(origin.hits(path), 2, "{path}");
}

// ---------------------------------------------------------------- storable

#[tokio::test]
async fn get_200_with_max_age_is_stored() {
    let (origin, lq) = serving("/exp/store/200", &[("cache-control", "max-age=60")]).await;
    assert_stored(&origin, &lq, "/exp/store/200", &[]).await;
    let third = get(lq.addr(), "/exp/store/200").await;
    assert_eq!(third.x_cache(), "HIT 2");
    assert_eq!(third.text(), "/exp/store/200 #1");
    assert_eq!(origin.hits("/exp/store/200"), 1);
}

#[tokio::test]
async fn head_after_get_is_a_hit_without_body() {
    let origin = Origin::start().await;
    let path = "/exp/head/after-get";
    origin.route(path, |_, _| {
        Reply::ok("twelve bytes").header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let g = get(lq.addr(), path).await;
    assert_eq!(g.text(), "twelve bytes");
    wait_stored(&lq, path).await;
    let h = send(lq.addr(), "HEAD", path, &[], "").await;
    assert_eq!(h.status, 200);
    assert!(is_hit(&h), "HEAD after GET: {:?}", h.x_cache());
    assert!(h.body.is_empty(), "HEAD has no body: {:?}", h.body);
    assert_eq!(h.header("content-length"), Some("12"));
    assert!(h.header("age").is_some());
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn head_miss_fetches_get_and_stores_it() {
    let origin = Origin::start().await;
    let path = "/exp/head/miss";
    origin.route(path, |seen, n| {
        Reply::ok(format!("full body via {} #{n}", seen.method))
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let h = send(lq.addr(), "HEAD", path, &[], "").await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(origin.hits(path), 1);
    assert_eq!(
        origin.last(path).unwrap().method,
        http::Method::GET,
        "a HEAD miss is fetched with GET"
    );
    wait_stored(&lq, path).await;
    let g = get(lq.addr(), path).await;
    assert!(is_hit(&g), "GET after HEAD miss: {:?}", g.x_cache());
    assert_eq!(g.text(), "full body via GET #1");
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn post_is_passed_with_its_body() {
    let origin = Origin::start().await;
    let path = "/exp/post/pass";
    origin.route(path, |seen, n| {
        Reply::ok(format!("got {} bytes #{n}", seen.body_len)).header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    let a = send(lq.addr(), "POST", path, &[], "hello").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.x_cache(), "PASS");
    assert_eq!(a.text(), "got 5 bytes #1");
    let seen = origin.last(path).unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.body_len, 5);
    let b = send(lq.addr(), "POST", path, &[], "hello, again").await;
    assert_eq!(b.x_cache(), "PASS");
    assert_eq!(b.text(), "got 12 bytes #2");
    assert_eq!(origin.hits(path), 2);
}

// ---------------------------------------------------------------- not stored

#[tokio::test]
async fn no_store_is_not_stored() {
    assert_not_stored_when_served(
        "/exp/not/no-store",
        &[("cache-control", "no-store, max-age=60")],
    )
    .await;
}

#[tokio::test]
async fn private_is_not_stored() {
    assert_not_stored_when_served(
        "/exp/not/private",
        &[("cache-control", "private, max-age=60")],
    )
    .await;
}

#[tokio::test]
async fn vary_star_is_not_stored() {
    assert_not_stored_when_served(
        "/exp/not/vary-star",
        &[("cache-control", "max-age=60"), ("vary", "*")],
    )
    .await;
}

#[tokio::test]
async fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let origin = Origin::start().await;
    let auth = [("authorization", "Bearer secret")];
    for (path, cc) in [
        ("/exp/auth/plain", "max-age=60"),
        ("/exp/auth/public", "public, max-age=60"),
        ("/exp/auth/s-maxage", "s-maxage=60"),
        ("/exp/auth/must-revalidate", "max-age=60, must-revalidate"),
    ] {
        route_with(&origin, path, 200, &[("cache-control", cc)]);
    }
    let lq = lacquer_for(&origin).await;
    assert_not_stored(&origin, &lq, "/exp/auth/plain", &auth).await;
    assert_stored(&origin, &lq, "/exp/auth/public", &auth).await;
    assert_stored(&origin, &lq, "/exp/auth/s-maxage", &auth).await;
    assert_stored(&origin, &lq, "/exp/auth/must-revalidate", &auth).await;
    // Without Authorization the plain response is stored as usual.
    route_with(
        &origin,
        "/exp/auth/none",
        200,
        &[("cache-control", "max-age=60")],
    );
    assert_stored(&origin, &lq, "/exp/auth/none", &[]).await;
}

#[tokio::test]
async fn set_cookie_is_not_stored() {
    assert_not_stored_when_served(
        "/exp/not/set-cookie",
        &[
            ("cache-control", "max-age=60"),
            ("set-cookie", "session=abc"),
        ],
    )
    .await;
}

#[tokio::test]
async fn status_codes_500_404_302() {
    let origin = Origin::start().await;
    // A Last-Modified long ago would give heuristic freshness to a 200, not
    // to a 500 (not heuristically cacheable).
    let long_ago = http_date(-10 * 86400);
    route_with(
        &origin,
        "/exp/status/500",
        500,
        &[("last-modified", &long_ago)],
    );
    route_with(
        &origin,
        "/exp/status/404",
        404,
        &[("cache-control", "max-age=60")],
    );
    route_with(
        &origin,
        "/exp/status/302",
        302,
        &[("cache-control", "max-age=60"), ("location", "/elsewhere")],
    );
    let lq = lacquer_for(&origin).await;

    assert_not_stored(&origin, &lq, "/exp/status/500", &[]).await;
    let again = get(lq.addr(), "/exp/status/500").await;
    assert_eq!(again.status, 500);

    assert_stored(&origin, &lq, "/exp/status/404", &[]).await;
    let hit = get(lq.addr(), "/exp/status/404").await;
    assert_eq!(hit.status, 404);
    assert_eq!(hit.text(), "/exp/status/404 #1");

    assert_stored(&origin, &lq, "/exp/status/302", &[]).await;
    let hit = get(lq.addr(), "/exp/status/302").await;
    assert_eq!(hit.status, 302);
    assert_eq!(hit.header("location"), Some("/elsewhere"));
    assert_eq!(origin.hits("/exp/status/302"), 1);
}

#[tokio::test]
async fn no_freshness_and_no_last_modified_is_not_stored() {
    assert_not_stored_when_served("/exp/not/no-freshness", &[("content-type", "text/plain")]).await;
}

// ---------------------------------------------------------------- freshness

#[tokio::test]
async fn s_maxage_beats_max_age() {
    let origin = Origin::start().await;
    let path = "/exp/fresh/s-maxage";
    route_with(
        &origin,
        path,
        200,
        &[("cache-control", "max-age=1, s-maxage=60")],
    );
    let lq = lacquer_no_grace(&origin).await;
    let later = miss_then_after(&origin, &lq, path, 1500).await;
    assert!(
        is_hit(&later),
        "s-maxage=60 still fresh after 1.5 s: {:?}",
        later.x_cache()
    );
    assert_eq!(later.text(), format!("{path} #1"));
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn max_age_beats_expires() {
    let origin = Origin::start().await;
    // max-age=60 with an Expires in the past: fresh.
    let past = http_date(-3600);
    route_with(
        &origin,
        "/exp/fresh/max-age-over-past-expires",
        200,
        &[("cache-control", "max-age=60"), ("expires", &past)],
    );
    // max-age=1 with an Expires an hour ahead: stale after a second.
    let future = http_date(3600);
    route_with(
        &origin,
        "/exp/fresh/max-age-over-future-expires",
        200,
        &[("cache-control", "max-age=1"), ("expires", &future)],
    );
    let lq = lacquer_no_grace(&origin).await;
    assert_stored(&origin, &lq, "/exp/fresh/max-age-over-past-expires", &[]).await;

    let p = "/exp/fresh/max-age-over-future-expires";
    let later = miss_then_after(&origin, &lq, p, 1500).await;
    assert!(
        !is_hit(&later),
        "max-age=1 is stale after 1.5 s: {:?}",
        later.x_cache()
    );
    assert_eq!(later.text(), format!("{p} #2"));
    assert_eq!(origin.hits(p), 2);
}

#[tokio::test]
async fn expires_minus_date() {
    let origin = Origin::start().await;
    let ahead = http_date(60);
    route_with(&origin, "/exp/expires/ahead", 200, &[("expires", &ahead)]);
    let past = http_date(-60);
    route_with(&origin, "/exp/expires/past", 200, &[("expires", &past)]);
    route_with(&origin, "/exp/expires/invalid", 200, &[("expires", "0")]);
    let lq = lacquer_no_grace(&origin).await;
    assert_stored(&origin, &lq, "/exp/expires/ahead", &[]).await;
    for path in ["/exp/expires/past", "/exp/expires/invalid"] {
        let why = format!("{path}: already expired, got");
        assert_refetched(&origin, lq.addr(), path, &why).await;
    }
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let origin = Origin::start().await;
    let long_ago = http_date(-10 * 86400);
    route_with(
        &origin,
        "/exp/heuristic/old",
        200,
        &[("last-modified", &long_ago)],
    );
    // 10% of ~15 s: about 1.5 s of freshness.
    let recent = http_date(-15);
    route_with(
        &origin,
        "/exp/heuristic/recent",
        200,
        &[("last-modified", &recent)],
    );
    route_with(&origin, "/exp/heuristic/none", 200, &[]);
    let lq = lacquer_no_grace(&origin).await;
    assert_stored(&origin, &lq, "/exp/heuristic/old", &[]).await;
    assert_stored(&origin, &lq, "/exp/heuristic/recent", &[]).await;
    assert_not_stored(&origin, &lq, "/exp/heuristic/none", &[]).await;

    // 2.1 s outlive the recent one's heuristic lifetime (10% of 15 s), not
    // the old one's.
    pass_time(&lq, &origin, Duration::from_millis(2100)).await;
    let old = get(lq.addr(), "/exp/heuristic/old").await;
    assert!(
        is_hit(&old),
        "10-day-old Last-Modified: {:?}",
        old.x_cache()
    );
    assert_eq!(origin.hits("/exp/heuristic/old"), 1);
    let recent = get(lq.addr(), "/exp/heuristic/recent").await;
    assert!(
        !is_hit(&recent),
        "heuristic lifetime of ~1.5 s is over: {:?}",
        recent.x_cache()
    );
    assert_eq!(origin.hits("/exp/heuristic/recent"), 2);
}

#[tokio::test]
async fn default_ttl_stores_responses_without_freshness() {
    let origin = Origin::start().await;
    let path = "/exp/default-ttl";
    route_with(&origin, path, 200, &[]);
    let lq = lacquer_with(&origin, |c| {
        c.cache.default_ttl = Some(Seconds(Duration::from_secs(60)))
    })
    .await;
    assert_stored(&origin, &lq, path, &[]).await;
    // default_ttl does not override an explicit no-store.
    route_with(
        &origin,
        "/exp/default-ttl/no-store",
        200,
        &[("cache-control", "no-store")],
    );
    assert_not_stored(&origin, &lq, "/exp/default-ttl/no-store", &[]).await;
}

// ---------------------------------------------------------------- Age

#[tokio::test]
async fn age_grows_while_stored() {
    let path = "/exp/age/grows";
    let (origin, lq) = serving(path, &[("cache-control", "max-age=60")]).await;
    let hit = miss_then_after(&origin, &lq, path, 1100).await;
    assert!(is_hit(&hit));
    let age = age_of(&hit);
    assert!((1..60).contains(&age), "Age after 1.1 s: {age}");
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn origin_age_is_added() {
    let path = "/exp/age/origin-30";
    let (origin, lq) = serving(path, &[("cache-control", "max-age=60"), ("age", "30")]).await;
    let (a, b) = get_twice(&lq, path, &[]).await;
    assert!(age_of(&a) >= 30, "miss Age {}", age_of(&a));
    assert!(is_hit(&b), "{:?}", b.x_cache());
    let age = age_of(&b);
    assert!((30..60).contains(&age), "hit Age {age}");
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test]
async fn origin_age_beyond_max_age_is_stale() {
    let path = "/exp/age/already-stale";
    let (origin, lq) = serving(path, &[("cache-control", "max-age=10"), ("age", "20")]).await;
    assert_refetched(&origin, lq.addr(), path, "Age 20 > max-age 10").await;
}

// ---------------------------------------------------------------- Vary

#[tokio::test]
async fn vary_accept_encoding_keeps_variants_apart() {
    let origin = Origin::start().await;
    let path = "/exp/vary/ae";
    origin.route(path, |seen, n| {
        let ae = seen
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("encoded {ae} #{n}"))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Encoding")
    });
    // Plain RFC 9111 Vary: with compression support on (the default)
    // lacquer negotiates the coding itself and keeps one variant
    // (compression.rs).
    let lq = lacquer_with(&origin, |c| c.compression.enabled = false).await;
    let gzip = [("accept-encoding", "gzip")];
    let br = [("accept-encoding", "br")];

    let g1 = get_with(lq.addr(), path, &gzip).await;
    assert_eq!(g1.text(), "encoded gzip #1");
    wait_stored_n(&lq, path, 1).await;
    let b1 = get_with(lq.addr(), path, &br).await;
    assert_eq!(b1.text(), "encoded br #2");
    assert_eq!(b1.x_cache(), "MISS");
    wait_stored_n(&lq, path, 2).await;
    assert_eq!(origin.hits(path), 2);

    let g2 = get_with(lq.addr(), path, &gzip).await;
    assert!(is_hit(&g2), "gzip again: {:?}", g2.x_cache());
    assert_eq!(g2.text(), "encoded gzip #1");
    let b2 = get_with(lq.addr(), path, &br).await;
    assert!(is_hit(&b2), "br again: {:?}", b2.x_cache());
    assert_eq!(b2.text(), "encoded br #2");
    assert_eq!(origin.hits(path), 2);

    // No Accept-Encoding at all is a variant of its own.
    let n1 = get(lq.addr(), path).await;
    assert_eq!(n1.text(), "encoded none #3");
    assert_eq!(origin.hits(path), 3);
    wait_stored_n(&lq, path, 3).await;
    let n2 = get(lq.addr(), path).await;
    assert!(is_hit(&n2), "absent again: {:?}", n2.x_cache());
    assert_eq!(n2.text(), "encoded none #3");
    let g3 = get_with(lq.addr(), path, &gzip).await;
    assert_eq!(g3.text(), "encoded gzip #1");
    assert_eq!(origin.hits(path), 3);
}

// ---------------------------------------------------------------- §4.4 invalidation

#[tokio::test]
async fn successful_post_invalidates_the_url() {
    let origin = Origin::start().await;
    let path = "/exp/invalidate/post-ok";
    origin.route(path, |seen, n| {
        if seen.method == http::Method::POST {
            Reply::ok("posted")
        } else {
            Reply::ok(format!("page #{n}")).header("cache-control", "max-age=60")
        }
    });
    let lq = lacquer_for(&origin).await;
    let (a, b) = get_twice(&lq, path, &[]).await;
    assert_eq!(a.text(), "page #1");
    assert!(is_hit(&b));
    assert_eq!(origin.hits(path), 1);

    let post = send(lq.addr(), "POST", path, &[], "data").await;
    assert_eq!(post.status, 200);
    assert_eq!(post.text(), "posted");
    assert_eq!(origin.hits(path), 2);

    let after = get(lq.addr(), path).await;
    assert!(!is_hit(&after), "after POST: {:?}", after.x_cache());
    assert_eq!(after.text(), "page #3");
    assert_eq!(origin.hits(path), 3);
}

#[tokio::test]
async fn failed_post_does_not_invalidate() {
    let origin = Origin::start().await;
    let path = "/exp/invalidate/post-500";
    origin.route(path, |seen, n| {
        if seen.method == http::Method::POST {
            Reply::new(500).body("broken")
        } else {
            Reply::ok(format!("page #{n}")).header("cache-control", "max-age=60")
        }
    });
    let lq = lacquer_for(&origin).await;
    let first = get(lq.addr(), path).await;
    assert_eq!(first.text(), "page #1");
    wait_stored(&lq, path).await;
    let post = send(lq.addr(), "POST", path, &[], "data").await;
    assert_eq!(post.status, 500);
    assert_eq!(origin.hits(path), 2);
    let after = get(lq.addr(), path).await;
    assert!(is_hit(&after), "after failed POST: {:?}", after.x_cache());
    assert_eq!(after.text(), "page #1");
    assert_eq!(origin.hits(path), 2);
}

#[tokio::test]
async fn put_invalidates_its_location() {
    let origin = Origin::start().await;
    let target = "/exp/invalidate/put";
    let other = "/exp/invalidate/put-location";
    let untouched = "/exp/invalidate/put-untouched";
    origin.route(target, |seen, n| {
        if seen.method == http::Method::PUT {
            Reply::new(201)
                .header("location", "/exp/invalidate/put-location")
                .body("created")
        } else {
            Reply::ok(format!("target #{n}")).header("cache-control", "max-age=60")
        }
    });
    route_with(&origin, other, 200, &[("cache-control", "max-age=60")]);
    route_with(&origin, untouched, 200, &[("cache-control", "max-age=60")]);
    let lq = lacquer_for(&origin).await;
    assert_stored(&origin, &lq, other, &[]).await;
    assert_stored(&origin, &lq, untouched, &[]).await;
    let t = get(lq.addr(), target).await;
    assert_eq!(t.text(), "target #1");
    wait_stored(&lq, target).await;

    let put = send(lq.addr(), "PUT", target, &[], "new").await;
    assert_eq!(put.status, 201);
    assert_eq!(origin.hits(target), 2);

    let o = get(lq.addr(), other).await;
    assert!(!is_hit(&o), "Location URL after PUT: {:?}", o.x_cache());
    assert_eq!(o.text(), format!("{other} #2"));
    assert_eq!(origin.hits(other), 2);
    let t = get(lq.addr(), target).await;
    assert!(!is_hit(&t), "target after PUT: {:?}", t.x_cache());
    assert_eq!(origin.hits(target), 3);
    let u = get(lq.addr(), untouched).await;
    assert!(is_hit(&u), "unrelated URL: {:?}", u.x_cache());
    assert_eq!(origin.hits(untouched), 1);
}

// ---------------------------------------------------------------- RFC 9213

#[tokio::test]
async fn cdn_cache_control_overrides_cache_control() {
    assert_stored_when_served(
        "/exp/targeted/cdn-store",
        &[
            ("cdn-cache-control", "max-age=60"),
            ("cache-control", "no-store"),
        ],
    )
    .await;
}

#[tokio::test]
async fn lacquer_cache_control_no_store_overrides_cache_control() {
    assert_not_stored_when_served(
        "/exp/targeted/lacquer-no-store",
        &[
            ("lacquer-cache-control", "no-store"),
            ("cache-control", "max-age=60"),
        ],
    )
    .await;
}

#[tokio::test]
async fn lacquer_cache_control_beats_cdn_cache_control() {
    let origin = Origin::start().await;
    route_with(
        &origin,
        "/exp/targeted/lacquer-over-cdn-store",
        200,
        &[
            ("lacquer-cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
    );
    route_with(
        &origin,
        "/exp/targeted/lacquer-over-cdn-no-store",
        200,
        &[
            ("lacquer-cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("cache-control", "max-age=60"),
        ],
    );
    let lq = lacquer_for(&origin).await;
    assert_stored(&origin, &lq, "/exp/targeted/lacquer-over-cdn-store", &[]).await;
    assert_not_stored(&origin, &lq, "/exp/targeted/lacquer-over-cdn-no-store", &[]).await;
}

#[tokio::test]
async fn lacquer_cache_control_is_not_delivered_cdn_cache_control_is() {
    let origin = Origin::start().await;
    let stored = "/exp/targeted/strip-stored";
    route_with(
        &origin,
        stored,
        200,
        &[
            ("lacquer-cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=30"),
            ("cache-control", "max-age=5"),
        ],
    );
    let passed = "/exp/targeted/strip-passed";
    route_with(
        &origin,
        passed,
        200,
        &[
            ("lacquer-cache-control", "no-store"),
            ("cdn-cache-control", "max-age=30"),
            ("cache-control", "max-age=5"),
        ],
    );
    let lq = lacquer_for(&origin).await;
    let (miss, hit) = get_twice(&lq, stored, &[]).await;
    assert!(is_hit(&hit));
    assert_eq!(origin.hits(stored), 1);
    let (p1, p2) = get_unstored_twice(lq.addr(), passed, &[]).await;
    assert_eq!(origin.hits(passed), 2);
    for (what, g) in [
        ("miss", &miss),
        ("hit", &hit),
        ("uncached 1", &p1),
        ("uncached 2", &p2),
    ] {
        assert_eq!(g.header("lacquer-cache-control"), None, "{what}");
        // RFC 9213: CDN-Cache-Control is for every CDN cache, including
        // one in front of lacquer.
        assert_eq!(g.header("cdn-cache-control"), Some("max-age=30"), "{what}");
        assert_eq!(g.header("cache-control"), Some("max-age=5"), "{what}");
    }
}
