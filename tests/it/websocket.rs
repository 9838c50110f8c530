//! Pipes: a request asking to switch protocols (WebSockets) is tunnelled to
//! the backend once it answers `101`; bytes then flow both ways untouched.
use crate::common::*;
use lacquer::config::Seconds;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that switches to an echo protocol when asked to upgrade (and
/// answers `426` on `/refuse`). Keeps every request head it read.
pub(crate) async fn echo_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                seen.lock().unwrap().push(head.clone());
                if head.starts_with("GET /refuse") {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope",
                        )
                        .await;
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    )
                    .await;
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// Reads a message head (through the blank line) as text.
pub(crate) async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

const UPGRADE: &str = "Host: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Opens a WebSocket handshake for `path` through lacquer; returns the
/// stream and the response head.
pub(crate) async fn handshake(lq: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(lq).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\n{UPGRADE}").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    (stream, head)
}

async fn echoed(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .expect("echo within 5 s")
        .unwrap();
    back
}

#[tokio::test]
async fn a_websocket_is_piped_to_the_backend_without_a_policy() {
    let (backend, heads) = echo_backend().await;
    let lq = lacquer(config_for(backend)).await;
    let (mut ws, head) = handshake(lq.addr(), "/chat").await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(lower.contains("upgrade: websocket"), "{head}");
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert_eq!(echoed(&mut ws, b"ping-1").await, b"ping-1");
    assert_eq!(
        echoed(&mut ws, &[0u8, 255, 13, 10, 0]).await,
        [0u8, 255, 13, 10, 0]
    );

    let seen = heads.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one backend connection: {seen:?}");
    let backend_head = seen[0].to_ascii_lowercase();
    assert!(
        backend_head.starts_with("get /chat http/1.1"),
        "{backend_head}"
    );
    assert!(
        backend_head.contains("upgrade: websocket"),
        "{backend_head}"
    );
    assert!(
        backend_head.contains("connection: upgrade"),
        "{backend_head}"
    );
    assert!(
        backend_head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{backend_head}"
    );
    assert!(
        backend_head.contains("x-forwarded-for: 127.0.0.1"),
        "{backend_head}"
    );
    assert_eq!(metric(&lq, "lacquer_requests_total{outcome=\"pipe\"}"), 1);
}

#[tokio::test]
async fn a_backend_that_does_not_switch_is_relayed() {
    let (backend, _) = echo_backend().await;
    let lq = lacquer(config_for(backend)).await;
    let (mut ws, head) = handshake(lq.addr(), "/refuse").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    let mut body = [0u8; 4];
    ws.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"nope");
}

#[tokio::test]
async fn a_quiet_pipe_is_closed_after_pipe_timeout() {
    let (backend, _) = echo_backend().await;
    let mut config = config_for(backend);
    config.server.pipe_timeout = Seconds(Duration::from_millis(300));
    let lq = lacquer(config).await;
    let (mut ws, head) = handshake(lq.addr(), "/chat").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed(&mut ws, b"still here").await, b"still here");
    // Silence is the scenario: the pipe closes on its own.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn return_pipe_from_the_policy_tunnels_an_upgrade() {
    let (backend, heads) = echo_backend().await;
    let lq = with_policy(
        backend,
        r#"
sub vcl_recv {
    if (req.http.Host == "chat.example") { return (pipe); }
    return (pass);
}
"#,
    )
    .await;
    let (mut ws, head) = handshake(lq.addr(), "/room").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed(&mut ws, b"hello").await, b"hello");
    assert_eq!(heads.lock().unwrap().len(), 1);
}

/// A pipe goes to the backend `req.backend_hint` names (a director's
/// choice), not the default one.
#[tokio::test]
async fn a_pipe_goes_to_the_backend_hint() {
    let (default, default_heads) = echo_backend().await;
    let (chat, chat_heads) = echo_backend().await;
    let policy = format!(
        r#"
import directors;
backend web {{ .host = "127.0.0.1"; .port = "{}"; }}
backend chat {{ .host = "127.0.0.1"; .port = "{}"; }}
sub vcl_init {{
    new ws = directors.fallback();
    ws.add_backend(chat);
    ws.add_backend(web);
}}
sub vcl_recv {{
    if (req.http.Upgrade) {{
        set req.backend_hint = ws.backend();
        return (pipe);
    }}
}}
"#,
        default.port(),
        chat.port()
    );
    let lq = with_policy(default, &policy).await;
    let (mut ws, head) = handshake(lq.addr(), "/room").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed(&mut ws, b"hello").await, b"hello");
    assert_eq!(chat_heads.lock().unwrap().len(), 1);
    assert_eq!(default_heads.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn vcl_pipe_changes_the_backend_head_or_answers_itself() {
    let (backend, heads) = echo_backend().await;
    let lq = with_policy(
        backend,
        r#"
sub vcl_recv {
    if (req.http.Upgrade ~ "(?i)websocket") { return (pipe); }
}
sub vcl_pipe {
    if (req.url ~ "^/closed") {
        return (synth(403, "Closed room"));
    }
    set bereq.http.X-Piped = "yes";
    unset bereq.http.X-Forwarded-For;
    set bereq.url = regsub(bereq.url, "^/room", "/ws/room");
}
"#,
    )
    .await;
    let (mut ws, head) = handshake(lq.addr(), "/room").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed(&mut ws, b"hi").await, b"hi");
    let seen = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(seen.contains("x-piped: yes"), "{seen}");
    assert!(!seen.contains("x-forwarded-for"), "{seen}");
    assert!(seen.starts_with("get /ws/room http/1.1"), "{seen}");

    let (_, head) = handshake(lq.addr(), "/closed").await;
    assert!(head.starts_with("HTTP/1.1 403 Closed room"), "{head}");
    assert_eq!(
        heads.lock().unwrap().len(),
        1,
        "the refused pipe reached the backend"
    );
}

#[tokio::test]
async fn an_unknown_method_is_piped_through_vcl_pipe_as_a_pass() {
    let origin = Origin::start().await;
    origin.route("/thing", |seen, n| {
        let piped = seen.headers.contains_key("x-piped");
        Reply::ok(format!("{} v{n} piped={piped}", seen.method))
    });
    // Varnish's built-in vcl_recv pipes methods it does not know.
    let lq = with_policy(
        origin.addr,
        r#"
sub vcl_pipe {
    set bereq.http.X-Piped = "1";
}
sub vcl_pass {
    return (synth(500, "vcl_pass must not run for a pipe"));
}
"#,
    )
    .await;
    let got = send(lq.addr(), "LOCK", "/thing", &[], "").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "LOCK v1 piped=true");
    assert_eq!(origin.hits("/thing"), 1);
}

// Multi-threaded: the test blocks on the log reader while the echo backend
// (on this runtime) closes its side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_line_of_a_pipe_comes_when_it_closes_with_its_bytes() {
    use crate::process::{free_addr, scratch_dir, wait_listening, BIN};
    use std::io::BufRead;
    let (backend, _) = echo_backend().await;
    let dir = scratch_dir("pipe-log");
    let conf = dir.join("log.toml");
    std::fs::write(&conf, "[server]\naccess_log = true\nthreads = 1\n").unwrap();
    let listen = free_addr();
    let mut child = std::process::Command::new(BIN)
        .args([
            "run",
            "-c",
            conf.to_str().unwrap(),
            "-a",
            &listen.to_string(),
        ])
        .args(["-b", &backend.to_string(), "-T", &free_addr().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    wait_listening(&listen.to_string());
    let (mut ws, head) = handshake(listen, "/chat").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed(&mut ws, b"0123456789").await, b"0123456789");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "no line while the pipe is open"
    );
    drop(ws);
    let line = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("a line once the pipe closed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("\"GET /chat HTTP/1.1\" 101 10 ")
            && line.contains(" PIPE ")
            && line.ends_with(" up=10"),
        "{line}"
    );
}
