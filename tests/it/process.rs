//! Test support for tests that drive the real `lacquer` binary: free
//! loopback addresses, scratch directories, a plain-thread origin, and a
//! child process that is killed when the test ends.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lacquer");

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// Waits (up to 10 s) until something accepts connections on `addr`.
pub fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A directory of this test process's own under the temp dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lacquer-{name}-{}", std::process::id()));
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
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "lacquer did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
