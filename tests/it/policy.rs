//! vcl-lite policies in lacquer: vcl_recv and vcl_hash decide, a sub with
//! no return falls through to the built-in policy.
use crate::common::*;
use crate::process::scratch_dir;
use std::sync::Arc;

fn echoes_cookie(origin: &Origin, path: &str) {
    origin.route(path, |seen, n| {
        let cookie = seen.header_or_none("cookie");
        Reply::ok(format!("v{n} cookie={cookie}")).header("cache-control", "max-age=60")
    });
}

const POLICY: &str = r#"
vcl 4.1;

sub vcl_recv {
    if (req.http.x-maintenance == "on") {
        return (synth(503, "down for maintenance"));
    }
    if (req.url ~ "^/admin/") {
        return (pass);
    }
    if (req.url ~ "\.(css|png)$") {
        unset req.http.cookie;
    }
    set req.http.x-policy = "seen";
}

sub vcl_hash {
    hash_data(req.http.x-tenant);
}
"#;

#[tokio::test]
async fn recv_passes_strips_cookies_and_answers_synth() {
    let origin = Origin::start().await;
    for p in ["/admin/x", "/style.css", "/page"] {
        echoes_cookie(&origin, p);
    }
    let lq = with_policy(origin.addr, POLICY).await;
    let a = lq.addr();
    for _ in 0..2 {
        assert_eq!(get(a, "/admin/x").await.x_cache(), "PASS");
    }
    assert_eq!(origin.hits("/admin/x"), 2);
    let css = get_with(a, "/style.css", &[("cookie", "session=1")]).await;
    assert_eq!(css.text(), "v1 cookie=none");
    assert_eq!(
        origin.last("/style.css").unwrap().headers["x-policy"],
        "seen"
    );
    let down = get_with(a, "/page", &[("x-maintenance", "on")]).await;
    assert_eq!(down.status, 503);
    assert!(down.text().contains("down for maintenance"));
    assert_eq!(origin.hits("/page"), 0);
}

#[tokio::test]
async fn vcl_hash_adds_to_the_key() {
    let origin = Origin::start().await;
    echoes_cookie(&origin, "/t");
    let lq = with_policy(origin.addr, POLICY).await;
    let a = lq.addr();
    for tenant in ["a", "b", "a", "b"] {
        get_with(a, "/t", &[("x-tenant", tenant)]).await;
    }
    assert_eq!(origin.hits("/t"), 2, "one object per tenant");
}

#[tokio::test]
async fn the_default_policy_in_vcl_lite_behaves_as_the_builtin() {
    let origin = Origin::start().await;
    echoes_cookie(&origin, "/d");
    origin.route("/post", |_, _| Reply::ok("posted"));
    let lq = with_policy(origin.addr, vcl_lite::DEFAULT_POLICY).await;
    let a = lq.addr();
    assert_eq!(get(a, "/d").await.x_cache(), "MISS");
    assert!(get(a, "/d").await.x_cache().starts_with("HIT"));
    assert_eq!(send(a, "POST", "/post", &[], "x").await.x_cache(), "PASS");
    assert_eq!(send(a, "PURGE", "/d", &[], "").await.status, 200);
    assert_eq!(get(a, "/d").await.x_cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_policy_twenty_times_under_load_fails_no_request() {
    let origin = Origin::start().await;
    origin.route("/r", |seen, _| {
        let tag = seen.header_or_none("x-policy");
        Reply::ok(tag).header("cache-control", "no-store")
    });
    let dir = scratch_dir("reload");
    let file = dir.join("policy.vcl");
    let version =
        |n: usize| format!("sub vcl_recv {{\n    set req.http.x-policy = \"v{n}\";\n}}\n");
    std::fs::write(&file, version(0)).unwrap();
    let mut config = config_for(origin.addr);
    config.policy.file = Some(file.clone());
    let lq = lacquer(config).await;
    let (addr, admin) = (lq.addr(), lq.admin.unwrap());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let got = send(addr, "POST", "/r", &[], "").await;
                    if got.status == 200 && got.text().starts_with('v') {
                        ok += 1;
                    } else {
                        failed.push(format!("{} {}", got.status, got.text()));
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut last_valid = 0;
    for i in 1..=20 {
        let valid = i % 3 != 0;
        let text = if valid {
            version(i)
        } else {
            "sub vcl_recv {\n    set req.http.x-policy = ;\n}\n".to_string()
        };
        std::fs::write(&file, text).unwrap();
        let got = send(admin, "POST", "/reload", &[], "").await;
        if valid {
            assert_eq!(got.status, 200, "{}", got.text());
            last_valid = i;
        } else {
            assert_eq!(got.status, 400);
            assert!(got.text().contains("policy.vcl:2:"), "{}", got.text());
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut total = 0;
    for c in clients {
        let (ok, failed) = c.await.unwrap();
        assert!(
            failed.is_empty(),
            "failed requests during reloads: {failed:?}"
        );
        total += ok;
    }
    assert!(total > 40, "only {total} requests during the reloads");
    let got = send(addr, "POST", "/r", &[], "").await;
    assert_eq!(got.text(), format!("v{last_valid}"));
}

const TTL_POLICY: &str = r#"
sub vcl_backend_response {
    if (bereq.url ~ "^/static/") {
        set beresp.ttl = 1h;
    }
    if (bereq.url ~ "^/nocache/") {
        set beresp.uncacheable = true;
    }
    unset beresp.http.x-internal;
    if (bereq.url ~ "^/force/") {
        set beresp.uncacheable = false;
        set beresp.ttl = 60s;
        # Skips Varnish's built-in vcl_backend_response (Set-Cookie: hit-for-miss).
        return (deliver);
    }
}
"#;

#[tokio::test]
async fn backend_response_sets_ttls_and_storability_per_path() {
    let origin = Origin::start().await;
    origin.route("/static/app.js", |_, n| {
        Reply::ok(format!("js v{n}")).header("x-internal", "secret")
    });
    origin.route("/plain", |_, n| Reply::ok(format!("plain v{n}")));
    origin.route("/nocache/x", |_, n| {
        Reply::ok(format!("nc v{n}")).header("cache-control", "max-age=60")
    });
    origin.route("/force/x", |_, n| {
        Reply::ok(format!("f v{n}"))
            .header("cache-control", "max-age=60")
            .header("set-cookie", "a=b")
    });
    let lq = with_policy(origin.addr, TTL_POLICY).await;
    let a = lq.addr();
    for p in ["/static/app.js", "/plain", "/nocache/x", "/force/x"] {
        let first = get(a, p).await;
        assert!(
            first.header("x-internal").is_none(),
            "{p}: x-internal delivered"
        );
        get(a, p).await;
    }
    assert_eq!(
        origin.hits("/static/app.js"),
        1,
        "a TTL from the policy stores it"
    );
    assert_eq!(
        origin.hits("/plain"),
        2,
        "no freshness, no policy TTL: not stored"
    );
    assert_eq!(origin.hits("/nocache/x"), 2, "uncacheable by policy");
    assert_eq!(origin.hits("/force/x"), 1, "forced cacheable by policy");
    let hit = get(a, "/static/app.js").await;
    assert!(hit.x_cache().starts_with("HIT"));
    assert!(hit.header("x-internal").is_none());
}

#[tokio::test]
async fn the_static_cookies_example_caches_static_files_once_for_everyone() {
    let origin = Origin::start().await;
    origin.route("/site.css", |seen, n| {
        let cookie = seen.headers.contains_key("cookie");
        Reply::ok(format!("css v{n} cookie={cookie}"))
            .header("cache-control", "max-age=600")
            .header("set-cookie", "tracking=1")
    });
    let example = include_str!("../../vcl-lite/examples/static_cookies.vcl");
    let lq = with_policy(origin.addr, example).await;
    let a = lq.addr();
    let first = get_with(a, "/site.css", &[("cookie", "session=alice")]).await;
    assert_eq!(first.text(), "css v1 cookie=false");
    assert!(first.header("set-cookie").is_none());
    let other = get_with(a, "/site.css", &[("cookie", "session=bob")]).await;
    assert!(other.x_cache().starts_with("HIT"), "{}", other.x_cache());
    assert_eq!(origin.hits("/site.css"), 1);
}

#[tokio::test]
async fn the_per_path_ttl_example_stores_assets_and_passes_errors() {
    let origin = Origin::start().await;
    origin.route("/assets/app.1234.js", |_, n| Reply::ok(format!("js v{n}")));
    origin.route("/broken", |_, n| {
        Reply::new(500)
            .body(format!("err {n}"))
            .header("cache-control", "max-age=60")
    });
    let example = include_str!("../../vcl-lite/examples/per_path_ttl.vcl");
    let lq = with_policy(origin.addr, example).await;
    let a = lq.addr();
    for _ in 0..3 {
        get(a, "/assets/app.1234.js").await;
        get(a, "/broken").await;
    }
    assert_eq!(origin.hits("/assets/app.1234.js"), 1);
    assert_eq!(origin.hits("/broken"), 3, "5xx must not be stored");
}

/// Settings for `origin` as a file: `via` names this node, `extra` adds
/// keys to `[cache]`.
fn settings_text(origin: std::net::SocketAddr, listen: &str, via: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"{listen}\"]\nvia_name = \"{via}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [cache]\n{extra}\n\n\
         [[backend]]\naddress = \"{origin}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_settings_reports_restart_only_keys_and_refuses_bad_files() {
    let origin = Origin::start().await;
    origin.route("/slow", |_, n| {
        Reply::ok(format!("slow {n}")).delay(std::time::Duration::from_millis(400))
    });
    origin.route("/plain", |_, n| Reply::ok(format!("plain {n}")));
    let dir = scratch_dir("settings");
    let file = dir.join("lacquer.toml");
    std::fs::write(&file, settings_text(origin.addr, "127.0.0.1:0", "one", "")).unwrap();
    let config = lacquer::config::Config::from_file(&file).unwrap();
    let lq = lacquer(config).await;
    let source_file = file.clone();
    lq.proxy.set_settings_source(Box::new(move || {
        lacquer::config::Config::from_file(&source_file)
    }));
    let (addr, admin) = (lq.addr(), lq.admin.unwrap());
    assert_eq!(get(addr, "/plain").await.header("via"), Some("1.1 one"));

    // A request in flight finishes under the settings it started with.
    let in_flight = tokio::spawn(async move { get(addr, "/slow").await });
    wait_until("/slow at the origin", async || origin.hits("/slow") == 1).await;
    let default_ttl = "default_ttl = \"60s\"";
    std::fs::write(
        &file,
        settings_text(origin.addr, "127.0.0.1:1", "two", default_ttl),
    )
    .unwrap();
    let answer = send(admin, "POST", "/reload", &[], "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer.text().contains("settings reloaded"),
        "{}",
        answer.text()
    );
    assert!(
        answer.text().contains("needs restart") && answer.text().contains("server.listen"),
        "{}",
        answer.text()
    );
    assert_eq!(in_flight.await.unwrap().header("via"), Some("1.1 one"));
    let started: Vec<std::net::SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    assert_eq!(
        lq.proxy.config().server.listen,
        started,
        "start-up value kept"
    );

    // The new settings: Via, and a default TTL that now stores /plain.
    let fresh = get(addr, "/plain").await;
    assert_eq!(fresh.header("via"), Some("1.1 two"));
    wait_stored(&lq, "/plain").await;
    assert!(is_hit(&get(addr, "/plain").await), "default_ttl applied");

    // An invalid file is refused with its position; the settings stay.
    std::fs::write(&file, "[cache]\ngrace = \"soon\"\n").unwrap();
    let refused = send(admin, "POST", "/reload", &[], "").await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("lacquer.toml:2:"),
        "{}",
        refused.text()
    );
    assert_eq!(get(addr, "/plain").await.header("via"), Some("1.1 two"));
}

/// The commonest line of production policies, on a Host already in its
/// normal form (left as it is: lacquer skips the set) and on ones that are
/// not (capitals, a port): one object per host, and the backend sees the
/// Host the policy made.
#[tokio::test]
async fn a_policy_normalising_host_keys_by_the_host_it_made() {
    let origin = Origin::start().await;
    origin.route("/h", |seen, n| {
        let host = seen.header_or_none("host");
        Reply::ok(format!("v{n} host={host}")).header("cache-control", "max-age=60")
    });
    let policy = r#"vcl 4.1;
        import std;
        sub vcl_recv {
            set req.http.Host = regsub(std.tolower(req.http.Host), ":[0-9]+$", "");
        }
        sub vcl_deliver { set resp.http.X-Req-Host = req.http.Host; }
    "#;
    let lq = with_policy(origin.addr, policy).await;
    let a = lq.addr();
    let first = get_with(a, "/h", &[("host", "shop.example")]).await;
    assert_eq!(first.text(), "v1 host=shop.example");
    assert_eq!(first.header("x-req-host"), Some("shop.example"));
    for host in [
        "Shop.Example",
        "shop.example:8080",
        "SHOP.example:81",
        "shop.example",
    ] {
        let r = get_with(a, "/h", &[("host", host)]).await;
        assert_eq!(r.text(), "v1 host=shop.example", "Host: {host}");
        assert_eq!(r.header("x-req-host"), Some("shop.example"), "Host: {host}");
    }
    let other = get_with(a, "/h", &[("host", "Other.example:8080")]).await;
    assert_eq!(other.text(), "v2 host=other.example");
    assert_eq!(origin.hits("/h"), 2, "one object per host");
}

/// A policy reads the request's fields as they are at each hook, whatever
/// changed them since the last (its own `set` and `unset`, lacquer's
/// `Accept-Encoding` normalisation after `vcl_recv`): lacquer answers reads
/// of absent fields from a summary of the names present, which every
/// change must keep true.
#[tokio::test]
async fn policy_reads_see_every_change_to_the_fields() {
    let origin = Origin::start().await;
    origin.route("/f", |seen, n| {
        let ae = seen.header_or_none("accept-encoding");
        let c = seen.header_or_none("x-c");
        let b = seen.header_or_none("x-b");
        Reply::ok(format!("v{n} ae={ae} c={c} b={b}")).header("cache-control", "max-age=60")
    });
    let policy = r#"vcl 4.1;
        sub vcl_recv {
            if (req.http.X-A) { set req.http.X-Seen = "a:" + req.http.X-A; }
            if (!req.http.X-B) { set req.http.X-Was-Absent = "b"; }
            unset req.http.X-B;
            set req.http.X-C = "c";
            return (hash);
        }
        sub vcl_hash {
            hash_data(req.url);
            hash_data(req.http.Accept-Encoding);
            hash_data(req.http.X-C);
            hash_data(req.http.X-B);
            return (lookup);
        }
        sub vcl_deliver {
            set resp.http.X-AE = req.http.Accept-Encoding;
            set resp.http.X-Seen = req.http.X-Seen;
            set resp.http.X-Was-Absent = req.http.X-Was-Absent;
            set resp.http.X-C = req.http.X-C;
            set resp.http.X-B-Left = req.http.X-B;
        }
    "#;
    let lq = with_policy(origin.addr, policy).await;
    let a = lq.addr();
    let plain = get_with(a, "/f", &[("x-b", "1")]).await;
    assert_eq!(plain.text(), "v1 ae=gzip c=c b=none");
    assert_eq!(plain.header("x-ae"), Some(""), "unset reads as empty");
    assert_eq!(plain.header("x-seen"), Some(""), "unset reads as empty");
    assert_eq!(
        plain.header("x-was-absent"),
        Some(""),
        "unset reads as empty"
    );
    assert_eq!(plain.header("x-c"), Some("c"));
    assert_eq!(plain.header("x-b-left"), Some(""), "unset reads as empty");
    let gzip = get_with(
        a,
        "/f",
        &[("accept-encoding", "br;q=0, gzip"), ("x-a", "yes")],
    )
    .await;
    assert_eq!(gzip.header("x-ae"), Some("gzip"));
    assert_eq!(gzip.header("x-seen"), Some("a:yes"));
    assert_eq!(gzip.header("x-was-absent"), Some("b"));
    assert_eq!(gzip.header("x-c"), Some("c"));
    assert_eq!(
        origin.hits("/f"),
        2,
        "keyed by the normalised Accept-Encoding"
    );
    let again = get_with(a, "/f", &[("accept-encoding", "gzip;q=1")]).await;
    assert_eq!(again.header("x-ae"), Some("gzip"));
    assert_eq!(
        origin.hits("/f"),
        2,
        "same normalised Accept-Encoding: a hit"
    );
}

/// The policy's changes to the request's fields are kept beside them until
/// a whole set is needed: the backend request must carry every change, in
/// the order a header map would hold them, and the readers of a hit
/// (`Range`, conditionals) must see them as well.
#[tokio::test]
async fn the_policys_field_changes_reach_the_backend_and_the_readers_of_a_hit() {
    let origin = Origin::start().await;
    origin.route("/order", |seen, n| {
        let names: Vec<String> = seen
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-") || k.as_str() == "cookie")
            .filter(|(k, _)| k.as_str() != "x-forwarded-for")
            .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
            .collect();
        Reply::ok(format!("{n}: {}", names.join(" ")))
    });
    origin.route("/doc", |_, n| {
        Reply::ok(format!("document {n:03}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"d1\"")
    });
    let policy = r#"vcl 4.1;
        sub vcl_recv {
            if (req.url == "/order") {
                set req.http.X-New = "n";
                set req.http.Cookie = "only=1";
                unset req.http.X-Gone;
                unset req.http.X-Moved;
                set req.http.X-Later = "l";
                set req.http.X-Moved = "m2";
                set req.http.X-Kept = "k2";
                return (pass);
            }
            if (req.http.X-Want-Range) {
                set req.http.Range = "bytes=0-7";
            }
            if (req.http.X-No-Range) {
                unset req.http.Range;
            }
            if (req.http.X-Revalidate) {
                set req.http.If-None-Match = {""d1""};
            }
            return (hash);
        }
    "#;
    let lq = with_policy(origin.addr, policy).await;
    let a = lq.addr();
    let got = get_with(
        a,
        "/order",
        &[
            ("x-kept", "k1"),
            ("cookie", "a=1"),
            ("x-gone", "g"),
            ("cookie", "b=2"),
            ("x-moved", "m1"),
            ("x-last", "z"),
        ],
    )
    .await;
    assert_eq!(
        got.text(),
        "1: x-kept=k2 cookie=only=1 x-last=z x-new=n x-later=l x-moved=m2"
    );

    // Fill, then hits whose answer depends on what the policy set.
    assert_eq!(get(a, "/doc").await.text(), "document 001");
    let part = get_with(a, "/doc", &[("x-want-range", "1")]).await;
    assert_eq!((part.status, part.text().as_str()), (206, "document"));
    let whole = get_with(a, "/doc", &[("range", "bytes=0-1"), ("x-no-range", "1")]).await;
    assert_eq!((whole.status, whole.text().as_str()), (200, "document 001"));
    let not_modified = get_with(a, "/doc", &[("x-revalidate", "1")]).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(origin.hits("/doc"), 1);
}
