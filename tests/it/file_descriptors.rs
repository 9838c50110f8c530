//! Running out of file descriptors: the real binary, started under a small
//! RLIMIT_NOFILE, backs off instead of spinning on failed accepts, logs a
//! bounded number of lines, and serves again once descriptors are free. At
//! start-up it compares `server.max_connections` with the limit: it raises
//! the soft limit when the hard limit allows, and warns when it cannot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::*;

fn scratch(name: &str) -> PathBuf {
    scratch_dir("fds").join(name)
}

/// `lacquer ARGS` after the shell's `limits` (e.g. `ulimit -n 64`), with
/// its standard error written to `stderr`.
fn start_limited(limits: &str, args: &[&str], stderr: &Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{limits} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// One request on a new connection; the raw answer ("" when none came in
/// `wait`).
fn request(addr: &str, head: &str, wait: Duration) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.write_all(head.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn healthz(addr: &str, wait: Duration) -> String {
    request(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        wait,
    )
}

/// User + system CPU time the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at 3.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = clock_ticks_per_second();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` (the workspace forbids the
/// `unsafe` a libc call needs); 100, Linux's usual value, if that fails.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(100)
        .max(1)
}

/// The "Max open files" soft and hard limits of a process.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut values = line["Max open files".len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}

#[test]
fn out_of_descriptors_backs_off_quietly_and_recovers() {
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let log = scratch("emfile.log");
    let child = Running(start_limited(
        "ulimit -n 64",
        &["run", "-a", &listen, "-b", "127.0.0.1:9", "-T", &admin],
        &log,
    ));
    let pid = child.0.id();
    assert!(
        eventually_blocking(Duration::from_secs(10), || healthz(
            &listen,
            Duration::from_secs(2)
        )
        .starts_with("HTTP/1.1 200")),
        "lacquer did not come up"
    );
    let startup = std::fs::read_to_string(&log).unwrap();
    assert!(
        startup.contains("RLIMIT_NOFILE") && startup.contains("server.max_connections"),
        "no start-up warning about the descriptor limit:\n{startup}"
    );

    // Idle connections until lacquer has no descriptor left (64 in all),
    // and some waiting on the admin listener too.
    let mut held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&listen).unwrap())
        .collect();
    held.extend((0..5).map(|_| TcpStream::connect(&admin).unwrap()));
    wait_until_blocking("lacquer out of descriptors", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("out of file descriptors"))
    });
    // The scenario: 1.5 s out of descriptors, the CPU it takes measured.
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_time(pid) - before;
    assert!(
        used < Duration::from_millis(200),
        "lacquer used {used:?} of CPU in 1.5 s while out of descriptors"
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    let accept_lines = stderr.lines().filter(|l| l.contains("accept")).count();
    assert!(
        (1..=4).contains(&accept_lines),
        "{accept_lines} lines about failed accepts:\n{stderr}"
    );

    // Descriptors come back: both listeners serve again.
    drop(held);
    assert!(
        eventually_blocking(Duration::from_secs(5), || healthz(
            &listen,
            Duration::from_millis(500)
        )
        .starts_with("HTTP/1.1 200")),
        "client listener did not recover"
    );
    let counts = |_: ()| {
        request(
            &admin,
            "GET /counts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_millis(500),
        )
    };
    assert!(
        eventually_blocking(Duration::from_secs(5), || counts(())
            .starts_with("HTTP/1.1 200")),
        "admin listener did not recover"
    );
}

#[test]
fn the_soft_limit_is_raised_for_max_connections_when_the_hard_limit_allows() {
    let conf = scratch("raise.toml");
    std::fs::write(&conf, "[server]\nmax_connections = 1000\n").unwrap();
    let (listen, admin) = (free_addr().to_string(), free_addr().to_string());
    let log = scratch("raise.log");
    let child = Running(start_limited(
        "ulimit -Sn 64 && ulimit -Hn 4096",
        &[
            "run",
            "-c",
            conf.to_str().unwrap(),
            "-a",
            &listen,
            "-b",
            "127.0.0.1:9",
            "-T",
            &admin,
        ],
        &log,
    ));
    assert!(
        eventually_blocking(Duration::from_secs(10), || healthz(
            &listen,
            Duration::from_secs(2)
        )
        .starts_with("HTTP/1.1 200")),
        "lacquer did not come up"
    );
    // Two descriptors per connection (client and backend) and 64 spare.
    let (soft, hard) = open_files_limit(child.0.id());
    assert_eq!((soft.as_str(), hard.as_str()), ("2064", "4096"));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("RLIMIT_NOFILE") && stderr.contains("from 64 to 2064"),
        "{stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
}
