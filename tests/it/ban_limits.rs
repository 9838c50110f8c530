//! The ban list is bounded: bans in force are counted and charged (each
//! distinct compiled regex once), and a ban over `invalidation.max_bans` or
//! `invalidation.ban_memory` is refused with a clear 4xx.
use crate::common::*;
use std::time::Duration;

/// A request-dependent ban of 16 Unicode `\w{20}` conditions, distinct per
/// `i` (each compiles to about 1 MiB).
fn heavy_ban(i: usize) -> String {
    (0..16)
        .map(|j| format!(r#"req.http.x-c{j} ~ "^\w{{20}}-{i}-{j}$""#))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Request headers that every condition of `heavy_ban(i)` matches.
fn heavy_headers(i: usize) -> Vec<(String, String)> {
    (0..16)
        .map(|j| (format!("x-c{j}"), format!("{}-{i}-{j}", "a".repeat(20))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_regex_bans_stop_at_the_default_ban_memory() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let lq = lacquer_for(&origin).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    // A stored object keeps request-dependent bans in force.
    get(a, "/page").await;
    let mut statuses = Vec::new();
    let mut refusal = String::new();
    for i in 0..6 {
        let got = ban(a, &heavy_ban(i)).await;
        if got.status != 200 && refusal.is_empty() {
            refusal = got.text();
        }
        statuses.push(got.status);
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        accepted >= 1 && statuses[accepted..].iter().all(|s| *s == 429),
        "accepted bans, then 429 once 64 MiB are charged: {statuses:?}"
    );
    assert!(accepted < statuses.len(), "nothing refused: {statuses:?}");
    assert!(
        refusal.contains("ban list full") && refusal.contains("invalidation.ban_memory"),
        "{refusal}"
    );
    assert_eq!(lq.proxy.bans().len(), accepted);
    let charged = admin_metric(admin, "lacquer_ban_bytes")
        .await
        .expect("lacquer_ban_bytes exposed");
    assert!(charged <= 64 << 20, "{charged} bytes charged over 64 MiB");
    assert!(
        charged >= accepted as u64 * 16 * (1 << 20),
        "{charged} bytes for {accepted} bans of 16 ~1 MiB regexes"
    );
    // The bans in force still apply: a request matching the first one
    // misses.
    let headers = heavy_headers(0);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let got = get_with(a, "/page", &headers).await;
    assert_eq!((got.x_cache(), got.text().as_str()), ("MISS", "/page v2"));
    assert_eq!(origin.hits("/page"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bans_refuses_with_429_until_the_lurker_drops_bans() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let lq = lacquer_with(&origin, |c| {
        c.invalidation.max_bans = 3;
        c.invalidation.ban_lurker_sleep = lacquer::config::Seconds(Duration::from_millis(100));
    })
    .await;
    let a = lq.addr();
    get(a, "/page").await;
    // Request-dependent: the lurker cannot drop them.
    for i in 0..3 {
        let got = ban(a, &format!("req.http.x-user == u{i}")).await;
        assert_eq!(got.status, 200, "{}", got.text());
    }
    let got = ban(a, "req.http.x-user == u3").await;
    assert_eq!(got.status, 429, "{}", got.text());
    assert!(
        got.text()
            .contains("3 bans in force (invalidation.max_bans)"),
        "{}",
        got.text()
    );
    // An identical ban replaces the older one: the count does not grow.
    assert_eq!(ban(a, "req.http.x-user == u1").await.status, 200);
    assert_eq!(lq.proxy.bans().len(), 3);
    // Nothing stored was touched by the refused ban.
    let got = get_with(a, "/page", &[("x-user", "u3")]).await;
    assert!(is_hit(&got), "{:?}", got.x_cache());
    // Once the object has been looked up past every ban (here: purged), the
    // lurker drops them and bans are accepted again.
    assert_eq!(send(a, "PURGE", "/page", &[], "").await.status, 200);
    wait_until("the lurker drops the bans", async || {
        lq.proxy.bans().is_empty()
    })
    .await;
    assert_eq!(ban(a, "req.http.x-user == u3").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_regexes_are_compiled_and_charged_once() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let lq = lacquer_for(&origin).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    get(a, "/page").await;
    let bytes = || async { admin_metric(admin, "lacquer_ban_bytes").await.unwrap_or(0) };
    assert_eq!(
        ban(a, r#"req.http.x-a ~ "\w{20}" && req.url ~ "^/p""#)
            .await
            .status,
        200
    );
    let first = bytes().await;
    assert!(first > 1 << 20, "a Unicode \\w{{20}} charged {first} bytes");
    // Sixteen more uses of the same pattern, in another ban.
    let same = (0..16)
        .map(|j| format!(r#"req.http.x-{j} ~ "\w{{20}}""#))
        .collect::<Vec<_>>()
        .join(" && ");
    assert_eq!(ban(a, &same).await.status, 200);
    let second = bytes().await;
    assert!(
        second - first < 16 << 10,
        "the shared regex was charged again: {first} then {second}"
    );
    assert_eq!(lq.proxy.bans().regex_count(), 2);
    // The regex goes with the last ban using it.
    assert_eq!(send(a, "PURGE", "/page", &[], "").await.status, 200);
    wait_until("the lurker drops the bans", async || {
        lq.proxy.bans().is_empty()
    })
    .await;
    assert_eq!(lq.proxy.bans().regex_count(), 0);
    assert_eq!(bytes().await, 0);
}

#[tokio::test]
async fn a_ban_larger_than_the_whole_budget_gets_413() {
    let origin = Origin::start().await;
    let lq = lacquer_with(&origin, |c| {
        c.invalidation.ban_memory = lacquer::config::ByteSize(1 << 20);
    })
    .await;
    let got = ban(lq.addr(), r#"req.http.x ~ "\w{20}""#).await;
    assert_eq!(got.status, 413, "{}", got.text());
    assert!(
        got.text().contains("more than the whole ban budget"),
        "{}",
        got.text()
    );
    assert!(lq.proxy.bans().is_empty());
    // A cheap ban still fits.
    assert_eq!(ban(lq.addr(), "req.url ~ ^/a").await.status, 200);
}

/// The memory figure: 20 request-dependent bans of 16 distinct Unicode
/// regexes each, then lookups that evaluate them, in a process of its own:
/// `cargo test --release --test it ban_limits::memory_figure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints a memory figure; run by hand"]
async fn memory_figure_for_twenty_heavy_bans() {
    if !in_own_process("ban_limits::memory_figure_for_twenty_heavy_bans") {
        return;
    }
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let lq = lacquer_for(&origin).await;
    let a = lq.addr();
    get(a, "/page").await;
    let before = rss_bytes();
    let mut accepted = 0;
    for i in 0..20 {
        if ban(a, &heavy_ban(i)).await.status == 200 {
            accepted += 1;
        }
    }
    for i in 0..20 {
        let headers = heavy_headers(i);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        get_with(a, "/page", &headers).await;
    }
    let after = rss_bytes();
    println!(
        "20 heavy bans: {accepted} accepted, {} bans in force, charged {:.1} MiB, RSS +{:.1} MiB",
        lq.proxy.bans().len(),
        lq.proxy.bans().bytes() as f64 / f64::from(1 << 20),
        (after.saturating_sub(before)) as f64 / f64::from(1 << 20),
    );
}
