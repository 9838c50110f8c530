//! Parity with Varnish: the same VCL (backend declaration included) and the
//! same requests through Varnish 7.1 (`varnishd`, the Debian package) and
//! lacquer, each in front of its own counting origin with the same routes; after every step the status, the
//! body and how many requests reached the origin must agree.
//!
//! A scenario either agrees, or is listed with the reason it differs
//! (`Expect::Differs`): the test then checks that it still does, so a
//! difference that goes away is noticed and moved to the agreeing list.
//! docs/VARNISH.md keeps the list of intended differences.
//!
//! Skipped when `varnishd` is not installed, unless
//! `LACQUER_REQUIRE_VARNISH=1` (set by `.ci/run`, which installs it).

use crate::common::*;
use crate::process::{free_addr, scratch_dir, wait_listening};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const VARNISHD: &str = "/usr/sbin/varnishd";

/// `varnishd` when installed; panics when it is required and missing.
fn varnishd() -> Option<&'static str> {
    if Path::new(VARNISHD).exists() {
        return Some(VARNISHD);
    }
    assert!(
        std::env::var_os("LACQUER_REQUIRE_VARNISH").is_none(),
        "LACQUER_REQUIRE_VARNISH is set but {VARNISHD} is missing"
    );
    None
}

/// A running `varnishd -F`, stopped (manager and cache process) on drop.
struct Varnish {
    child: Child,
    addr: SocketAddr,
}

impl Varnish {
    /// Starts Varnish with `vcl` in `dir`.
    fn start(dir: &Path, vcl: &str) -> Varnish {
        Varnish::start_on(dir, vcl, "")
    }

    /// Starts Varnish with `vcl` in `dir`, its listen address followed by
    /// `suffix` (`",PROXY"`).
    fn start_on(dir: &Path, vcl: &str, suffix: &str) -> Varnish {
        let addr = free_addr();
        let file = dir.join("policy.vcl");
        std::fs::write(&file, vcl).unwrap();
        let child = Command::new(VARNISHD)
            .arg("-F")
            .args(["-j", "none"])
            .arg("-n")
            .arg(dir.join("varnish"))
            .args(["-a", &format!("{addr}{suffix}")])
            .arg("-f")
            .arg(&file)
            .args(["-s", "malloc,32m", "-T", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("varnishd starts");
        wait_listening(&addr.to_string());
        Varnish { child, addr }
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        // SIGTERM: the manager stops its cache process too (SIGKILL would
        // orphan it).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// One request of a scenario.
struct Step {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// Compare the bodies too (not for answers whose text is each
    /// server's own, such as a purge's).
    body: bool,
    /// Wall-clock time to let pass before it (for TTLs to run out).
    wait_ms: u64,
}

/// `s`, `ms` milliseconds later.
const fn later(ms: u64, s: Step) -> Step {
    Step { wait_ms: ms, ..s }
}

const fn get(path: &'static str) -> Step {
    Step {
        method: "GET",
        path,
        headers: &[],
        body: true,
        wait_ms: 0,
    }
}

const fn step(method: &'static str, path: &'static str) -> Step {
    Step {
        method,
        path,
        headers: &[],
        body: true,
        wait_ms: 0,
    }
}

/// A step whose answer's body is each server's own (a synthetic page
/// with Varnish's XID, a purge's message): status, headers and origin hits
/// are compared, not the body.
const fn unread(
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Step {
    Step {
        method,
        path,
        headers,
        body: false,
        wait_ms: 0,
    }
}

const fn get_with(path: &'static str, headers: &'static [(&'static str, &'static str)]) -> Step {
    Step {
        method: "GET",
        path,
        headers,
        body: true,
        wait_ms: 0,
    }
}

/// Whether lacquer agrees with Varnish on a scenario.
enum Expect {
    Agree,
    /// A known difference, and why (see docs/VARNISH.md).
    Differs(&'static str),
}

struct Scenario {
    name: &'static str,
    vcl: &'static str,
    steps: &'static [Step],
    /// Response headers compared too (those the policy sets).
    headers: &'static [&'static str],
    expect: Expect,
}

/// The app both servers front: the same routes on two origins.
fn routes(origin: &Origin) {
    origin.route("/echo-sc", |seen, n| {
        Reply::ok(format!(
            "sc={} v{n}",
            seen.header_or_none("surrogate-capability")
        ))
        .header("cache-control", "max-age=60")
    });
    for (path, cc) in [
        ("/private-60", "private, max-age=60"),
        ("/no-store-60", "no-store, max-age=60"),
    ] {
        let p = path.to_string();
        origin.route(path, move |_, n| {
            Reply::ok(format!("{p} v{n}")).header("cache-control", cc)
        });
    }
    // Pages tagged the ways applications tag them: Magento, Drupal,
    // FOSHttpCache (X-Cache-Tags) and xkey.
    for (path, tags) in [
        (
            "/tagged/1",
            [
                "cat_p_1,cat_c_2",
                "node:1 node_list",
                "product-1 category-2",
            ],
        ),
        (
            "/tagged/2",
            [
                "cat_p_2,cat_c_2",
                "node:2 node_list",
                "product-2 category-2",
            ],
        ),
        ("/tagged/3", ["cat_p_3", "node:3", "product-3"]),
    ] {
        let p = path.to_string();
        origin.route(path, move |_, n| {
            Reply::ok(format!("{p} v{n}"))
                .header("cache-control", "max-age=60")
                .header("x-magento-tags", tags[0])
                .header("cache-tags", tags[1])
                .header("x-cache-tags", tags[1])
                .header("xkey", tags[2])
                .header("content-type", "text/html")
        });
    }
    origin.route("/etag", |_, n| {
        Reply::ok(format!("etag v{n}"))
            .header("cache-control", "max-age=60")
            .header("etag", "\"e1\"")
            .header("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
    });
    origin.route("/vary", |seen, n| {
        let lang = seen
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Reply::ok(format!("vary {lang} v{n}"))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language")
    });
    origin.route("/esi", |_, n| {
        Reply::ok(format!("<p>page v{n} [<esi:include src=\"/a\"/>]</p>"))
            .header("cache-control", "max-age=60")
    });
    origin.route("/smaxage", |_, n| {
        Reply::ok(format!("smaxage v{n}")).header("cache-control", "s-maxage=60, max-age=0")
    });
    origin.route("/expired", |_, n| {
        Reply::ok(format!("expired v{n}")).header("expires", "Sun, 06 Nov 1994 08:49:37 GMT")
    });
    for path in ["/page", "/static/app.css", "/fallback", "/a", "/b"] {
        let p = path.to_string();
        origin.route(path, move |_, n| {
            Reply::ok(format!("{p} v{n}")).header("cache-control", "max-age=60")
        });
    }
    origin.route("/missing", |_, _| {
        Reply::new(404)
            .header("cache-control", "max-age=60")
            .body("not here")
    });
    origin.route("/private", |_, n| {
        Reply::ok(format!("private v{n}")).header("cache-control", "private")
    });
    origin.route("/broken", |_, n| {
        Reply::new(503).body(format!("broken v{n}"))
    });
    origin.route("/cookie", |_, n| {
        Reply::ok(format!("cookie v{n}"))
            .header("cache-control", "max-age=60")
            .header("set-cookie", "visitor=1")
    });
    origin.route("/echo-cookie", |seen, n| {
        Reply::ok(format!("cookie={} v{n}", seen.header_or_none("cookie")))
            .header("cache-control", "max-age=60")
    });
    origin.route("/no-store", |_, n| {
        Reply::ok(format!("no-store v{n}")).header("cache-control", "no-store")
    });
}

/// `policy` (a VCL without backends) as each server runs it: with
/// `backend default` pointing at `origin`.
fn with_backend(policy: &str, origin: SocketAddr) -> String {
    let body = policy
        .trim_start()
        .strip_prefix("vcl 4.1;")
        .unwrap_or(policy);
    format!(
        "vcl 4.1;\nbackend default {{ .host = \"{}\"; .port = \"{}\"; }}\n{body}",
        origin.ip(),
        origin.port()
    )
}

/// What one step looked like from the client and the origin.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    body: Option<String>,
    headers: Vec<(&'static str, Option<String>)>,
    origin_hits: usize,
}

async fn run(addr: SocketAddr, origin: &Origin, scenario: &Scenario) -> Vec<Seen> {
    let steps = scenario.steps;
    let mut seen = Vec::new();
    for step in steps {
        if step.wait_ms > 0 {
            sleep_ms(step.wait_ms).await;
        }
        // The body is read whole; a request right after joins the fetch
        // still storing it (both servers), so origin counts need no wait.
        let got = send(addr, step.method, step.path, step.headers, "").await;
        seen.push(Seen {
            status: got.status,
            body: step.body.then(|| got.text()),
            headers: scenario
                .headers
                .iter()
                .map(|h| (*h, got.header(h).map(str::to_string)))
                .collect(),
            origin_hits: origin.total(),
        });
    }
    seen
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "static files lose their cookies and are cached",
        vcl: r#"
sub vcl_recv {
    if (req.url ~ "^/static/") {
        unset req.http.Cookie;
        return (hash);
    }
    if (req.http.Cookie) {
        return (pass);
    }
}
"#,
        steps: &[
            get_with("/static/app.css", &[("Cookie", "session=1")]),
            get_with("/static/app.css", &[("Cookie", "session=2")]),
            get_with("/page", &[("Cookie", "session=1")]),
            get_with("/page", &[("Cookie", "session=1")]),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "query strings stripped before lookup",
        vcl: r#"
sub vcl_recv {
    set req.url = regsub(req.url, "\?.*$", "");
    return (hash);
}
"#,
        steps: &[get("/page?utm=1"), get("/page?utm=2"), get("/page")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a 750 synth becomes a redirect",
        vcl: r#"
sub vcl_recv {
    if (req.url ~ "^/old/") {
        return (synth(750, regsub(req.url, "^/old/", "/")));
    }
}
sub vcl_synth {
    if (resp.status == 750) {
        set resp.http.Location = resp.reason;
        set resp.status = 301;
        set resp.http.X-Reason = resp.reason;
        synthetic("");
        return (deliver);
    }
}
"#,
        steps: &[get("/old/page"), get("/page"), get("/old/status")],
        headers: &["location", "x-reason"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a client's no-cache does not bypass the cache",
        vcl: "",
        steps: &[
            get("/page"),
            get_with("/page", &[("Cache-Control", "no-cache")]),
            get_with("/page", &[("Pragma", "no-cache")]),
            get_with("/page", &[("Cache-Control", "max-age=0")]),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "conditional requests are answered from the cache",
        vcl: "",
        steps: &[
            get("/etag"),
            get_with("/etag", &[("If-None-Match", "\"e1\"")]),
            get_with("/etag", &[("If-None-Match", "\"other\"")]),
            get_with(
                "/etag",
                &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
            ),
            get_with(
                "/etag",
                &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT")],
            ),
        ],
        headers: &["etag"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a HEAD miss fetches the page for later GETs",
        vcl: "",
        steps: &[step("HEAD", "/page"), get("/page"), step("HEAD", "/page")],
        headers: &["content-length"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "ranges of a cached page",
        vcl: "",
        steps: &[
            get_with("/page", &[("Range", "bytes=0-2")]),
            get_with("/page", &[("Range", "bytes=-2")]),
            get_with("/page", &[("Range", "bytes=50-60")]),
            get("/page"),
        ],
        headers: &["content-range"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "hash_always_miss refreshes a page",
        vcl: r#"
sub vcl_recv {
    if (req.http.X-Refresh) {
        set req.hash_always_miss = true;
    }
}
"#,
        steps: &[
            get("/page"),
            get("/page"),
            get_with("/page", &[("X-Refresh", "1")]),
            get("/page"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "Vary stores one variant per language",
        vcl: "",
        steps: &[
            get_with("/vary", &[("Accept-Language", "de")]),
            get_with("/vary", &[("Accept-Language", "fr")]),
            get_with("/vary", &[("Accept-Language", "de")]),
            get_with("/vary", &[("Accept-Language", "fr")]),
            get("/vary"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "X-Forwarded-For gets the client appended",
        vcl: r#"
sub vcl_deliver {
    set resp.http.X-XFF = req.http.X-Forwarded-For;
}
"#,
        steps: &[
            get("/page"),
            get_with("/page", &[("X-Forwarded-For", "192.0.2.7")]),
        ],
        headers: &["x-xff"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "ESI includes assembled from the cache",
        vcl: r#"
sub vcl_backend_response {
    if (bereq.url == "/esi") {
        set beresp.do_esi = true;
    }
}
"#,
        steps: &[get("/esi"), get("/esi"), get("/a")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a Set-Cookie dropped from an answer makes it cacheable",
        vcl: r#"
sub vcl_backend_response {
    if (bereq.url == "/cookie") {
        unset beresp.http.Set-Cookie;
    }
}
"#,
        steps: &[get("/cookie"), get("/cookie")],
        headers: &["set-cookie"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "s-maxage, expired Expires and uncacheable statuses",
        vcl: "",
        steps: &[
            get("/smaxage"),
            get("/smaxage"),
            get("/expired"),
            get("/expired"),
            get("/broken"),
            get("/broken"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a backend that refuses connections: 503 from the built-in vcl_backend_error",
        vcl: r#"
backend dead { .host = "127.0.0.1"; .port = "9"; }
sub vcl_recv {
    if (req.url == "/page") {
        set req.backend_hint = dead;
    }
}
sub vcl_backend_error {
    set beresp.http.X-Status = beresp.status;
}
"#,
        steps: &[
            unread("GET", "/page", &[]),
            get("/a"),
        ],
        headers: &["x-status", "content-type"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "Magento: a PURGE with X-Magento-Tags-Pattern bans tagged pages",
        vcl: r#"
acl purge { "127.0.0.1"; "::1"; }
sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "Method not allowed"));
        }
        if (!req.http.X-Magento-Tags-Pattern && !req.http.X-Pool) {
            return (purge);
        }
        if (req.http.X-Magento-Tags-Pattern) {
            ban("obj.http.X-Magento-Tags ~ " + req.http.X-Magento-Tags-Pattern);
        }
        return (synth(200, "Purged"));
    }
    return (hash);
}
sub vcl_deliver {
    unset resp.http.X-Magento-Tags;
}
"#,
        steps: &[
            get("/tagged/1"),
            get("/tagged/2"),
            get("/tagged/3"),
            unread("PURGE", "/", &[("X-Magento-Tags-Pattern", "((^|,)cat_c_2(,|$))")]),
            get("/tagged/1"),
            get("/tagged/2"),
            get("/tagged/3"),
        ],
        headers: &["x-magento-tags"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "Drupal: a BAN with Cache-Tags bans tagged pages",
        vcl: r#"
sub vcl_recv {
    if (req.method == "BAN") {
        if (req.http.Cache-Tags) {
            ban("obj.http.Cache-Tags ~ " + req.http.Cache-Tags);
        } else {
            return (synth(403, "Cache-Tags header missing."));
        }
        return (synth(200, "Ban added."));
    }
}
sub vcl_deliver {
    unset resp.http.Cache-Tags;
}
"#,
        steps: &[
            get("/tagged/1"),
            get("/tagged/3"),
            unread("BAN", "/", &[("Cache-Tags", "(^|\\s)node:1(\\s|$)")]),
            unread("BAN", "/", &[]),
            get("/tagged/1"),
            get("/tagged/3"),
        ],
        headers: &["cache-tags"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "FOSHttpCache: BAN by host, URL and content type; tag bans",
        vcl: r#"
sub vcl_recv {
    if (req.method == "BAN") {
        if (req.http.X-Cache-Tags) {
            ban("obj.http.X-Host ~ " + req.http.X-Host
                + " && obj.http.X-Url ~ " + req.http.X-Url
                + " && obj.http.content-type ~ " + req.http.X-Content-Type
                + " && obj.http.X-Cache-Tags ~ " + req.http.X-Cache-Tags
            );
        } else {
            ban("obj.http.X-Host ~ " + req.http.X-Host
                + " && obj.http.X-Url ~ " + req.http.X-Url
                + " && obj.http.content-type ~ " + req.http.X-Content-Type
            );
        }
        return (synth(200, "Banned"));
    }
}
sub vcl_backend_response {
    set beresp.http.X-Url = bereq.url;
    set beresp.http.X-Host = bereq.http.host;
}
sub vcl_deliver {
    unset resp.http.X-Url;
    unset resp.http.X-Host;
    unset resp.http.X-Cache-Tags;
}
"#,
        steps: &[
            get("/tagged/1"),
            get("/tagged/2"),
            get("/page"),
            unread("BAN", "/", &[
                    ("X-Host", "."),
                    ("X-Url", "^/tagged/"),
                    ("X-Content-Type", "."),
                    ("X-Cache-Tags", "node:2"),
                ]),
            get("/tagged/1"),
            get("/tagged/2"),
            unread("BAN", "/", &[("X-Host", "."), ("X-Url", "^/tagged/1$"), ("X-Content-Type", "^text/")]),
            get("/page"),
            get("/tagged/1"),
            get("/tagged/2"),
        ],
        headers: &["x-url", "x-cache-tags"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "xkey: a PURGE with xkey-purge removes every page with the key (FOSHttpCache)",
        vcl: r#"
import xkey;
sub vcl_recv {
    if (req.method == "PURGE") {
        if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
        }
        return (purge);
    }
}
sub vcl_synth {
    set resp.http.X-Gone = req.http.n-gone;
}
sub vcl_deliver {
    unset resp.http.xkey;
}
"#,
        steps: &[
            get("/tagged/1"),
            get("/tagged/2"),
            get("/tagged/3"),
            unread("PURGE", "/", &[("xkey-purge", "category-2 unknown")]),
            get("/tagged/1"),
            get("/tagged/2"),
            get("/tagged/3"),
            unread("PURGE", "/", &[("xkey-purge", "product-3")]),
            get("/tagged/3"),
        ],
        headers: &["x-gone", "xkey"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "vmod header and vmod var",
        vcl: r#"
import header;
import var;
sub vcl_recv {
    var.set("lang", regsub(req.http.Accept-Language, "^(..).*$", "\1"));
    var.set_int("n", 2);
}
sub vcl_backend_response {
    header.append(beresp.http.X-List, "a");
    header.append(beresp.http.X-List, "b=1");
    header.append(beresp.http.X-List, "c");
}
sub vcl_deliver {
    set resp.http.X-Get = header.get(resp.http.X-List, "^b=");
    header.remove(resp.http.X-List, "^a$");
    set resp.http.X-Left = resp.http.X-List;
    set resp.http.X-Lang = var.get("lang") + var.get_int("n") * 2;
    header.copy(resp.http.X-Lang, resp.http.X-Copy);
}
"#,
        steps: &[
            get_with("/page", &[("Accept-Language", "de-CH,de")]),
            get_with("/page", &[("Accept-Language", "fr")]),
        ],
        headers: &["x-get", "x-left", "x-lang", "x-copy"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "an explicit return (deliver) stores private and no-store answers",
        vcl: r#"
sub vcl_backend_response {
    if (bereq.url != "/cookie") {
        return (deliver);
    }
}
"#,
        // (With no max-age Varnish stores them for default_ttl, 120 s; lacquer's
        // rfc profile has none: `cache.profile = "varnish"` for Varnish's.)
        steps: &[
            get("/private-60"),
            get("/private-60"),
            get("/no-store-60"),
            get("/no-store-60"),
            get("/cookie"),
            get("/cookie"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "requests with Authorization looked up share the stored answer",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
"#,
        steps: &[
            get_with("/page", &[("Authorization", "Basic YTpi")]),
            get_with("/page", &[("Authorization", "Basic Yzpk")]),
            get("/page"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "what a policy leaves to the built-in VCL: vcl_purge, empty synth, do_gzip, xkey, Surrogate-Capability",
        vcl: r#"
import xkey;
sub vcl_recv {
    set req.http.Surrogate-Capability = "shop=ESI/1.0";
    if (req.method == "PURGE") {
        return (purge);
    }
    if (req.url == "/empty") {
        return (synth(404, "Nope"));
    }
}
sub vcl_backend_response {
    set beresp.do_gzip = true;
}
sub vcl_synth {
    if (resp.status == 404) {
        return (deliver);
    }
}
"#,
        steps: &[
            unread("PURGE", "/page", &[]),
            get("/empty"),
            // Two gzip encoders: the same coding, not the same bytes.
            unread("GET", "/page", &[("Accept-Encoding", "gzip")]),
            get("/page"),
            get("/tagged/1"),
            get("/echo-sc"),
            unread("PURGE", "/page", &[]),
        ],
        headers: &["content-type", "content-encoding", "xkey"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "hits told by the two numbers of X-Varnish (Drupal's VCL)",
        vcl: r#"
sub vcl_deliver {
    if (resp.http.X-Varnish ~ " ") {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    set resp.http.X-Has-Xid = resp.http.X-Varnish ~ "^[0-9]+( [0-9]+)?$";
}
"#,
        steps: &[get("/page"), get("/page"), get("/private"), get("/missing"), get("/missing")],
        headers: &["x-cache", "x-has-xid"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "device in the hash",
        vcl: r#"
sub vcl_recv {
    if (req.http.User-Agent ~ "Mobile") {
        set req.http.X-Device = "mobile";
    } else {
        set req.http.X-Device = "desktop";
    }
    return (hash);
}
sub vcl_hash {
    hash_data(req.url);
    hash_data(req.http.X-Device);
    return (lookup);
}
"#,
        steps: &[
            get_with("/page", &[("User-Agent", "Mobile Safari")]),
            get_with("/page", &[("User-Agent", "Firefox")]),
            get_with("/page", &[("User-Agent", "Mobile Chrome")]),
            get_with("/page", &[("User-Agent", "curl")]),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "synthetic error pages",
        vcl: r#"
sub vcl_recv {
    if (req.url == "/gone") {
        return (synth(410, "Gone"));
    }
    return (hash);
}
sub vcl_synth {
    set resp.http.Content-Type = "text/plain";
    synthetic("custom " + resp.status + " " + resp.reason);
    return (deliver);
}
"#,
        steps: &[get("/gone"), get("/page"), get("/gone")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a 404 restarts on a fallback URL",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
sub vcl_deliver {
    if (resp.status == 404 && req.restarts == 0) {
        set req.url = "/fallback";
        return (restart);
    }
    set resp.http.X-Restarts = req.restarts;
}
"#,
        steps: &[get("/missing"), get("/missing"), get("/fallback")],
        headers: &["x-restarts"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "PURGE with an ACL",
        vcl: r#"
acl purgers { "127.0.0.1"; }
sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "Not allowed"));
        }
        return (purge);
    }
    return (hash);
}
"#,
        steps: &[
            get("/page"),
            get("/page"),
            unread("PURGE", "/page", &[]),
            get("/page"),
            get("/page"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "private answers are not shared",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
"#,
        steps: &[get("/private"), get("/private")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "headers set in vcl_deliver from obj.hits",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache-Hit = "yes";
    } else {
        set resp.http.X-Cache-Hit = "no";
    }
    unset resp.http.X-Powered-By;
}
"#,
        steps: &[get("/page"), get("/page"), get("/a"), get("/page")],
        headers: &["x-cache-hit", "x-powered-by"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "backend errors abandoned into a synthetic page",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
sub vcl_backend_response {
    if (beresp.status >= 500) {
        return (abandon);
    }
}
"#,
        steps: &[
            unread("GET", "/broken", &[]),
            get("/page"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "hit-for-pass from vcl_backend_response",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
sub vcl_backend_response {
    if (bereq.url == "/a") {
        return (pass(30s));
    }
}
"#,
        steps: &[get("/a"), get("/a"), get("/b"), get("/b")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "request headers rewritten for the backend",
        vcl: r#"
sub vcl_recv {
    set req.http.X-Original-Url = req.url;
    if (req.url ~ "^/old/") {
        set req.url = regsub(req.url, "^/old/", "/");
    }
    return (hash);
}
sub vcl_deliver {
    set resp.http.X-Was = req.http.X-Original-Url;
}
"#,
        steps: &[get("/old/page"), get("/page"), get("/old/a")],
        headers: &["x-was"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a vcl_recv that falls through with a Cookie",
        vcl: r#"
sub vcl_recv {
    if (req.url ~ "^/static/") {
        unset req.http.Cookie;
    }
}
"#,
        steps: &[
            get_with("/page", &[("Cookie", "session=1")]),
            get_with("/page", &[("Cookie", "session=1")]),
            get_with("/static/app.css", &[("Cookie", "session=1")]),
            get_with("/static/app.css", &[("Cookie", "session=1")]),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a TTL set on a no-store answer",
        vcl: r#"
sub vcl_recv {
    return (hash);
}
sub vcl_backend_response {
    set beresp.ttl = 60s;
    return (deliver);
}
"#,
        steps: &[get("/no-store"), get("/no-store")],
        headers: &[],
        expect: Expect::Agree,
    },
    // Varnish's built-in VCL, appended to every policy, from here on.
    Scenario {
        name: "a PURGE the policy does not handle goes to the backend",
        vcl: r#"
sub vcl_recv {
    if (req.url ~ "^/static/") {
        return (hash);
    }
}
"#,
        steps: &[get("/page"), step("PURGE", "/page"), get("/a"), get("/a")],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "answers setting a cookie are not cached",
        vcl: r#"
sub vcl_backend_response {
    set beresp.http.X-Seen = "yes";
}
"#,
        steps: &[get("/cookie"), get("/cookie"), get("/page"), get("/page")],
        headers: &["x-seen"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "requests with Authorization are passed",
        vcl: r#"
sub vcl_deliver {
    set resp.http.X-Hits = obj.hits;
}
"#,
        steps: &[
            get_with("/page", &[("Authorization", "Basic YTpi")]),
            get_with("/page", &[("Authorization", "Basic YTpi")]),
            get("/page"),
            get("/page"),
        ],
        headers: &["x-hits"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a successful POST invalidates its URL",
        vcl: r#"
sub vcl_recv {
    unset req.http.Cookie;
}
"#,
        steps: &[get("/page"), step("POST", "/page"), get("/page")],
        headers: &[],
        expect: Expect::Differs(
            "RFC 9111 §4.4: lacquer invalidates the URL of a successful \
             unsafe request; Varnish keeps serving the stored page",
        ),
    },
    Scenario {
        name: "a ban built at run time from a PURGE handler",
        vcl: r#"
sub vcl_recv {
    if (req.method == "PURGE") {
        ban("req.url ~ " + req.http.X-Pattern);
        return (synth(200, "Banned"));
    }
    return (hash);
}
"#,
        steps: &[
            get("/a"),
            get("/b"),
            get("/a"),
            unread("PURGE", "/", &[("X-Pattern", "^/a$")]),
            get("/a"),
            get("/b"),
            get("/a"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "vmod std conversions, strings and VCL arithmetic",
        vcl: r#"
import std;
sub vcl_recv {
    return (hash);
}
sub vcl_deliver {
    set resp.http.X-Int = std.integer(req.http.X-N, fallback = 7) * 2 + 1;
    set resp.http.X-Real = std.real("1.5", 0) * 2;
    set resp.http.X-Dur = std.duration("1m", 0s) / 4;
    set resp.http.X-Sorted = std.querysort(req.url + "?b=2&a=1&&c");
    set resp.http.X-Upper = std.toupper(std.strstr(req.url + "?b=2&a=1", "a"));
    set resp.http.X-Match = std.fnmatch("/pa*", req.url);
    set resp.http.X-Date = std.time("Sun, 06 Nov 1994 08:49:37 GMT", now) + 1d;
    set resp.http.X-Named = std.integer(s = "12", fallback = 0) / 5;
    set resp.http.X-Round = std.round(2.5);
}
"#,
        steps: &[get_with("/page", &[("X-N", "20")]), get("/page")],
        headers: &[
            "x-int", "x-real", "x-dur", "x-sorted", "x-upper", "x-match", "x-date", "x-named",
            "x-round",
        ],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a ~300-line production policy (the benches' production.vcl)",
        vcl: include_str!("../../vcl-lite/benches/production.vcl"),
        steps: &[
            get("/lb-health"),
            get_with("/static/app.css", &[("Cookie", "_ga=1; PHPSESSID=9")]),
            get_with("/static/app.css", &[("Cookie", "other=2")]),
            get("/page?utm_source=news&b=2&a=1"),
            get("/page?a=1&b=2"),
            get_with("/page?a=1&b=2", &[("Cookie", "PHPSESSID=1")]),
            get_with("/page?a=1&b=2", &[("User-Agent", "Mobile Safari iPhone")]),
            get_with("/page?a=1&b=2", &[("User-Agent", "Mobile Safari iPhone")]),
            get("/page"),
            get("/page"),
            unread("PURGE", "/page", &[]),
            get("/page"),
            Step {
                method: "BAN",
                path: "/",
                headers: &[("X-Ban-Url", "^/static/")],
                body: true,
                wait_ms: 0,
            },
            get("/static/app.css"),
            get("/private"),
            get("/private"),
            get("/broken"),
            get("/missing"),
            get("/missing"),
            step("DELETE", "/a"),
        ],
        headers: &["x-cache", "cache-control", "content-type"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "a fallback director goes to the second backend while the first is sick",
        vcl: r#"
import directors;
import std;
probe refused { .url = "/"; .interval = 100ms; .timeout = 100ms; .window = 2; .threshold = 1; }
backend dead { .host = "127.0.0.1"; .port = "9"; .probe = refused; }
sub vcl_init {
    new fb = directors.fallback();
    fb.add_backend(dead);
    fb.add_backend(default);
}
sub vcl_recv {
    set req.backend_hint = fb.backend();
    return (hash);
}
sub vcl_deliver {
    set resp.http.X-Dead = std.healthy(dead);
    set resp.http.X-Fallback = std.healthy(fb.backend());
}
"#,
        steps: &[get("/page"), get("/page"), get("/a")],
        headers: &["x-dead", "x-fallback"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "grace with std.healthy: stale while the backend is sick, fresh while it is not",
        vcl: r#"
import std;
probe refused { .url = "/"; .interval = 100ms; .timeout = 100ms; .window = 2; .threshold = 1; }
backend dead { .host = "127.0.0.1"; .port = "9"; .probe = refused; }
sub vcl_recv {
    if (req.http.X-Down) {
        set req.backend_hint = dead;
    }
    if (std.healthy(req.backend_hint)) {
        set req.grace = 0s;
    } else {
        set req.grace = 1h;
    }
    return (hash);
}
sub vcl_backend_response {
    set beresp.ttl = 1s;
    set beresp.grace = 1h;
    return (deliver);
}
"#,
        steps: &[
            get("/page"),
            later(1500, get("/page")),
            later(1500, get_with("/page", &[("X-Down", "1")])),
            get_with("/page", &[("X-Down", "1")]),
            // After the background refresh to the sick backend has failed
            // (both servers would otherwise join it).
            later(300, get("/page")),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
    Scenario {
        name: "an object stored with a TTL of 0s and grace, asked for with grace while the backend is sick",
        vcl: r#"
import std;
probe refused { .url = "/"; .interval = 100ms; .timeout = 100ms; .window = 2; .threshold = 1; }
backend dead { .host = "127.0.0.1"; .port = "9"; .probe = refused; }
sub vcl_recv {
    if (req.http.X-Down) {
        set req.backend_hint = dead;
    }
    if (!std.healthy(req.backend_hint)) {
        set req.grace = 1h;
    }
    return (hash);
}
sub vcl_backend_response {
    set beresp.ttl = 0s;
    set beresp.grace = 1h;
    return (deliver);
}
"#,
        steps: &[get("/page"), get_with("/page", &[("X-Down", "1")])],
        headers: &[],
        expect: Expect::Differs(
            "Varnish 7.1 does not serve an object whose TTL was 0s in grace (a miss: the \
             sick backend's 503); lacquer serves it stale",
        ),
    },
    Scenario {
        name: "vmod cookie keeps one cookie for the origin and the cache key",
        vcl: r#"
import cookie;
sub vcl_recv {
    if (req.http.Cookie) {
        cookie.parse(req.http.Cookie);
        cookie.keep("lang,theme");
        cookie.filter("theme");
        set req.http.Cookie = cookie.get_string();
        if (req.http.Cookie == "") {
            unset req.http.Cookie;
        }
    }
    return (hash);
}
sub vcl_hash {
    hash_data(req.url);
    if (cookie.isset("lang")) {
        hash_data(cookie.get("lang"));
    }
    return (lookup);
}
sub vcl_deliver {
    set resp.http.X-Jar = cookie.get_string();
    set resp.http.X-Has-Lang = cookie.isset("lang");
}
"#,
        steps: &[
            get_with("/echo-cookie", &[("Cookie", "_ga=1; lang=fr; theme=dark")]),
            get_with("/echo-cookie", &[("Cookie", "lang=fr; _gid=3")]),
            get_with("/echo-cookie", &[("Cookie", "lang=de")]),
            get_with("/echo-cookie", &[("Cookie", "_ga=1")]),
            get_with("/echo-cookie", &[("Cookie", "_ga=2; tracking=x")]),
            get("/echo-cookie"),
        ],
        headers: &["x-jar", "x-has-lang"],
        expect: Expect::Agree,
    },
    Scenario {
        name: "vmod cookie: every function on odd Cookie headers",
        vcl: r#"
import cookie;
sub vcl_recv {
    return (synth(200));
}
sub vcl_synth {
    cookie.parse(req.http.Cookie);
    set resp.http.X-Parsed = cookie.get_string();
    set resp.http.X-Get = cookie.get("a") + "|" + cookie.get_re("^[bc]") + "|" + cookie.isset("b") + cookie.isset("");
    cookie.set("new", "1");
    cookie.set("a", "replaced");
    cookie.set("empty", "");
    cookie.delete("b");
    set resp.http.X-Set = cookie.get_string();
    cookie.filter_re("^n");
    set resp.http.X-Filter-Re = cookie.get_string();
    cookie.keep_re("^[a-c]");
    set resp.http.X-Keep-Re = cookie.get_string();
    cookie.filter("a, zz");
    set resp.http.X-Filter = cookie.get_string();
    cookie.clean();
    set resp.http.X-Clean = "[" + cookie.get_string() + "]";
    synthetic("");
    return (deliver);
}
"#,
        steps: &[
            get_with("/", &[("Cookie", "a=1; b=2; c=3")]),
            get_with("/", &[("Cookie", "=x;a=1;;  b = 2 ;c;=3; a=4; d=e=f; g=")]),
            get_with("/", &[("Cookie", "novalue")]),
            get("/"),
        ],
        headers: &[
            "x-parsed",
            "x-get",
            "x-set",
            "x-filter-re",
            "x-keep-re",
            "x-filter",
            "x-clean",
        ],
        expect: Expect::Agree,
    },
    Scenario {
        name: "vmod purge: purge.hard in vcl_hit",
        vcl: r#"
import purge;
sub vcl_recv {
    return (hash);
}
sub vcl_hit {
    if (req.method == "PURGE") {
        set req.http.X-Purged = purge.hard();
        return (synth(200, "Purged " + req.http.X-Purged));
    }
}
sub vcl_miss {
    if (req.method == "PURGE") {
        return (synth(404, "Not in cache"));
    }
}
"#,
        steps: &[
            get("/page"),
            get("/page"),
            unread("PURGE", "/page", &[]),
            unread("PURGE", "/page", &[]),
            get("/page"),
            get("/page"),
        ],
        headers: &[],
        expect: Expect::Agree,
    },
];

/// Runs one scenario through both servers; returns what each saw.
async fn both(dir: &Path, scenario: &Scenario) -> (Vec<Seen>, Vec<Seen>) {
    let varnish_origin = Origin::start().await;
    routes(&varnish_origin);
    let lacquer_origin = Origin::start().await;
    routes(&lacquer_origin);
    let varnish = Varnish::start(dir, &with_backend(scenario.vcl, varnish_origin.addr));
    // The same VCL, backend declaration included (`-b` points nowhere: the
    // policy's backend replaces it).
    let lq = with_policy(
        free_addr(),
        &with_backend(scenario.vcl, lacquer_origin.addr),
    )
    .await;
    if scenario.vcl.contains(".probe") {
        // Both servers' probes of a closed port have failed by then.
        sleep_ms(500).await;
    }
    let v = run(varnish.addr, &varnish_origin, scenario).await;
    let l = run(lq.addr(), &lacquer_origin, scenario).await;
    (v, l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lacquer_behaves_as_varnish_on_the_same_vcl() {
    if varnishd().is_none() {
        return;
    }
    let root: PathBuf = scratch_dir("parity");
    let mut failures = Vec::new();
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let dir = root.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let (varnish, lacquer) = both(&dir, scenario).await;
        match (&scenario.expect, varnish == lacquer) {
            (Expect::Agree, true) | (Expect::Differs(_), false) => {}
            (Expect::Agree, false) => failures.push(format!(
                "{}: differs\n  varnish: {varnish:?}\n  lacquer: {lacquer:?}",
                scenario.name
            )),
            (Expect::Differs(why), true) => failures.push(format!(
                "{}: now agrees (listed as differing: {why}); move it to Agree and docs/VARNISH.md",
                scenario.name
            )),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// vmod proxy on both servers behind the PROXY protocol: the same v2
/// headers (TLVs or none) give the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vmod_proxy_reads_the_same_tlvs_as_varnish() {
    use lacquer::lifecycle::{encode_tlvs, CLIENT_CERT_SESS, CLIENT_SSL};
    if varnishd().is_none() {
        return;
    }
    const VCL: &str = r#"vcl 4.1;
import proxy;
sub vcl_recv {
    return (synth(200));
}
sub vcl_synth {
    set resp.http.X-Proxy = "alpn=" + proxy.alpn() + " sni=" + proxy.authority()
        + " ssl=" + proxy.is_ssl() + " conn=" + proxy.client_has_cert_conn()
        + " sess=" + proxy.client_has_cert_sess() + " verify=" + proxy.ssl_verify_result()
        + " version=" + proxy.ssl_version() + " cn=" + proxy.client_cert_cn()
        + " cipher=" + proxy.ssl_cipher() + " sign=" + proxy.cert_sign()
        + " key=" + proxy.cert_key();
    set resp.http.X-Client = client.ip;
    synthetic("");
    return (deliver);
}
"#;
    let ssl = [
        vec![CLIENT_SSL | CLIENT_CERT_SESS, 0, 0, 0, 7],
        encode_tlvs(&[
            (0x21, b"TLSv1.2".to_vec()),
            (0x22, b"bob".to_vec()),
            (0x23, b"ECDHE-RSA-AES128-GCM-SHA256".to_vec()),
            (0x24, b"SHA256".to_vec()),
            (0x25, b"RSA2048".to_vec()),
        ]),
    ]
    .concat();
    let cases = [
        encode_tlvs(&[
            (0x01, b"h2".to_vec()),
            (0x02, b"shop.example".to_vec()),
            (0x20, ssl),
        ]),
        encode_tlvs(&[(0x01, b"http/1.1".to_vec())]),
        Vec::new(),
    ];
    let root = scratch_dir("parity-proxy");
    let origin = Origin::start().await;
    let varnish = Varnish::start_on(&root, &with_backend(VCL, origin.addr), ",PROXY");
    let lq = with_policy_and(free_addr(), &with_backend(VCL, origin.addr), |c| {
        c.server.proxy_protocol = true
    })
    .await;
    for tlvs in &cases {
        let mut head = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        head.extend_from_slice(&[0x21, 0x11]);
        head.extend_from_slice(&u16::try_from(12 + tlvs.len()).unwrap().to_be_bytes());
        head.extend_from_slice(&[203, 0, 113, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        head.extend_from_slice(tlvs);
        head.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let wait = std::time::Duration::from_secs(5);
        let header = |answer: &str, name: &str| {
            answer
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no {name} in {answer}"))
        };
        let v = raw(varnish.addr, &head, wait).await;
        let l = raw(lq.addr(), &head, wait).await;
        for name in ["x-proxy", "x-client"] {
            assert_eq!(header(&v, name), header(&l, name), "{name}");
        }
    }
    drop(varnish);
    let _ = std::fs::remove_dir_all(&root);
}

/// Varnish's WebSocket recipe (`return (pipe)` and `vcl_pipe` carrying
/// `Upgrade`) on both servers, each in front of its own echo backend: the
/// same handshake answer, the same bytes echoed, the same refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_piped_as_varnish_pipes_them() {
    use crate::websocket::{echo_backend, handshake};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if varnishd().is_none() {
        return;
    }
    const VCL: &str = r#"
sub vcl_recv {
    if (req.http.Upgrade ~ "(?i)websocket") {
        return (pipe);
    }
}
sub vcl_pipe {
    if (req.http.Upgrade) {
        set bereq.http.Upgrade = req.http.Upgrade;
        set bereq.http.Connection = req.http.Connection;
    }
}
"#;
    let dir = scratch_dir("parity-ws");
    let (varnish_echo, varnish_heads) = echo_backend().await;
    let (lacquer_echo, lacquer_heads) = echo_backend().await;
    let varnish = Varnish::start(&dir, &with_backend(VCL, varnish_echo));
    let lq = with_policy(free_addr(), &with_backend(VCL, lacquer_echo)).await;
    let mut seen = Vec::new();
    for addr in [varnish.addr, lq.addr()] {
        let (mut ws, head) = handshake(addr, "/chat").await;
        let status = head.lines().next().unwrap_or("").to_string();
        ws.write_all(b"hello, pipe").await.unwrap();
        let mut echoed = [0u8; 11];
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ws.read_exact(&mut echoed),
        )
        .await
        .expect("echo in time")
        .expect("echo");
        let (_, refused) = handshake(addr, "/refuse").await;
        let refused = refused.lines().next().unwrap_or("").to_string();
        seen.push((
            status.split(' ').nth(1).map(str::to_string),
            echoed.to_vec(),
            refused.split(' ').nth(1).map(str::to_string),
        ));
    }
    assert_eq!(seen[0], seen[1], "varnish vs lacquer");
    assert_eq!(seen[0].0.as_deref(), Some("101"));
    assert_eq!(seen[0].1, b"hello, pipe");
    for heads in [varnish_heads, lacquer_heads] {
        let heads = heads.lock().unwrap();
        assert!(
            heads[0].to_ascii_lowercase().contains("upgrade: websocket"),
            "{heads:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
