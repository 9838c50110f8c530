//! SIGHUP on the real binary: `lacquer run --config FILE -f POLICY` reads
//! the file again with the command line's flags over it, and the policy.
use crate::common::*;
use std::process::{Command, Stdio};

use crate::process::{free_addr, scratch_dir, signal, Running, BIN};

#[tokio::test]
async fn sighup_reloads_settings_and_policy_keeping_command_line_flags() {
    let origin = Origin::start().await;
    origin.route("/x", |seen, _| {
        let tag = seen.header_or_none("x-policy");
        Reply::ok(tag)
    });
    let dir = scratch_dir("sighup");
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
    let listen = free_addr().to_string();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&settings)
        .args(["-a", &listen, "-T", &free_addr().to_string()])
        .args(["-b", &origin.addr.to_string(), "-f"])
        .arg(&policy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lacquer");
    let lq = Running(child);
    let addr = listen.parse().unwrap();
    wait_until("lacquer to listen", async || {
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
    signal(&lq.0, "HUP");
    wait_until("the reload", async || {
        get(addr, "/x").await.header("via") == Some("1.1 second")
    })
    .await;
    assert_eq!(get(addr, "/x").await.text(), "p2", "the policy too");
    assert_eq!(origin.hits("/x"), origin.total(), "-b still wins");
}
