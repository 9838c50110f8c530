//! SIGTERM drains the real binary: `lacquer run` (one runtime per worker
//! thread) stops accepting, lets requests in flight finish — a slow backend
//! answer, and a body still streaming — and only then exits.
use crate::process::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// An origin that tells `arrived` when a request head has come in, then
/// waits `delay` before answering with a head and `chunks` body pieces
/// spaced by `gap`.
fn slow_origin(delay: Duration, chunks: usize, gap: Duration) -> (String, mpsc::Receiver<()>) {
    let (arrived, rx) = mpsc::channel();
    let arrived = Arc::new(Mutex::new(arrived));
    let addr = line_origin(move |_, s| {
        let _ = arrived.lock().map(|a| a.send(()));
        std::thread::sleep(delay);
        let len = chunks * 10;
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nCache-Control: no-store\r\n\r\n"
        );
        for i in 0..chunks {
            let _ = writeln!(s, "chunk-{i:03}");
            let _ = s.flush();
            std::thread::sleep(gap);
        }
    });
    (addr, rx)
}

fn start(backend: &str) -> (Child, String) {
    let listen = free_addr().to_string();
    let child = Command::new(BIN)
        .args([
            "run",
            "-a",
            &listen,
            "-b",
            backend,
            "-T",
            &free_addr().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    (child, listen)
}

fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Sends one GET and reads the whole answer (the connection closes after it).
fn get(addr: &str, path: &str) -> std::thread::JoinHandle<String> {
    let addr = addr.to_string();
    let path = path.to_string();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: drain.test\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

#[test]
fn sigterm_lets_a_slow_backend_answer_reach_the_client() {
    let (backend, arrived) = slow_origin(Duration::from_secs(2), 1, Duration::ZERO);
    let (mut child, listen) = start(&backend);
    let client = get(&listen, "/slow");
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the origin");
    sigterm(&child);
    // Draining: no new connection is accepted while the request finishes.
    wait_until_blocking("the listener closed", || {
        TcpStream::connect(&listen).is_err()
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the answer"
    );
    let answer = client.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "cut off: {answer:?}");
    assert!(answer.ends_with("chunk-000\n"), "body cut off: {answer:?}");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

#[test]
fn sigterm_lets_a_streaming_body_finish() {
    let (backend, arrived) = slow_origin(Duration::ZERO, 20, Duration::from_millis(100));
    let (mut child, listen) = start(&backend);
    let client = get(&listen, "/stream");
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the origin");
    // The scenario: SIGTERM comes while the body is streaming (3 of its 20
    // chunks, 100 ms apart, are out).
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let answer = client.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "cut off: {answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(body.len(), 200, "body cut off: {answer:?}");
    assert!(body.ends_with("chunk-019\n"), "{body:?}");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}
