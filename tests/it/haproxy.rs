//! The production shape, for real and out of process: HAProxy (balance uri,
//! consistent hashing, httpchk, send-proxy-v2) in front of two `lacquer run`
//! processes (PROXY protocol, probes, round-robin director, cluster peers),
//! in front of two `lacquer origin` processes (the demo app). Nodes and apps
//! are killed with SIGKILL. Needs the `haproxy` binary (installed by
//! `.ci/run`); skipped when it is missing unless LACQUER_REQUIRE_HAPROXY=1.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{free_addr, scratch_dir, wait_until, BIN};
/// The demo origin's `/style.css`, cached an hour (any query string).
const CSS: &str = include_str!("../../fixtures/demo/style.css");
/// Sent by the test straight to a node, which expects a PROXY header.
const PROXY_V1: &str = "PROXY TCP4 127.0.0.9 127.0.0.1 40000 80\r\n";

fn haproxy_bin() -> Option<String> {
    for p in [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ] {
        if std::path::Path::new(p).exists() {
            return Some(p.to_string());
        }
    }
    if std::env::var("LACQUER_REQUIRE_HAPROXY").as_deref() == Ok("1") {
        panic!("haproxy is required (LACQUER_REQUIRE_HAPROXY=1) but not installed");
    }
    eprintln!("haproxy not installed: skipping (set LACQUER_REQUIRE_HAPROXY=1 to fail instead)");
    None
}

/// The processes of the topology, each logging to a file in `dir`. Dropping
/// it (also when the test panics) kills and reaps every process still
/// running; on a panic it prints the end of each log first.
struct Topology {
    dir: PathBuf,
    procs: Vec<Proc>,
}

struct Proc {
    name: String,
    child: Child,
    killed: bool,
}

impl Topology {
    fn new() -> Topology {
        let dir = scratch_dir("haproxy");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Topology {
            dir,
            procs: Vec::new(),
        }
    }

    fn spawn(&mut self, name: &str, program: &str, args: &[&str]) {
        let log = std::fs::File::create(self.log(name)).unwrap();
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "lacquer=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            killed: false,
        });
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// SIGKILL, then wait until the process is gone (its ports are closed).
    fn kill(&mut self, name: &str) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        p.killed = true;
    }

    /// Panics (with its log) when a process has exited on its own.
    fn check_running(&mut self) {
        for p in self.procs.iter_mut().filter(|p| !p.killed) {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", p.name)));
                panic!("{} exited ({status}):\n{}", p.name, log.unwrap_or_default());
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
        }
        for p in &mut self.procs {
            let _ = p.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", p.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- last lines of {}'s log ---", p.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn haproxy_config(front: SocketAddr, nodes: &[SocketAddr], socket: &Path) -> String {
    // As deploy/haproxy.cfg, with loopback addresses and quick checks (and
    // a short connect timeout: it is also the pause before a retry).
    let mut cfg = format!(
        "global\n    maxconn 1000\n    stats socket {} level admin\n\
         defaults\n    mode http\n    option http-keep-alive\n    option redispatch\n    retries 2\n\
         \x20   timeout connect 250ms\n    timeout client 10s\n    timeout server 10s\n\
         frontend www\n    bind {front}\n    default_backend lacquer\n\
         backend lacquer\n    balance uri whole\n    hash-type consistent\n\
         \x20   option httpchk GET /healthz\n    http-check expect status 200\n\
         \x20   default-server send-proxy-v2 check inter 100ms fall 2 rise 1\n",
        socket.display()
    );
    for (i, n) in nodes.iter().enumerate() {
        cfg.push_str(&format!("    server node{} {n}\n", i + 1));
    }
    cfg
}

fn node_config(
    name: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    peer_admin: SocketAddr,
    apps: &[SocketAddr],
) -> String {
    let mut cfg = format!(
        "[server]\nlisten = [\"{listen}\"]\nproxy_protocol = true\nvia_name = \"{name}\"\n\
         threads = 1\ndrain_timeout = \"1s\"\n\n"
    );
    for (i, app) in apps.iter().enumerate() {
        cfg.push_str(&format!(
            "[[backend]]\nname = \"app{}\"\naddress = \"{app}\"\nconnect_timeout = \"1s\"\n\
             [backend.probe]\nurl = \"/health\"\ninterval = \"100ms\"\ntimeout = \"1s\"\n\
             window = 3\nthreshold = 2\nexpected_status = 200\n\n",
            i + 1
        ));
    }
    cfg.push_str(&format!(
        "[director]\nkind = \"round-robin\"\n\n\
         [invalidation]\npurge_acl = [\"127.0.0.1/8\"]\n\n\
         [admin]\nlisten = \"{admin}\"\n\n\
         [cluster]\npeers = [\"{peer_admin}\"]\nsecret = \"haproxy-test-shared-secret\"\n\
         retry_max = \"1s\"\n"
    ));
    cfg
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    /// The node that answered (from `Via: 1.1 node1`).
    fn via(&self) -> &str {
        self.header("via").unwrap_or("")
    }

    /// The app server that made the answer (`lacquer origin --name`).
    fn origin(&self) -> &str {
        self.header("x-origin-name").unwrap_or("")
    }
}

/// One request on a fresh connection from the client address `from` (an
/// address of 127/8, so the PROXY protocol's address is distinguishable
/// from HAProxy's own), with `prefix` (a PROXY header or nothing) first.
/// None when the connection fails or no whole answer comes back.
async fn request_from(
    from: &str,
    to: SocketAddr,
    prefix: &str,
    method: &str,
    path: &str,
) -> Option<Resp> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.ok()?;
    let head = format!(
        "{prefix}{method} {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    parse(&raw, method == "HEAD")
}

/// Through HAProxy from `from`.
async fn via_haproxy(from: &str, front: SocketAddr, method: &str, path: &str) -> Resp {
    match request_from(from, front, "", method, path).await {
        Some(r) => r,
        None => panic!("{method} {path} through HAProxy: no answer"),
    }
}

/// Straight to a node, with the PROXY header it expects.
async fn direct(node: SocketAddr, path: &str) -> Resp {
    match request_from("127.0.0.1", node, PROXY_V1, "GET", path).await {
        Some(r) => r,
        None => panic!("GET {path} from {node}: no answer"),
    }
}

/// The status HAProxy gives each server of backend `lacquer` (UP, DOWN,
/// ...), from `show stat` on its stats socket.
fn haproxy_servers(socket: &Path) -> BTreeMap<String, String> {
    use std::io::{Read, Write};
    let mut out = String::new();
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"show stat\n");
        let _ = s.read_to_string(&mut out);
    }
    let mut lines = out.lines();
    let Some(head) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return BTreeMap::new();
    };
    let col = |name: &str| head.split(',').position(|c| c == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return BTreeMap::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| c.get(px) == Some(&"lacquer") && c.get(sv) != Some(&"BACKEND"))
        .filter_map(|c| Some((c.get(sv)?.to_string(), c.get(st)?.to_string())))
        .collect()
}

/// A node's admin API (no PROXY header there).
async fn admin(node_admin: SocketAddr, path: &str) -> Option<String> {
    let r = request_from("127.0.0.1", node_admin, "", "GET", path).await?;
    (r.status == 200).then(|| r.text())
}

/// The health column of `app` in an admin `GET /backends` answer
/// (name, address, healthy/sick, recent probes; tab-separated).
fn health_of<'a>(backends: &'a str, app: &str) -> Option<&'a str> {
    backends
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&app))
        .and_then(|cols| cols.get(2).copied())
}

fn parse(raw: &[u8], head_only: bool) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked && !head_only {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        if !head_only && body.len() != len.parse::<usize>().ok()? {
            return None;
        }
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn haproxy_two_lacquer_processes_two_origin_processes() {
    let Some(bin) = haproxy_bin() else { return };
    let started = Instant::now();
    let mut topo = Topology::new();

    // Two app servers: `lacquer origin`, the demo app, each with a name.
    let apps = [free_addr(), free_addr()];
    for (i, app) in apps.iter().enumerate() {
        let name = format!("app{}", i + 1);
        topo.spawn(
            &name,
            BIN,
            &["origin", "-a", &app.to_string(), "--name", &name],
        );
    }

    for (i, app) in apps.iter().enumerate() {
        wait_until(&format!("app{} up", i + 1), async || {
            topo.check_running();
            let r = request_from("127.0.0.1", *app, "", "GET", "/health").await;
            r.is_some_and(|r| r.status == 200 && r.origin() == format!("app{}", i + 1))
        })
        .await;
    }

    // Two cache nodes: `lacquer run --config`, peers of each other.
    let nodes = [free_addr(), free_addr()];
    let admins = [free_addr(), free_addr()];
    for i in 0..2 {
        let name = format!("node{}", i + 1);
        let cfg = node_config(&name, nodes[i], admins[i], admins[1 - i], &apps);
        let path = topo.write(&format!("{name}.toml"), &cfg);
        topo.spawn(&name, BIN, &["run", "--config", s(&path)]);
    }

    for (i, admin_addr) in admins.iter().enumerate() {
        wait_until(
            &format!("node{} up, both apps healthy", i + 1),
            async || {
                topo.check_running();
                let Some(b) = admin(*admin_addr, "/backends").await else {
                    return false;
                };
                health_of(&b, "app1") == Some("healthy") && health_of(&b, "app2") == Some("healthy")
            },
        )
        .await;
    }

    // HAProxy in front, once the nodes answer.
    let front = free_addr();
    let socket = topo.dir.join("haproxy.sock");
    let cfg = topo.write("haproxy.cfg", &haproxy_config(front, &nodes, &socket));
    topo.spawn("haproxy", &bin, &["-f", s(&cfg), "-db"]);
    let both_up = BTreeMap::from([
        ("node1".to_string(), "UP".to_string()),
        ("node2".to_string(), "UP".to_string()),
    ]);
    wait_until("haproxy up, both nodes UP", async || {
        topo.check_running();
        haproxy_servers(&socket) == both_up
            && request_from("127.0.0.1", front, "", "GET", "/healthz")
                .await
                .is_some_and(|r| r.status == 200)
    })
    .await;

    // An upgrade (WebSockets and the like) goes through HAProxy and a node
    // to an app, which echoes what it receives once switched.
    let mut tunnel = tokio::net::TcpStream::connect(front).await.unwrap();
    tunnel
        .write_all(b"GET /echo HTTP/1.1\r\nHost: shop.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && tunnel.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tunnel.write_all(b"through haproxy").await.unwrap();
    let mut echo = [0u8; 15];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut echo))
        .await
        .expect("echo within 5 s")
        .unwrap();
    assert_eq!(&echo, b"through haproxy");
    drop(tunnel);

    // The same URL always lands on the same node; URLs spread over both
    // nodes, and the nodes' misses over both apps.
    let urls: Vec<String> = (0..20).map(|i| format!("/style.css?v={i}")).collect();
    let mut owner: BTreeMap<&str, String> = BTreeMap::new();
    let mut apps_used = BTreeSet::new();
    for url in &urls {
        let first = via_haproxy("127.0.0.3", front, "GET", url).await;
        assert_eq!(first.status, 200, "{url}: {first:?}");
        assert_eq!(first.x_cache(), "MISS", "{url}: {first:?}");
        assert_eq!(first.text(), CSS, "{url}");
        assert!(
            first.via() == "1.1 node1" || first.via() == "1.1 node2",
            "{url}: {first:?}"
        );
        for _ in 0..3 {
            let again = via_haproxy("127.0.0.3", front, "GET", url).await;
            assert_eq!(again.status, 200, "{url}: {again:?}");
            assert_eq!(again.via(), first.via(), "{url} moved to another node");
            assert!(again.x_cache().starts_with("HIT"), "{url}: {again:?}");
            assert_eq!(again.origin(), first.origin(), "{url}");
            assert_eq!(again.text(), CSS, "{url}");
        }
        owner.insert(url, first.via().to_string());
        apps_used.insert(first.origin().to_string());
    }
    let nodes_used: BTreeSet<&String> = owner.values().collect();
    assert_eq!(nodes_used.len(), 2, "all URLs went to one node: {owner:?}");
    assert_eq!(
        apps_used,
        BTreeSet::from(["app1".to_string(), "app2".to_string()]),
        "misses did not spread over both apps"
    );

    // The client address lacquer sees is the real one (PROXY protocol v2):
    // it forwards it to the app in X-Forwarded-For.
    for from in ["127.0.0.2", "127.0.0.3"] {
        let r = via_haproxy(from, front, "GET", "/echo/headers").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(!r.x_cache().starts_with("HIT"), "{r:?}");
        let text = r.text();
        let xff: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("x-forwarded-for: "))
            .collect();
        assert_eq!(xff, [from], "the app saw:\n{text}");
    }

    // One PURGE through HAProxy takes effect on both nodes.
    let purged = "/style.css?purge-me";
    for node in nodes {
        let stored = direct(node, purged).await;
        assert_eq!(stored.status, 200, "{stored:?}");
        let hit = direct(node, purged).await;
        assert!(hit.x_cache().starts_with("HIT"), "not stored: {hit:?}");
        assert_eq!(hit.text(), CSS);
    }
    let purge = via_haproxy("127.0.0.2", front, "PURGE", purged).await;
    assert_eq!(purge.status, 200, "{purge:?}");
    for (i, node) in nodes.iter().enumerate() {
        wait_until(&format!("purge effective on node{}", i + 1), async || {
            let r = direct(*node, purged).await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.via(), format!("1.1 node{}", i + 1));
            r.x_cache() == "MISS"
        })
        .await;
    }

    // A killed app server is marked sick by the probe and skipped.
    let mut before = BTreeSet::new();
    for _ in 0..4 {
        let r = via_haproxy("127.0.0.3", front, "GET", "/echo/headers").await;
        assert_eq!(r.status, 200, "{r:?}");
        before.insert(r.origin().to_string());
    }
    assert_eq!(
        before.len(),
        2,
        "round-robin did not use both apps: {before:?}"
    );
    topo.kill("app1");
    for (i, admin_addr) in admins.iter().enumerate() {
        wait_until(&format!("app1 sick on node{}", i + 1), async || {
            let b = admin(*admin_addr, "/backends").await.unwrap_or_default();
            health_of(&b, "app1") == Some("sick") && health_of(&b, "app2") == Some("healthy")
        })
        .await;
    }
    for i in 0..6 {
        let r = via_haproxy("127.0.0.3", front, "GET", "/echo/headers").await;
        assert_eq!(r.status, 200, "request {i} with app1 down: {r:?}");
        assert_eq!(r.origin(), "app2", "request {i} with app1 down");
        let url = format!("/style.css?after-app1={i}");
        let r = via_haproxy("127.0.0.3", front, "GET", &url).await;
        assert_eq!(r.status, 200, "{url} with app1 down: {r:?}");
        assert_eq!(r.x_cache(), "MISS", "{url}");
        assert_eq!(r.origin(), "app2", "{url}");
        assert_eq!(r.text(), CSS);
    }

    // A killed node is routed around: every URL is answered by node2, at
    // once (HAProxy retries a refused connection on the other node), and
    // node2's own URLs are still cached there.
    topo.kill("node1");
    for url in &urls {
        let r = via_haproxy("127.0.0.3", front, "GET", url).await;
        assert_eq!(r.status, 200, "{url} with node1 down: {r:?}");
        assert_eq!(r.via(), "1.1 node2", "{url}");
        assert_eq!(r.text(), CSS, "{url}");
        if owner[url.as_str()] == "1.1 node2" {
            assert!(r.x_cache().starts_with("HIT"), "{url}: {r:?}");
        } else {
            assert_eq!(r.origin(), "app2", "{url}: app1 is down");
        }
    }
    wait_until("haproxy marks node1 DOWN", async || {
        haproxy_servers(&socket).get("node1").map(String::as_str) == Some("DOWN")
    })
    .await;
    topo.check_running();
    eprintln!("haproxy end-to-end took {:?}", started.elapsed());
}
