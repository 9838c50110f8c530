//! SIGTERM drains the real binary: `lacquer run` (one runtime per worker
//! thread) stops accepting, lets requests in flight finish — a slow backend
//! answer, and a body still streaming — and only then exits.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lacquer");

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// An origin that tells `arrived` when a request head has come in, then
/// waits `delay` before answering with a head and `chunks` body pieces
/// spaced by `gap`.
fn slow_origin(delay: Duration, chunks: usize, gap: Duration) -> (String, mpsc::Receiver<()>) {
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = origin.local_addr().unwrap().to_string();
    let (arrived, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in origin.incoming().flatten() {
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        let _ = arrived.send(());
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
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, rx)
}

fn start(backend: &str) -> (Child, String) {
    let listen = free_addr();
    let child = Command::new(BIN)
        .args(["run", "-a", &listen, "-b", backend, "-T", &free_addr()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&listen).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, listen)
}

fn sigterm(child: &Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "lacquer did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(&listen).is_err(), "still accepting");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the answer"
    );
    let answer = client.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "cut off: {answer:?}");
    assert!(answer.ends_with("chunk-000\n"), "body cut off: {answer:?}");
    assert!(wait_exit(&mut child).success());
}

#[test]
fn sigterm_lets_a_streaming_body_finish() {
    let (backend, arrived) = slow_origin(Duration::ZERO, 20, Duration::from_millis(100));
    let (mut child, listen) = start(&backend);
    let client = get(&listen, "/stream");
    arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the origin");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let answer = client.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "cut off: {answer:?}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(body.len(), 200, "body cut off: {answer:?}");
    assert!(body.ends_with("chunk-019\n"), "{body:?}");
    assert!(wait_exit(&mut child).success());
}
