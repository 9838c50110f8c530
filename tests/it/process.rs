//! Test support for tests that drive the real `lacquer` binary: free
//! loopback addresses, scratch directories, a plain-thread origin, and a
//! child process that is killed when the test ends.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use crate::poll::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lacquer");

/// A loopback address with a port that was free a moment ago (for a
/// process, or a listener, started later by the test).
///
/// The port is taken from just below the kernel's ephemeral range, never
/// handed out twice by this process: a port from `bind(…:0)` could be given
/// to another test's listener or outgoing connection between this call and
/// the child's own bind (CI saw a lacquer child fail to start that way).
pub fn free_addr() -> SocketAddr {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let (low, span) = reserved_ports();
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (n + std::process::id() as usize) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().expect("addr");
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The ports [`free_addr`] hands out: the 8,000 below the first ephemeral
/// port (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 by default).
fn reserved_ports() -> (usize, usize) {
    const SPAN: usize = 8000;
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or(32768);
    (first_ephemeral.saturating_sub(SPAN).max(1024), SPAN)
}

/// Sends signal `name` (`TERM`, `HUP`, …) to `child` with kill(1).
pub fn signal(child: &Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{name} failed");
}

/// Waits (up to [`DEADLINE`]) until something accepts connections on
/// `addr`.
pub fn wait_listening(addr: &str) {
    wait_until_blocking(&format!("something listening on {addr}"), || {
        TcpStream::connect(addr).is_ok()
    });
}

/// A directory of this test process's own, under cargo's scratch space for
/// integration tests (`target/tmp`, not the system's temp dir: runs leave
/// nothing behind outside `target/`).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("lacquer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// An origin on plain threads: for every request head that arrives (its
/// lines, without the blank one), `answer` writes the response to the
/// stream. Returns the origin's address.
pub fn line_origin(
    answer: impl Fn(&str, &mut TcpStream) + Send + Sync + Clone + 'static,
) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let Ok(read) = s.try_clone() else { return };
                let mut r = BufReader::new(read);
                let mut head = String::new();
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        answer(&head, &mut s);
                        head.clear();
                    } else {
                        head.push_str(&line);
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// A line origin answering every request with a cacheable
/// (`max-age=300`) "hit `n`", n counting the requests; its address and the
/// count.
pub fn counting_origin() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let addr = line_origin(move |_, s| {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("hit {n}");
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    (addr, hits)
}

/// A child process killed (and reaped) when the test ends, passed or not.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for `child` to exit; panics when it does not.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let mut status = None;
    let exited = eventually_blocking(limit, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    assert!(exited, "lacquer did not exit within {limit:?}");
    status.expect("exited")
}
