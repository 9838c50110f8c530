//! SIGHUP on the real binary: `lacquer run --config FILE -f POLICY` reads
//! the file again with the command line's flags over it, and the policy.
use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lacquer");

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep_ms(50).await;
    }
}

#[tokio::test]
async fn sighup_reloads_settings_and_policy_keeping_command_line_flags() {
    let origin = Origin::start().await;
    origin.route("/x", |seen, _| {
        let tag = seen.header_or_none("x-policy");
        Reply::ok(tag)
    });
    let dir = std::env::temp_dir().join(format!("lacquer-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (settings, policy) = (dir.join("lacquer.toml"), dir.join("policy.vcl"));
    let write_settings = |via: &str| {
        // The backend named here is wrong: `-b` on the command line wins.
        let text =
            format!("[server]\nvia_name = \"{via}\"\n\n[[backend]]\naddress = \"127.0.0.1:9\"\n");
        std::fs::write(&settings, text).unwrap();
    };
    let write_policy = |tag: &str| {
        let text = format!("sub vcl_recv {{ set req.http.x-policy = \"{tag}\"; }}\n");
        std::fs::write(&policy, text).unwrap();
    };
    write_settings("first");
    write_policy("p1");
    let (port, admin_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&settings)
        .args(["-a", &listen, "-T", &format!("127.0.0.1:{admin_port}")])
        .args(["-b", &origin.addr.to_string(), "-f"])
        .arg(&policy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lacquer");
    let lq = Killed(child);
    let addr = listen.parse().unwrap();
    wait_for("lacquer to listen", async || {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    let first = get(addr, "/x").await;
    assert_eq!(
        (first.text().as_str(), first.header("via")),
        ("p1", Some("1.1 first"))
    );

    write_settings("second");
    write_policy("p2");
    let hup = Command::new("kill")
        .args(["-HUP", &lq.0.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for("the reload", async || {
        get(addr, "/x").await.header("via") == Some("1.1 second")
    })
    .await;
    assert_eq!(get(addr, "/x").await.text(), "p2", "the policy too");
    assert_eq!(origin.hits("/x"), origin.total(), "-b still wins");
}
