//! The surrogate-key index holds only the keys of stored objects: a
//! replaced, dropped or evicted variant's keys leave with it, the index is
//! charged to `cache.storage`, and `cache.max_surrogate_keys` caps the keys
//! of one object.
use crate::common::*;

/// `/list` varies on `X-Variant`; fetch n carries `keys` keys of its own.
fn varying_list(origin: &Origin, keys: usize) {
    origin.route("/list", move |_, n| {
        let tags: Vec<String> = (0..keys).map(|j| format!("f{n}-k{j}")).collect();
        Reply::ok(format!("list #{n}"))
            .header("cache-control", "max-age=600")
            .header("vary", "x-variant")
            .header("surrogate-key", &tags.join(" "))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_dropped_variants_leave_the_index() {
    let origin = Origin::start().await;
    varying_list(&origin, 50);
    let lq = lacquer_with(&origin, |c| c.cache.max_variants = 4).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    for i in 0..100 {
        let v = format!("v{i}");
        let got = get_with(a, "/list", &[("x-variant", &v)]).await;
        assert_eq!(got.text(), format!("list #{}", i + 1));
    }
    assert_eq!(origin.hits("/list"), 100);
    // Four variants are kept, with 50 keys each.
    let indexed = admin_metric(admin, "lacquer_surrogate_keys")
        .await
        .expect("lacquer_surrogate_keys exposed");
    assert_eq!(
        indexed,
        4 * 50,
        "keys of dropped variants are still indexed"
    );
    // A kept variant's key purges it; a dropped one's finds nothing.
    let got = send(a, "PURGE", "/", &[("surrogate-key", "f100-k7")], "").await;
    assert_eq!((got.status, got.text().contains("1 object")), (200, true));
    let got = send(a, "PURGE", "/", &[("surrogate-key", "f3-k7")], "").await;
    assert_eq!(got.status, 404);
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys").await,
        Some(3 * 50)
    );
    // The purged variant is fetched again with new keys, and pushes the
    // oldest one (fetch 97) out.
    let got = get_with(a, "/list", &[("x-variant", "v99")]).await;
    assert_eq!(got.text(), "list #101");
    assert_eq!(origin.hits("/list"), 101);
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys").await,
        Some(4 * 50)
    );
    let got = get_with(a, "/list", &[("x-variant", "v0")]).await;
    assert_eq!(got.text(), "list #102");
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys").await,
        Some(4 * 50)
    );
    let got = send(a, "PURGE", "/", &[("surrogate-key", "f97-k0")], "").await;
    assert_eq!(got.status, 404, "{}", got.text());
    let got = send(a, "PURGE", "/", &[("surrogate-key", "f101-k0")], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys").await,
        Some(3 * 50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_charged_to_the_storage_budget() {
    let origin = Origin::start().await;
    let tags: Vec<String> = (0..1000).map(|j| format!("product-{j}")).collect();
    let tags = tags.join(" ");
    origin.route("/tagged", move |_, _| {
        Reply::ok("same body")
            .header("cache-control", "max-age=600")
            .header("surrogate-key", &tags)
    });
    origin.route("/plain", |_, _| {
        Reply::ok("same body").header("cache-control", "max-age=600")
    });
    let lq = lacquer_for(&origin).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    get(a, "/plain").await;
    wait_stored(&lq, "/plain").await;
    let plain = admin_metric(admin, "lacquer_stored_bytes")
        .await
        .unwrap_or(0);
    get(a, "/tagged").await;
    wait_stored(&lq, "/tagged").await;
    let both = admin_metric(admin, "lacquer_stored_bytes")
        .await
        .unwrap_or(0);
    let per_key = (both - 2 * plain) / 1000;
    assert!(
        per_key >= 150,
        "1000 keys charged {per_key} bytes each (the index holds ~300)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_objects_take_their_keys_and_the_budget_holds() {
    let origin = Origin::start().await;
    for i in 0..200 {
        origin.route(&format!("/obj/{i}"), move |_, _| {
            let tags: Vec<String> = (0..100).map(|j| format!("o{i}-k{j}")).collect();
            Reply::ok(vec![b'o'; 1024])
                .header("cache-control", "max-age=600")
                .header("surrogate-key", &tags.join(" "))
        });
    }
    let lq = lacquer_with(&origin, |c| {
        c.cache.storage = lacquer::config::ByteSize(1 << 20);
        c.cache.max_object_size = lacquer::config::ByteSize(64 << 10);
    })
    .await;
    for i in 0..200 {
        get(lq.addr(), &format!("/obj/{i}")).await;
    }
    let store = lq.proxy.store();
    assert!(store.stored_bytes() <= 1 << 20);
    let stored = store.entry_count() as usize;
    assert!(stored > 0 && stored < 200, "{stored} objects stored");
    assert_eq!(store.surrogate_keys(), stored * 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_beyond_max_surrogate_keys_are_ignored_and_counted() {
    let origin = Origin::start().await;
    origin.route("/many", |_, n| {
        let tags: Vec<String> = (0..30).map(|j| format!("m{j}")).collect();
        Reply::ok(format!("many #{n}"))
            .header("cache-control", "max-age=600")
            .header("surrogate-key", &tags.join(" "))
    });
    let lq = lacquer_with(&origin, |c| c.cache.max_surrogate_keys = 10).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    get(a, "/many").await;
    wait_stored(&lq, "/many").await;
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys").await,
        Some(10)
    );
    assert_eq!(
        admin_metric(admin, "lacquer_surrogate_keys_ignored_total").await,
        Some(20)
    );
    let got = send(a, "PURGE", "/", &[("surrogate-key", "m25")], "").await;
    assert_eq!(got.status, 404, "an ignored key purged: {}", got.text());
    assert!(is_hit(&get(a, "/many").await));
    let got = send(a, "PURGE", "/", &[("surrogate-key", "m9")], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(get(a, "/many").await.text(), "many #2");
}

/// The memory figure of the issue: one URL, a `Vary`ing header, 1000 keys
/// per response, 3000 fetches, in a process of its own:
/// `cargo test --release --test it surrogate_keys::memory_figure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints a memory figure; run by hand"]
async fn memory_figure_for_3000_variants_of_1000_keys() {
    if !in_own_process("surrogate_keys::memory_figure_for_3000_variants_of_1000_keys") {
        return;
    }
    let origin = Origin::start().await;
    let keys = std::env::var("FIGURE_KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1000);
    varying_list(&origin, keys);
    let lq = lacquer_for(&origin).await;
    let (a, admin) = (lq.addr(), lq.admin.expect("admin listener"));
    let before = rss_bytes();
    for i in 0..3000 {
        let v = format!("v{i}");
        get_with(a, "/list", &[("x-variant", &v)]).await;
        if i % 1000 == 999 {
            println!(
                "{} fetches x {keys} keys: {} keys indexed, {} bytes charged, RSS +{:.1} MiB",
                i + 1,
                admin_metric(admin, "lacquer_surrogate_keys")
                    .await
                    .unwrap_or(0),
                lq.proxy.store().stored_bytes(),
                (rss_bytes().saturating_sub(before)) as f64 / f64::from(1 << 20),
            );
        }
    }
}
