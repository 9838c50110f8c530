//! A VCL's backend declarations are lacquer's backends: they replace the
//! settings' (`-b`), the first is the default, and their probes run.
use crate::common::*;

#[tokio::test]
async fn requests_go_to_the_first_backend_the_policy_declares() {
    let settings_origin = Origin::start().await;
    let first = Origin::start().await;
    let second = Origin::start().await;
    for o in [&settings_origin, &first, &second] {
        cacheable(o, "/page");
    }
    let policy = format!(
        r#"
backend app {{ .host = "127.0.0.1"; .port = "{}"; }}
backend other {{ .host = "127.0.0.1"; .port = "{}"; }}
sub vcl_recv {{ return (pass); }}
"#,
        first.addr.port(),
        second.addr.port()
    );
    let lq = with_policy(settings_origin.addr, &policy).await;
    for _ in 0..4 {
        assert_eq!(get(lq.addr(), "/page").await.status, 200);
    }
    assert_eq!(
        first.hits("/page"),
        4,
        "the default backend: the first declared"
    );
    assert_eq!(second.hits("/page"), 0);
    assert_eq!(
        settings_origin.total(),
        0,
        "the settings' backend is replaced"
    );
    let names: Vec<String> = lq
        .proxy
        .director()
        .backends()
        .iter()
        .map(|b| b.name().to_string())
        .collect();
    assert_eq!(names, ["app", "other"]);
}

#[tokio::test]
async fn a_declared_probe_decides_health() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = up.clone();
    origin.route("/ping", move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::ok("pong")
        } else {
            Reply::new(503)
        }
    });
    let policy = format!(
        r#"
probe ping {{ .url = "/ping"; .interval = 50ms; .timeout = 1s; .window = 2; .threshold = 1; .initial = 0; }}
backend app {{ .host = "127.0.0.1"; .port = "{}"; .probe = ping; }}
sub vcl_recv {{ return (pass); }}
"#,
        origin.addr.port()
    );
    let lq = with_policy(origin.addr, &policy).await;
    let p = lq.proxy.clone();
    wait_until("the probe marks the backend sick", async || {
        origin.hits("/ping") >= 2 && !p.director().backends()[0].is_healthy()
    })
    .await;
    assert_eq!(get(lq.addr(), "/page").await.status, 503);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("the probe marks it healthy", async || {
        p.director().backends()[0].is_healthy()
    })
    .await;
    assert_eq!(get(lq.addr(), "/page").await.status, 200);
}

/// `std.healthy` reads the probes: a policy that answers from its own page
/// while the backend is sick (as grace policies do), and fetches once it is
/// back.
#[tokio::test]
async fn std_healthy_follows_the_probe() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = up.clone();
    origin.route("/ping", move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::ok("pong")
        } else {
            Reply::new(503)
        }
    });
    let policy = format!(
        r#"
import std;
probe ping {{ .url = "/ping"; .interval = 50ms; .timeout = 1s; .window = 2; .threshold = 1; .initial = 0; }}
backend app {{ .host = "127.0.0.1"; .port = "{}"; .probe = ping; }}
sub vcl_recv {{
    if (!std.healthy(app)) {{
        return (synth(503, "Down for maintenance"));
    }}
    return (pass);
}}
"#,
        origin.addr.port()
    );
    let lq = with_policy(origin.addr, &policy).await;
    let p = lq.proxy.clone();
    wait_until("the probe marks the backend sick", async || {
        origin.hits("/ping") >= 2 && !p.director().backends()[0].is_healthy()
    })
    .await;
    let down = get(lq.addr(), "/page").await;
    assert_eq!(down.status, 503);
    assert!(
        down.text().contains("Down for maintenance"),
        "{}",
        down.text()
    );
    assert_eq!(origin.hits("/page"), 0);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("the probe marks it healthy", async || {
        p.director().backends()[0].is_healthy()
    })
    .await;
    let back = get(lq.addr(), "/page").await;
    assert_eq!(back.status, 200);
    assert_eq!(origin.hits("/page"), 1);
}

#[tokio::test]
async fn std_healthy_in_a_backend_subroutine_reads_the_probe_too() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    origin.route("/ping", |_, _| Reply::new(503));
    let policy = format!(
        r#"
import std;
probe ping {{ .url = "/ping"; .interval = 50ms; .timeout = 1s; .window = 2; .threshold = 1; .initial = 0; }}
backend app {{ .host = "127.0.0.1"; .port = "{port}"; }}
backend spare {{ .host = "127.0.0.1"; .port = "{port}"; .probe = ping; }}
sub vcl_recv {{ return (pass); }}
sub vcl_backend_response {{
    set beresp.http.X-App = std.healthy(app);
    set beresp.http.X-Spare = std.healthy(spare);
}}
"#,
        port = origin.addr.port()
    );
    let lq = with_policy(origin.addr, &policy).await;
    let p = lq.proxy.clone();
    wait_until("the probe marks spare sick", async || {
        origin.hits("/ping") >= 2 && !p.director().backends()[1].is_healthy()
    })
    .await;
    let got = get(lq.addr(), "/page").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-app"), Some("true"));
    assert_eq!(got.header("x-spare"), Some("false"));
}
