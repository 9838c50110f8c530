//! Policy functions that act on the proxy: `ban()` / `std.ban()` on the ban
//! engine (a Magento-style tag ban from a PURGE handler), `std.log` into
//! the access log, and the connection variables (`server.ip`, `req.xid`).
use crate::common::*;
use crate::process::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Magento 2's generated VCL, reduced to its purge handler.
const MAGENTO: &str = r#"vcl 4.1;
import std;

acl purge {
    "127.0.0.1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "Method not allowed"));
        }
        if (!req.http.X-Magento-Tags-Pattern && !req.http.X-Pool) {
            return (synth(400, "X-Magento-Tags-Pattern or X-Pool header required"));
        }
        if (req.http.X-Magento-Tags-Pattern) {
            ban("obj.http.X-Magento-Tags ~ " + req.http.X-Magento-Tags-Pattern);
        }
        if (req.http.X-Pool) {
            ban("obj.http.X-Pool ~ " + req.http.X-Pool);
        }
        return (synth(200, "Purged"));
    }
}
"#;

#[tokio::test]
async fn a_magento_tag_ban_from_a_purge_handler_makes_tagged_pages_miss() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/p1", &[("x-magento-tags", "cat_p_1,cat_c_3")]);
    cacheable_with(&origin, "/p2", &[("x-magento-tags", "cat_p_2,cat_c_3")]);
    cacheable_with(&origin, "/p11", &[("x-magento-tags", "cat_p_11")]);
    let lq = with_policy(origin.addr, MAGENTO).await;
    let a = lq.addr();
    for p in ["/p1", "/p2", "/p11"] {
        let (first, second) = get_twice(&lq, p, &[]).await;
        assert_eq!(first.text(), format!("{p} v1"));
        assert!(is_hit(&second), "{p}: {:?}", second.headers);
    }
    let purged = send(
        a,
        "PURGE",
        "/",
        &[("x-magento-tags-pattern", "((^|,)cat_p_1(,|$))")],
        "",
    )
    .await;
    assert_eq!(purged.status, 200, "{}", purged.text());
    assert_eq!(lq.proxy.bans().len(), 1);
    // The tagged page is fetched again; the others (cat_p_11 included: the
    // pattern is anchored on commas) are still served from the cache.
    let again = get(a, "/p1").await;
    assert_eq!((again.x_cache(), again.text()), ("MISS", "/p1 v2".into()));
    assert_eq!(origin.hits("/p1"), 2);
    for p in ["/p2", "/p11"] {
        assert!(is_hit(&get(a, p).await), "{p} was banned");
        assert_eq!(origin.hits(p), 1);
    }
    // A ban on the shared category tag reaches both remaining pages.
    let purged = send(
        a,
        "PURGE",
        "/",
        &[("x-magento-tags-pattern", "((^|,)cat_c_3(,|$))")],
        "",
    )
    .await;
    assert_eq!(purged.status, 200);
    assert_eq!(get(a, "/p2").await.text(), "/p2 v2");
    assert!(is_hit(&get(a, "/p11").await));
    // Without a pattern: the policy's own 400.
    let refused = send(a, "PURGE", "/", &[], "").await;
    assert_eq!(refused.status, 400);
}

const STD_BAN: &str = r#"
sub vcl_recv {
    if (req.http.X-Ban-Expr) {
        if (std.ban(req.http.X-Ban-Expr)) {
            return (synth(200, "Ban added"));
        }
        set req.http.X-Error = std.ban_error();
        return (synth(400, "Bad ban"));
    }
}

sub vcl_synth {
    if (req.http.X-Error) {
        set resp.http.X-Ban-Error = req.http.X-Error;
    }
}
"#;

#[tokio::test]
async fn std_ban_reports_a_refused_expression_through_std_ban_error() {
    let origin = Origin::start().await;
    cacheable(&origin, "/a/1");
    cacheable(&origin, "/b/1");
    let lq = with_policy(origin.addr, STD_BAN).await;
    let a = lq.addr();
    get_twice(&lq, "/a/1", &[]).await;
    get_twice(&lq, "/b/1", &[]).await;
    let bad = get_with(a, "/", &[("x-ban-expr", "req.nope == 1")]).await;
    assert_eq!(bad.status, 400);
    let error = bad.header("x-ban-error").unwrap_or_default().to_string();
    assert!(error.starts_with("ban expression:"), "{error:?}");
    assert_eq!(lq.proxy.bans().len(), 0);
    let ok = get_with(a, "/", &[("x-ban-expr", "req.url ~ ^/a/")]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.headers);
    assert_eq!(ok.header("x-ban-error"), None);
    assert_eq!(get(a, "/a/1").await.text(), "/a/1 v2");
    assert!(is_hit(&get(a, "/b/1").await));
    // The ban list's limits apply as for the BAN method.
    let huge = format!("req.url ~ {}", "a".repeat(5000));
    let refused = get_with(a, "/", &[("x-ban-expr", &huge)]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.header("x-ban-error").is_some());
}

#[tokio::test]
async fn connection_variables_and_xids_reach_the_policy() {
    let origin = Origin::start().await;
    origin.route("/", |_, _| {
        Reply::ok("x").header("cache-control", "no-store")
    });
    let lq = with_policy(
        origin.addr,
        r#"sub vcl_deliver {
            set resp.http.X-Server = server.ip + " " + local.ip + " " + std.port(server.ip);
            set resp.http.X-Remote = remote.ip + " " + client.identity;
            set resp.http.X-Xid = req.xid;
            set resp.http.X-Now = std.integer(time = now) > 1700000000;
        }"#,
    )
    .await;
    let got = get(lq.addr(), "/").await;
    let port = lq.addr().port();
    assert_eq!(
        got.header("x-server"),
        Some(format!("127.0.0.1 127.0.0.1 {port}").as_str())
    );
    assert_eq!(got.header("x-remote"), Some("127.0.0.1 127.0.0.1"));
    assert_eq!(got.header("x-now"), Some("true"));
    let first: u64 = got.header("x-xid").unwrap().parse().unwrap();
    let second: u64 = get(lq.addr(), "/")
        .await
        .header("x-xid")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(first, second);
}

#[test]
fn std_log_messages_are_in_the_access_log_line() {
    let dir = scratch_dir("vcllog");
    let policy = dir.join("log.vcl");
    std::fs::write(
        &policy,
        "import std;\nsub vcl_recv {\n    std.log(\"recv \" + req.url);\n}\nsub vcl_deliver {\n    std.syslog(4, {\"said \"hi\"\"});\n}\n",
    )
    .unwrap();
    let conf = dir.join("log.toml");
    std::fs::write(&conf, "[server]\naccess_log = true\nthreads = 1\n").unwrap();
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-c",
            conf.to_str().unwrap(),
            "-f",
            policy.to_str().unwrap(),
            "-a",
            &listen,
            "-b",
            &counting_origin().0,
            "-T",
            &admin,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /page HTTP/1.1\r\nHost: log.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    assert!(read.is_ok(), "{read:?}");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(line.contains("\"GET /page HTTP/1.1\" 200 "), "{line}");
    assert!(
        line.trim_end()
            .ends_with(r#" vcl_log="recv /page; said \"hi\"""#),
        "{line}"
    );
}

/// An origin answering each of `paths` uncacheably with the path and the
/// count of its requests (`/orig v1`).
async fn origin_naming_paths(paths: &[&str]) -> Origin {
    let origin = Origin::start().await;
    for &p in paths {
        let body = p.to_string();
        origin.route(p, move |_, n| {
            Reply::ok(format!("{body} v{n}")).header("cache-control", "no-store")
        });
    }
    origin
}

#[tokio::test]
async fn std_rollback_restores_the_request_as_received() {
    let origin = origin_naming_paths(&["/orig", "/changed"]).await;
    let lq = with_policy(
        origin.addr,
        r#"import std;
        sub vcl_recv {
            set req.url = "/changed";
            set req.http.X-Added = "1";
            unset req.http.X-Keep;
            if (req.http.X-Undo) {
                std.rollback(req);
            }
            return (pass);
        }"#,
    )
    .await;
    let a = lq.addr();
    let undone = get_with(a, "/orig", &[("x-undo", "1"), ("x-keep", "k")]).await;
    assert_eq!(undone.text(), "/orig v1");
    let seen = origin.last("/orig").expect("the origin saw /orig");
    assert_eq!(seen.header_or_none("x-added"), "none");
    assert_eq!(seen.header_or_none("x-keep"), "k");
    let kept = get_with(a, "/orig", &[("x-keep", "k")]).await;
    assert_eq!(kept.text(), "/changed v1");
    let seen = origin.last("/changed").expect("the origin saw /changed");
    assert_eq!(seen.header_or_none("x-added"), "1");
    assert_eq!(seen.header_or_none("x-keep"), "none");
}

#[tokio::test]
async fn std_rollback_bereq_restores_the_backend_request_as_made() {
    let origin = origin_naming_paths(&["/orig", "/changed"]).await;
    let lq = with_policy(
        origin.addr,
        r#"import std;
        sub vcl_backend_fetch {
            set bereq.url = "/changed";
            set bereq.http.X-Added = "1";
            unset bereq.http.X-Keep;
            if (bereq.http.X-Undo) {
                std.rollback(bereq);
            }
        }"#,
    )
    .await;
    let a = lq.addr();
    let undone = get_with(a, "/orig", &[("x-undo", "1"), ("x-keep", "k")]).await;
    assert_eq!(undone.text(), "/orig v1");
    let seen = origin.last("/orig").expect("the origin saw /orig");
    assert_eq!(seen.header_or_none("x-added"), "none");
    assert_eq!(seen.header_or_none("x-keep"), "k");
    let kept = get_with(a, "/orig?b", &[("x-keep", "k")]).await;
    assert_eq!(kept.text(), "/changed v1");
    assert_eq!(
        origin.last("/changed").unwrap().header_or_none("x-added"),
        "1"
    );
}

#[tokio::test]
async fn a_ban_from_vcl_backend_response_is_added() {
    let origin = Origin::start().await;
    cacheable(&origin, "/old");
    origin.route("/trigger", |_, n| {
        Reply::ok(format!("trigger v{n}"))
            .header("cache-control", "no-store")
            .header("x-ban", "req.url ~ ^/old")
    });
    let lq = with_policy(
        origin.addr,
        r#"sub vcl_backend_response {
            if (beresp.http.X-Ban) {
                if (!std.ban(beresp.http.X-Ban)) {
                    set beresp.http.X-Ban-Error = std.ban_error();
                }
            }
        }"#,
    )
    .await;
    let a = lq.addr();
    let (_, hit) = get_twice(&lq, "/old", &[]).await;
    assert!(is_hit(&hit));
    let got = get(a, "/trigger").await;
    assert_eq!(got.header("x-ban-error"), None);
    assert_eq!(lq.proxy.bans().len(), 1);
    assert_eq!(get(a, "/old").await.text(), "/old v2");
}

/// `std.cache_req_body`: the body is read before vcl_recv, so a restart
/// sends it again (streamed, the restarted fetch would have none).
#[tokio::test]
async fn std_cache_req_body_lets_a_restart_send_the_body_again() {
    let origin = Origin::start().await;
    origin.route("/again", |seen, n| {
        let status = if n == 1 { 500 } else { 200 };
        Reply::new(status).body(format!("got {} bytes", seen.body_len))
    });
    let lq = with_policy(
        origin.addr,
        r#"import std;
        sub vcl_recv {
            if (std.cache_req_body(1KB)) {
                set req.http.X-Cached = "yes";
            } else {
                set req.http.X-Cached = "no";
            }
            return (pass);
        }
        sub vcl_deliver {
            if (resp.status == 500 && req.restarts == 0) {
                return (restart);
            }
            set resp.http.X-Restarts = req.restarts;
        }"#,
    )
    .await;
    let a = lq.addr();
    let got = send(a, "POST", "/again", &[], "hello, body").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "got 11 bytes");
    assert_eq!(got.header("x-restarts"), Some("1"));
    assert_eq!(
        origin.last("/again").unwrap().header_or_none("x-cached"),
        "yes"
    );
    // Over the size the policy asked for: not cached, says so.
    let big = "x".repeat(2000);
    send(a, "POST", "/again", &[], big).await;
    assert_eq!(
        origin.last("/again").unwrap().header_or_none("x-cached"),
        "no"
    );
}

/// Without `std.cache_req_body` a restart cannot send a streamed body
/// again: the request fails at once (it used to wait for the backend's
/// first-byte timeout, the backend waiting for bytes that never came).
#[tokio::test]
async fn a_restart_after_a_streamed_body_fails_at_once() {
    let origin = Origin::start().await;
    origin.route("/again", |seen, n| {
        let status = if n == 1 { 500 } else { 200 };
        Reply::new(status).body(format!("got {} bytes", seen.body_len))
    });
    let lq = with_policy(
        origin.addr,
        r#"sub vcl_recv {
            return (pass);
        }
        sub vcl_deliver {
            if (resp.status == 500 && req.restarts == 0) {
                return (restart);
            }
        }"#,
    )
    .await;
    let started = std::time::Instant::now();
    let got = send(lq.addr(), "POST", "/again", &[], "hello, body").await;
    assert_eq!(got.status, 503);
    assert_eq!(origin.hits("/again"), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A ban on `req.http.X-Forwarded-For` (from `std.ban` or the admin API,
/// so not in the policy's text) matches the client's chain, which holds
/// the client's address under a VCL as in Varnish.
#[tokio::test]
async fn a_ban_on_the_forwarded_chain_matches_the_client() {
    const BANNER: &str = r#"vcl 4.1;
import std;
sub vcl_recv {
    if (req.method == "BAN") {
        if (std.ban(req.http.x-ban)) { return (synth(200, "banned")); }
        return (synth(400, std.ban_error()));
    }
}
"#;
    let origin = Origin::start().await;
    cacheable(&origin, "/x");
    let lq = with_policy(origin.addr, BANNER).await;
    let a = lq.addr();
    get(a, "/x").await;
    wait_stored(&lq, "/x").await;
    assert!(is_hit(&get(a, "/x").await));
    let banned = ban(a, r#"req.http.x-forwarded-for == "127.0.0.1""#).await;
    assert_eq!(banned.status, 200, "{}", banned.text());
    assert!(
        !is_hit(&get(a, "/x").await),
        "the ban did not match this client"
    );
    assert_eq!(origin.hits("/x"), 2);
}
