//! PROXY protocol trust, on the real binary: with `server.proxy_protocol`,
//! only `server.proxy_protocol_from` may send a PROXY header; a client that
//! connects from anywhere else cannot claim an address inside `purge_acl`.
//! 127.0.0.1 and 127.0.0.2 are both loopback, and tell the two apart.
use crate::process::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Lacquer {
    _child: Running,
    listen: String,
    stderr: std::path::PathBuf,
}

fn start(name: &str, backend: &str, extra: &str) -> Lacquer {
    let dir = scratch_dir(&format!("proxy-trust-{name}"));
    let listen = free_addr().to_string();
    let settings = dir.join("lacquer.toml");
    std::fs::write(
        &settings,
        format!(
            "[server]\nlisten = [\"{listen}\"]\nproxy_protocol = true\n{extra}\n\
             [[backend]]\naddress = \"{backend}\"\n[admin]\nlisten = \"{}\"\n",
            free_addr()
        ),
    )
    .unwrap();
    let stderr = dir.join("stderr");
    let child = Command::new(BIN)
        .args(["run", "--config", settings.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    Lacquer {
        _child: Running(child),
        listen,
        stderr,
    }
}

/// Connects from `source` (an address on lo), sends a PROXY v1 header
/// claiming `claimed` and then `request`; returns what came back.
fn exchange(source: &str, to: &str, claimed: &str, request: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{source}:0").parse::<SocketAddr>().unwrap())
            .unwrap();
        let mut s = socket.connect(to.parse().unwrap()).await.unwrap();
        let dst: SocketAddr = to.parse().unwrap();
        let header = format!("PROXY TCP4 {claimed} {} 40000 {}\r\n", dst.ip(), dst.port());
        let _ = s.write_all(header.as_bytes()).await;
        let _ = s.write_all(request.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    })
}

fn get(source: &str, to: &str) -> String {
    exchange(
        source,
        to,
        "203.0.113.9",
        "GET /page HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
}

fn purge(source: &str, to: &str) -> String {
    // Claims to come from loopback, which is inside the default purge_acl.
    exchange(
        source,
        to,
        "127.0.0.1",
        "PURGE /page HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn an_untrusted_source_cannot_forge_a_purging_client() {
    let (backend, hits) = counting_origin();
    // Trusting 127.0.0.1/32 only, so that 127.0.0.2 plays an outside client.
    let lq = start(
        "narrow",
        &backend,
        "proxy_protocol_from = [\"127.0.0.1/32\"]",
    );
    let first = get("127.0.0.1", &lq.listen);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.ends_with("hit 1"), "{first}");

    // An untrusted source forging a loopback client is closed unanswered,
    // and the object stays cached.
    let forged = purge("127.0.0.2", &lq.listen);
    assert_eq!(forged, "", "an untrusted source was answered");
    let again = get("127.0.0.1", &lq.listen);
    assert!(
        again.ends_with("hit 1"),
        "purged by a forged header: {again}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Its plain requests are not served either.
    assert_eq!(get("127.0.0.2", &lq.listen), "");

    // The trusted source's PURGE (claiming loopback) works.
    let purged = purge("127.0.0.1", &lq.listen);
    assert!(purged.starts_with("HTTP/1.1 200"), "{purged}");
    assert!(get("127.0.0.1", &lq.listen).ends_with("hit 2"));

    let log = std::fs::read_to_string(&lq.stderr).unwrap();
    assert!(
        log.contains("connection from outside server.proxy_protocol_from closed"),
        "{log}"
    );
}

#[test]
fn proxy_protocol_from_names_the_trusted_hosts() {
    let (backend, _) = counting_origin();
    let lq = start(
        "other",
        &backend,
        "proxy_protocol_from = [\"127.0.0.2/32\"]",
    );
    let trusted = get("127.0.0.2", &lq.listen);
    assert!(trusted.starts_with("HTTP/1.1 200"), "{trusted}");
    assert_eq!(
        get("127.0.0.1", &lq.listen),
        "",
        "untrusted 127.0.0.1 was served"
    );
}

#[test]
fn check_warns_when_proxy_protocol_trusts_the_default() {
    let dir = scratch_dir("proxy-check");
    let file = dir.join("default.toml");
    std::fs::write(
        &file,
        "[server]\nproxy_protocol = true\n[[backend]]\naddress = \"127.0.0.1:8080\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: server.proxy_protocol is on without server.proxy_protocol_from"),
        "{err}"
    );
    std::fs::write(
        &file,
        "[server]\nproxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/24\"]\n\
         [[backend]]\naddress = \"127.0.0.1:8080\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nproxy_protocol_from = [\"haproxy1\"]\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:"), "{err}");
}
