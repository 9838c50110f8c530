//! The command line: help, settings checks, and `run -a -b` without a file.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::*;

fn lacquer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run lacquer");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_flag() {
    let (ok, out, _) = lacquer(&["run", "--help"]);
    assert!(ok);
    for flag in ["--config", "--listen", "--backend", "--storage"] {
        assert!(out.contains(flag), "{flag} missing from run --help:\n{out}");
    }
    let (ok, out, _) = lacquer(&["--help"]);
    assert!(ok);
    for cmd in ["run", "demo", "check"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
}

#[test]
fn check_accepts_the_example_and_points_at_errors() {
    for example in [
        "fixtures/lacquer.toml",
        "deploy/lacquer.toml",
        "deploy/compose-lacquer1.toml",
        "deploy/compose-lacquer2.toml",
    ] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let (ok, out, err) = lacquer(&["check", "--config", &path]);
        assert!(ok, "{example}: {out}{err}");
    }

    let dir = scratch_dir("cli");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[cache]\ngrace = \"10s\"\nstorage = \"lots\"\n").unwrap();
    let (ok, _, err) = lacquer(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:3:11: expected a size"),
        "no file:line:column in: {err}"
    );
    let unknown = dir.join("unknown.toml");
    std::fs::write(
        &unknown,
        "[server]\nlisten = [\"127.0.0.1:1\"]\nthreds = 2\n",
    )
    .unwrap();
    let (ok, _, err) = lacquer(&["check", "--config", unknown.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("unknown.toml:3:1: unknown field `threds`"),
        "{err}"
    );
    let (ok, _, err) = lacquer(&[
        "check",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn check_refuses_weak_or_placeholder_cluster_secrets() {
    let dir = scratch_dir("secret");
    // The production example's placeholder, and a short secret without
    // peers (it still turns POST /cluster/apply on).
    for (name, cluster, error) in [
        (
            "placeholder.toml",
            "peers = [\"10.0.2.22:6082\"]\nsecret = \"CHANGE-ME-to-a-long-random-string\"\n",
            "cluster.secret: still the example's placeholder",
        ),
        (
            "short.toml",
            "secret = \"hunter2\"\n",
            "cluster.secret: at least 16 characters",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, format!("[cluster]\n{cluster}")).unwrap();
        let (ok, out, err) = lacquer(&["check", "--config", path.to_str().unwrap()]);
        assert!(!ok, "{name} passed the check: {out}");
        assert!(err.contains(error), "{name}: {err}");
    }
}

const ADMIN_SECRET: &str = "5d1f0c9e7a3b46e2a8c4f1d9b7e3a5c2";

#[test]
fn check_warns_about_an_admin_listener_off_loopback_without_a_secret() {
    let dir = scratch_dir("admin");
    let open = dir.join("open.toml");
    std::fs::write(&open, "[admin]\nlisten = \"0.0.0.0:6082\"\n").unwrap();
    let (ok, out, err) = lacquer(&["check", "--config", open.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("warning: admin.listen = 0.0.0.0:6082 is not a loopback address")
            && err.contains("admin.secret"),
        "{err}"
    );
    let closed = dir.join("closed.toml");
    std::fs::write(
        &closed,
        format!("[admin]\nlisten = \"0.0.0.0:6082\"\nsecret = \"{ADMIN_SECRET}\"\n"),
    )
    .unwrap();
    let (ok, out, err) = lacquer(&["check", "--config", closed.to_str().unwrap()]);
    assert!(ok && !err.contains("warning"), "{out}{err}");
    let weak = dir.join("weak.toml");
    std::fs::write(&weak, "[admin]\nsecret = \"admin\"\n").unwrap();
    let (ok, _, err) = lacquer(&["check", "--config", weak.to_str().unwrap()]);
    assert!(
        !ok && err.contains("admin.secret: at least 16 characters"),
        "{err}"
    );
}

/// With admin.secret set, the admin API answers 401 without it, and the
/// lacquer commands find it in LACQUER_ADMIN_SECRET or the settings file.
#[test]
fn the_admin_secret_guards_the_admin_api_and_the_commands_send_it() {
    let dir = scratch_dir("admin-run");
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let conf = dir.join("secret.toml");
    std::fs::write(
        &conf,
        format!("[admin]\nlisten = \"{admin}\"\nsecret = \"{ADMIN_SECRET}\"\n"),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-c", conf, "-a", &listen, "-b", "127.0.0.1:9"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&admin);
    let raw = |auth: &str| {
        let mut s = TcpStream::connect(&admin).unwrap();
        write!(
            s,
            "GET /counts HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let none = raw("");
    let wrong = raw("Authorization: Bearer 5d1f0c9e7a3b46e2a8c4f1d9b7e3a5c3\r\n");
    let right = raw(&format!("Authorization: Bearer {ADMIN_SECRET}\r\n"));
    let without = lacquer(&["bans", "-T", &admin]);
    let from_env = Command::new(BIN)
        .args(["ban", "req.url ~ ^/env", "-T", &admin])
        .env("LACQUER_ADMIN_SECRET", ADMIN_SECRET)
        .output()
        .unwrap();
    // -c: the address and the secret come from the node's settings file.
    let from_file = lacquer(&["bans", "-c", conf]);
    let stats = lacquer(&["stats", "--count", "1", "-c", conf]);
    let health = fetch(&listen, "/healthz");
    let _ = child.kill();
    let _ = child.wait();
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(
        none.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{none}"
    );
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(
        right.starts_with("HTTP/1.1 200") && right.contains("bans 0"),
        "{right}"
    );
    assert!(
        !without.0 && without.2.contains("admin answered 401"),
        "{without:?}"
    );
    assert!(without.1.contains("LACQUER_ADMIN_SECRET"), "{without:?}");
    assert!(
        from_env.status.success()
            && String::from_utf8_lossy(&from_env.stdout).contains("ban 1 added"),
        "{from_env:?}"
    );
    assert!(
        from_file.0 && from_file.1.contains("^/env"),
        "{from_file:?}"
    );
    assert!(stats.0 && stats.1.contains("per second"), "{stats:?}");
    // The client side is not behind the admin secret.
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[test]
fn run_without_a_backend_says_so() {
    let (ok, _, err) = lacquer(&["run", "-a", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(err.contains("no backend"), "{err}");
    let (ok, _, err) = lacquer(&["run", "-b", "nohost"]);
    assert!(!ok);
    assert!(err.contains("host:port"), "{err}");
}

/// Starts `lacquer run -a ADDR -b ADDR` against a one-shot origin and fetches
/// through it.
#[test]
fn run_with_listen_and_backend_flags_needs_no_file() {
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in origin.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello",
                    );
                }
                line.clear();
            }
        }
    });
    let listen = free_addr().to_string();
    let admin = free_addr().to_string();
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-a",
            &listen,
            "-b",
            &origin_addr.to_string(),
            "-s",
            "16MiB",
            "-T",
            &admin,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    let answers: Vec<String> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&listen).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .collect();
    // The admin commands talk to it.
    let ban = lacquer(&["ban", "req.url ~ ^/nothing", "-T", &admin]);
    let bans = lacquer(&["bans", "-T", &admin]);
    let purge = lacquer(&["purge", "http://x/", "-T", &admin]);
    let purge_again = lacquer(&["purge", "http://x/", "-T", &admin]);
    let bad_ban = lacquer(&["ban", "req.nope == 1", "-T", &admin]);
    let by_key = lacquer(&[
        "purge", "--key", "k1", "--key", "k2", "--soft", "-T", &admin,
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ban.0 && ban.1.contains("ban 1 added"), "{ban:?}");
    assert!(
        bans.0 && bans.1.contains("req.url ~ \"^/nothing\""),
        "{bans:?}"
    );
    assert!(purge.0 && purge.1.contains("purged 1 object"), "{purge:?}");
    assert!(
        !purge_again.0 && purge_again.1.contains("nothing stored"),
        "{purge_again:?}"
    );
    assert!(
        !bad_ban.0 && bad_ban.1.contains("unknown field"),
        "{bad_ban:?}"
    );
    assert!(
        !by_key.0 && by_key.1.contains("nothing stored for 2 key(s)"),
        "{by_key:?}"
    );
    assert_eq!(answers.len(), 2, "lacquer did not come up");
    assert!(
        answers[0].ends_with("hello") && answers[0].contains("x-cache: MISS"),
        "{}",
        answers[0]
    );
    assert!(answers[1].contains("x-cache: HIT 1"), "{}", answers[1]);
}

/// One request on a new connection; the raw response text.
fn fetch(addr: &str, path: &str) -> String {
    fetch_with(addr, path, "")
}

/// One request with extra header lines (each ending in CRLF).
fn fetch_with(addr: &str, path: &str, headers: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: demo\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn the_demo_serves_the_fixture_site_and_prints_curl_lines() {
    let addr = free_addr().to_string();
    let mut child = Command::new(BIN)
        .args(["demo", "-a", &addr, "-T", &free_addr().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !printed.contains("/account") && Instant::now() < deadline {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        printed.push_str(&line);
    }
    let first = fetch(&addr, "/");
    let second = fetch(&addr, "/");
    let account = fetch(&addr, "/account");
    let shop = fetch_with(&addr, "/shop", "Cookie: cart=3\r\n");
    let shop_again = fetch_with(&addr, "/shop", "Cookie: cart=5\r\n");
    let conditional = {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: demo\r\nIf-None-Match: \"index-v1\"\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        printed.contains(&format!("curl -si http://{addr}/")),
        "{printed}"
    );
    assert!(
        printed.contains("/news") && printed.contains("/account"),
        "{printed}"
    );
    assert!(
        first.contains("x-cache: MISS") && first.contains("lacquer demo shop"),
        "{first}"
    );
    assert!(
        second.contains("x-cache: HIT 1") && second.contains("x-origin-hits: 1"),
        "{second}"
    );
    assert!(
        account.contains("x-cache: MISS") && account.contains("private, no-store"),
        "{account}"
    );
    assert!(conditional.starts_with("HTTP/1.1 304"), "{conditional}");
    // The ESI page: assembled from a cached price, a per-cookie cart and a
    // footer; the shell is a hit the second time, the cart follows the cookie.
    for (page, items) in [(&shop, "3 item(s)"), (&shop_again, "5 item(s)")] {
        assert!(
            page.contains("42.00 EUR") && page.contains(items) && page.contains("demo footer"),
            "{page}"
        );
        assert!(
            !page.contains("<esi:") && !page.contains("You see this only"),
            "{page}"
        );
    }
    assert!(shop_again.contains("x-cache: HIT"), "{shop_again}");
    assert!(printed.contains("/shop"), "{printed}");
}

/// `lacquer run` on `listen`, its backend a port nothing listens on,
/// once it accepts connections.
fn run_without_backend(listen: &str) -> std::process::Child {
    let child = Command::new(BIN)
        .args([
            "run",
            "-a",
            listen,
            "-b",
            "127.0.0.1:9",
            "-T",
            &free_addr().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(listen);
    child
}

/// SIGTERM, then a clean exit.
fn terminates_cleanly(mut child: std::process::Child) {
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let listen = free_addr().to_string();
    let child = run_without_backend(&listen);
    let health = fetch(&listen, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    terminates_cleanly(child);
}

/// Signals are watched before the listener opens: a SIGHUP the moment the
/// port answers (a reload right after start) reloads, and does not end the
/// process by the signal's default action.
#[test]
fn a_signal_right_after_start_is_handled() {
    for _ in 0..5 {
        let listen = free_addr().to_string();
        let mut child = run_without_backend(&listen);
        signal(&child, "HUP");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGHUP ended the process"
        );
        assert!(fetch(&listen, "/healthz").starts_with("HTTP/1.1 200"));
        terminates_cleanly(child);
    }
}

#[test]
fn access_log_and_stats() {
    let dir = scratch_dir("log");
    let conf = dir.join("log.toml");
    std::fs::write(&conf, "[server]\naccess_log = true\n").unwrap();
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-c",
            conf.to_str().unwrap(),
            "-a",
            &listen,
            "-b",
            "127.0.0.1:9",
            "-T",
            &admin,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    fetch(&listen, "/healthz");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let stats = lacquer(&["stats", "--count", "1", "-T", &admin]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("127.0.0.1 - - [") && line.contains("\"GET /healthz HTTP/1.1\" 200 "),
        "{line}"
    );
    assert!(
        line.trim_end().ends_with(|c: char| c.is_ascii_digit()),
        "{line}"
    );
    assert!(line.contains(" SYNTH "), "{line}");
    assert!(stats.0, "{stats:?}");
    assert!(
        stats
            .1
            .contains("lacquer_requests_total{outcome=\"synth\"}"),
        "{}",
        stats.1
    );
    assert!(stats.1.contains("per second"), "{}", stats.1);
}

#[test]
fn policies_are_checked_and_a_bad_one_refuses_to_start() {
    let dir = scratch_dir("vcl");
    let good = dir.join("good.vcl");
    std::fs::write(
        &good,
        "sub vcl_recv {\n    if (req.url ~ \"^/admin\") { return (pass); }\n}\n",
    )
    .unwrap();
    let bad = dir.join("bad.vcl");
    std::fs::write(
        &bad,
        "sub vcl_recv {\n    if (req.uri ~ \"^/admin\") { return (pass); }\n}\n",
    )
    .unwrap();
    let (ok, out, _) = lacquer(&["check", good.to_str().unwrap()]);
    assert!(ok && out.contains("good.vcl: ok"), "{out}");
    let directors = dir.join("directors.vcl");
    std::fs::write(
        &directors,
        "import directors;\nbackend a { .host = \"127.0.0.1\"; }\nbackend b { .host = \"127.0.0.1\"; }\n\
         sub vcl_init {\n    new rr = directors.round_robin();\n    rr.add_backend(a);\n    rr.add_backend(b);\n}\n\
         sub vcl_recv { set req.backend_hint = rr.backend(); }\n",
    )
    .unwrap();
    let (ok, out, err) = lacquer(&["check", directors.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("director rr = round_robin(a, b)"), "{out}");
    let (ok, _, err) = lacquer(&["check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.vcl:2:9"), "{err}");
    assert!(err.contains("^^^^^^^") && err.contains("req.url"), "{err}");
    let (ok, _, err) = lacquer(&[
        "run",
        "-b",
        "127.0.0.1:9",
        "-a",
        &free_addr().to_string(),
        "-T",
        &free_addr().to_string(),
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok, "started with a bad policy");
    assert!(err.contains("unknown variable"), "{err}");
}
