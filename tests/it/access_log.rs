//! The access log never stalls requests: on the real binary, with standard
//! output a pipe that nobody reads, requests keep being answered and the
//! lines that did not fit are counted as dropped.
use crate::process::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_stalled_stdout_drops_log_lines_instead_of_requests() {
    let dir = scratch_dir("alog");
    let conf = dir.join("log.toml");
    std::fs::write(
        &conf,
        "[server]\naccess_log = true\naccess_log_queue = 16\nthreads = 1\n",
    )
    .unwrap();
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-c",
            conf.to_str().unwrap(),
            "-a",
            &listen,
            "-b",
            &counting_origin().0,
            "-T",
            &admin,
        ])
        // Piped and never read: the pipe (64 KiB) fills after a few dozen
        // lines of these long URLs.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    let pad = "p".repeat(3000);
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.set_nodelay(true).unwrap();
    for i in 0..200 {
        let request = format!("GET /page?n={i}&pad={pad} HTTP/1.1\r\nHost: log.test\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        r.read_line(&mut status)
            .unwrap_or_else(|e| panic!("request {i} not answered: {e}"));
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "request {i}: {status:?}"
        );
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
    }
    let mut a = TcpStream::connect(&admin).unwrap();
    a.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    a.read_to_string(&mut metrics).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lacquer_access_log_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped counter:\n{metrics}"));
    assert!(dropped > 0, "{metrics}");
}

#[test]
fn client_triggered_log_lines_are_rate_limited() {
    let dir = scratch_dir("rate-limit");
    let stderr = dir.join("stderr");
    let listen = free_addr().to_string();
    let mut child = Command::new(BIN)
        .args([
            "run",
            "-a",
            &listen,
            "-b",
            &counting_origin().0,
            "-T",
            &free_addr().to_string(),
        ])
        .env("RUST_LOG", "lacquer=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&listen);
    let started = Instant::now();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let seconds = started.elapsed().as_secs() + 1;
    wait_until_blocking("a refusal logged", || {
        std::fs::read_to_string(&stderr).is_ok_and(|log| log.contains("bad request refused"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&stderr).unwrap();
    let lines = log.matches("bad request refused").count();
    assert!(lines >= 1, "{log}");
    assert!(
        lines as u64 <= 10 * (seconds + 1),
        "{lines} lines in {seconds} s:\n{log}"
    );
}
