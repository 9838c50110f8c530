//! vmod directors in a policy: `new X = directors.KIND();` in vcl_init,
//! `req.backend_hint` / `bereq.backend` choosing the backend, with two (or
//! three) real origins and their probes.
use crate::common::*;

/// A probe that reads `/ping` quickly: sick after one failure, healthy
/// after one success.
const PROBE: &str = r#"probe ping { .url = "/ping"; .interval = 50ms; .timeout = 1s; .window = 2; .threshold = 1; .initial = 1; }"#;

fn backend(name: &str, o: &Origin, probe: bool) -> String {
    let probe = if probe { " .probe = ping;" } else { "" };
    format!(
        "backend {name} {{ .host = \"127.0.0.1\"; .port = \"{}\";{probe} }}\n",
        o.addr.port()
    )
}

/// `path` answered by `o` with `who` as its body, never stored; `/ping`
/// answers 200.
fn serve(o: &Origin, path: &str, who: &'static str) {
    o.route(path, move |_, _| {
        Reply::ok(who).header("cache-control", "no-store")
    });
    o.route("/ping", |_, _| Reply::ok("pong"));
}

#[tokio::test]
async fn round_robin_alternates_between_two_origins() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    serve(&a, "/rr", "a");
    serve(&b, "/rr", "b");
    let policy = format!(
        r#"vcl 4.1;
import directors;
{}{}
sub vcl_init {{
    new rr = directors.round_robin();
    rr.add_backend(a);
    rr.add_backend(b);
}}
sub vcl_recv {{
    set req.backend_hint = rr.backend();
    return (pass);
}}
sub vcl_backend_response {{
    set beresp.http.X-Director = bereq.backend;
    set beresp.http.X-Backend = beresp.backend.name;
}}
"#,
        backend("a", &a, false),
        backend("b", &b, false)
    );
    let lq = with_policy(a.addr, &policy).await;
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let got = get(lq.addr(), "/rr").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-director"), Some("rr"));
        assert_eq!(got.header("x-backend"), Some(got.text().as_str()));
        bodies.push(got.text());
    }
    assert_eq!((a.hits("/rr"), b.hits("/rr")), (5, 5), "{bodies:?}");
    assert!(
        bodies.windows(2).all(|w| w[0] != w[1]),
        "in turn: {bodies:?}"
    );
}

#[tokio::test]
async fn fallback_moves_to_the_second_while_the_first_is_down_and_back() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    serve(&a, "/page", "a");
    serve(&b, "/page", "b");
    let a_addr = a.addr;
    let policy = format!(
        r#"vcl 4.1;
import directors;
import std;
{PROBE}
{}{}
sub vcl_init {{
    new fb = directors.fallback();
    fb.add_backend(a);
    fb.add_backend(b);
}}
sub vcl_recv {{
    set req.backend_hint = fb.backend();
    set req.http.X-A-Healthy = std.healthy(a);
    set req.http.X-Fb-Healthy = std.healthy(req.backend_hint);
    return (pass);
}}
sub vcl_deliver {{
    set resp.http.X-A-Healthy = req.http.X-A-Healthy;
    set resp.http.X-Fb-Healthy = req.http.X-Fb-Healthy;
}}
"#,
        backend("a", &a, true),
        backend("b", &b, true)
    );
    let lq = with_policy(a.addr, &policy).await;
    let p = lq.proxy.clone();
    let first = get(lq.addr(), "/page").await;
    assert_eq!((first.status, first.text().as_str()), (200, "a"));
    assert_eq!(first.header("x-a-healthy"), Some("true"));

    // The first origin goes away: its probe fails, the fallback moves on.
    a.stop();
    drop(a);
    wait_until("the probe marks a sick", async || {
        !p.director().backends()[0].is_healthy()
    })
    .await;
    for _ in 0..3 {
        let got = get(lq.addr(), "/page").await;
        assert_eq!((got.status, got.text().as_str()), (200, "b"));
        assert_eq!(got.header("x-a-healthy"), Some("false"));
        assert_eq!(got.header("x-fb-healthy"), Some("true"));
    }
    assert_eq!(b.hits("/page"), 3);

    // It comes back on the same port: requests go to it again.
    let a = Origin::start_on(a_addr).await;
    serve(&a, "/page", "a");
    wait_until("the probe marks a healthy", async || {
        p.director().backends()[0].is_healthy()
    })
    .await;
    let back = get(lq.addr(), "/page").await;
    assert_eq!((back.status, back.text().as_str()), (200, "a"));
    assert_eq!((a.hits("/page"), b.hits("/page")), (1, 3));

    // Both down: the director has nothing, the fetch fails.
    a.stop();
    b.stop();
    wait_until("both sick", async || {
        p.director().backends().iter().all(|x| !x.is_healthy())
    })
    .await;
    let none = get(lq.addr(), "/page").await;
    assert_eq!(none.status, 503);
    assert_eq!(none.header("x-fb-healthy"), Some("false"));
}

#[tokio::test]
async fn shard_and_hash_keep_a_url_on_one_backend() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    let paths: Vec<String> = ["s", "u", "h"]
        .iter()
        .flat_map(|k| (0..16).map(move |i| format!("/{k}/{i}")))
        .collect();
    for p in &paths {
        serve(&a, p, "a");
        serve(&b, p, "b");
    }
    let policy = format!(
        r#"vcl 4.1;
import directors;
{}{}
sub vcl_init {{
    new s = directors.shard();
    s.add_backend(a);
    s.add_backend(b);
    s.reconfigure();
    new h = directors.hash();
    h.add_backend(a, 1);
    h.add_backend(b, 1);
}}
sub vcl_recv {{
    if (req.url ~ "^/s/") {{
        set req.backend_hint = s.backend();
    }} elsif (req.url ~ "^/u/") {{
        set req.backend_hint = s.backend(by = URL);
    }} else {{
        set req.backend_hint = h.backend(req.url);
    }}
    return (pass);
}}
"#,
        backend("a", &a, false),
        backend("b", &b, false)
    );
    let lq = with_policy(a.addr, &policy).await;
    for _ in 0..3 {
        for p in &paths {
            assert_eq!(get(lq.addr(), p).await.status, 200);
        }
    }
    for kind in ["s", "u", "h"] {
        let mut on_a = 0;
        for p in paths.iter().filter(|p| p.starts_with(&format!("/{kind}/"))) {
            let hits = (a.hits(p), b.hits(p));
            assert!(hits == (3, 0) || hits == (0, 3), "{p}: {hits:?}");
            on_a += usize::from(hits.0 == 3);
        }
        assert!((1..16).contains(&on_a), "{kind}: {on_a} of 16 URLs on a");
    }
}

#[tokio::test]
async fn backend_hint_from_a_header_and_a_sick_named_backend_fails_the_fetch() {
    let (a, b, c) = (
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    );
    serve(&a, "/p", "a");
    serve(&b, "/p", "b");
    c.route("/ping", |_, _| Reply::new(503));
    c.route("/p", |_, _| Reply::ok("c"));
    let policy = format!(
        r#"vcl 4.1;
{PROBE}
{}{}{}
sub vcl_recv {{
    if (req.http.X-Backend == "b") {{
        set req.backend_hint = b;
    }} elsif (req.http.X-Backend == "c") {{
        set req.backend_hint = c;
    }}
    set req.http.X-Hint = req.backend_hint;
    return (pass);
}}
sub vcl_backend_response {{
    set beresp.http.X-Bereq-Backend = bereq.backend;
    set beresp.http.X-Hint = bereq.http.X-Hint;
}}
sub vcl_backend_error {{
    set beresp.http.X-Error-Backend = bereq.backend;
    if (!beresp.backend) {{
        set beresp.http.X-Sent-To = "nothing";
    }}
}}
"#,
        backend("a", &a, false),
        backend("b", &b, false),
        backend("c", &c, true)
    );
    let lq = with_policy(a.addr, &policy).await;
    let p = lq.proxy.clone();
    let plain = get(lq.addr(), "/p").await;
    assert_eq!((plain.status, plain.text().as_str()), (200, "a"));
    assert_eq!(plain.header("x-hint"), Some("a"), "the default: the first");
    let to_b = get_with(lq.addr(), "/p", &[("x-backend", "b")]).await;
    assert_eq!((to_b.status, to_b.text().as_str()), (200, "b"));
    assert_eq!(to_b.header("x-bereq-backend"), Some("b"));
    assert_eq!((a.hits("/p"), b.hits("/p")), (1, 1));

    wait_until("the probe marks c sick", async || {
        !p.director().backends()[2].is_healthy()
    })
    .await;
    let to_c = get_with(lq.addr(), "/p", &[("x-backend", "c")]).await;
    assert_eq!(to_c.status, 503, "a sick named backend is not replaced");
    assert_eq!(to_c.header("x-error-backend"), Some("c"));
    assert_eq!(to_c.header("x-sent-to"), Some("nothing"));
    assert_eq!(c.hits("/p"), 0);
    assert_eq!((a.hits("/p"), b.hits("/p")), (1, 1));
}

#[tokio::test]
async fn bereq_backend_set_for_a_retry() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    a.route("/r", |_, _| {
        Reply::new(500).header("cache-control", "no-store")
    });
    serve(&b, "/r", "b");
    let policy = format!(
        r#"vcl 4.1;
{}{}
sub vcl_recv {{ return (pass); }}
sub vcl_backend_fetch {{
    if (bereq.retries > 0) {{
        set bereq.backend = b;
    }}
}}
sub vcl_backend_response {{
    if (beresp.status == 500 && bereq.retries == 0) {{
        return (retry);
    }}
    set beresp.http.X-Tries = bereq.retries;
}}
"#,
        backend("a", &a, false),
        backend("b", &b, false)
    );
    let lq = with_policy(a.addr, &policy).await;
    let got = get(lq.addr(), "/r").await;
    assert_eq!((got.status, got.text().as_str()), (200, "b"));
    assert_eq!(got.header("x-tries"), Some("1"));
    assert_eq!((a.hits("/r"), b.hits("/r")), (1, 1));
}

/// A reload makes the directors anew from the new policy's vcl_init.
#[tokio::test]
async fn a_reload_makes_the_directors_anew() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    serve(&a, "/r", "a");
    serve(&b, "/r", "b");
    let version = |init: &str| {
        format!(
            "vcl 4.1;\nimport directors;\n{}{}sub vcl_init {{\n{init}\n}}\nsub vcl_recv {{\n    set req.backend_hint = d.backend();\n    return (pass);\n}}\n",
            backend("a", &a, false),
            backend("b", &b, false)
        )
    };
    let dir = crate::process::scratch_dir("directors-reload");
    let file = dir.join("policy.vcl");
    std::fs::write(
        &file,
        version("new d = directors.round_robin(); d.add_backend(a); d.add_backend(b);"),
    )
    .unwrap();
    let mut config = config_for(a.addr);
    config.policy.file = Some(file.clone());
    let lq = lacquer(config).await;
    for _ in 0..4 {
        assert_eq!(get(lq.addr(), "/r").await.status, 200);
    }
    assert_eq!((a.hits("/r"), b.hits("/r")), (2, 2));
    std::fs::write(
        &file,
        version("new d = directors.fallback(); d.add_backend(b); d.add_backend(a);"),
    )
    .unwrap();
    lq.proxy.reload().expect("reloads");
    for _ in 0..4 {
        let got = get(lq.addr(), "/r").await;
        assert_eq!((got.status, got.text().as_str()), (200, "b"));
    }
    assert_eq!((a.hits("/r"), b.hits("/r")), (2, 6));
    let _ = std::fs::remove_dir_all(&dir);
}

/// vmod dynamic: `d.backend("host")` written in the policy is a backend
/// of its own (the director's port and timeouts); the declared default
/// stays the default.
#[tokio::test]
async fn a_dynamic_director_reaches_the_host_named_in_the_policy() {
    let origin = Origin::start().await;
    serve(&origin, "/dyn", "dynamic");
    let policy = format!(
        r#"vcl 4.1;
import dynamic;
backend default {{ .host = "127.0.0.1"; .port = "9"; }}
sub vcl_init {{
    new app = dynamic.director(port = "{}", first_byte_timeout = 5s, ttl = 60s);
}}
sub vcl_recv {{
    if (req.http.X-Dynamic) {{
        set req.backend_hint = app.backend("127.0.0.1");
    }}
}}
sub vcl_deliver {{
    set resp.http.X-Hint = req.backend_hint;
}}
"#,
        origin.addr.port()
    );
    let lq = with_policy(origin.addr, &policy).await;
    let a = lq.addr();
    let got = get_with(a, "/dyn", &[("X-Dynamic", "1")]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "dynamic");
    let port = origin.addr.port();
    assert_eq!(
        got.header("x-hint"),
        Some(format!("app(127.0.0.1:{port})").as_str())
    );
    // Without the hint: the declared default, a closed port.
    assert_eq!(get(a, "/dyn").await.status, 503);
    assert_eq!(origin.hits("/dyn"), 1);
}
