//! Policies loaded from files: `include`, a vcl_recv split over two files
//! (run in order), `backend` declarations, and `lacquer check` reporting
//! the backends and every error.
use crate::common::*;
use crate::process::{scratch_dir, BIN};
use lacquer::policy::vcl::VclPolicy;
use std::process::Command;
use std::sync::Arc;

const MAIN: &str = r#"vcl 4.1;
import std;

backend app {
    .host = "127.0.0.1";
    .port = "8080";
    .probe = { .url = "/healthz"; .interval = 2s; }
}

include "conf/first.vcl";

sub vcl_recv {
    set req.http.x-order = req.http.x-order + ",main";
    if (req.url ~ "^/private") {
        return (pass);
    }
}
"#;

const FIRST: &str = r#"# included before main.vcl's vcl_recv: runs first
sub vcl_recv {
    set req.http.x-order = "first";
}
"#;

/// Writes the policy with its backend on `port`.
fn write_policy(name: &str, port: u16) -> std::path::PathBuf {
    let dir = scratch_dir(name);
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let main = MAIN.replace("\"8080\"", &format!("\"{port}\""));
    std::fs::write(dir.join("main.vcl"), main).unwrap();
    std::fs::write(dir.join("conf/first.vcl"), FIRST).unwrap();
    dir.join("main.vcl")
}

#[tokio::test]
async fn included_vcl_recv_bodies_run_in_order() {
    let origin = Origin::start().await;
    cacheable(&origin, "/page");
    // The policy's own backend is the origin (it replaces `-b`).
    let path = write_policy("include-order", origin.addr.port());
    let policy = Arc::new(VclPolicy::load(&path).expect("policy loads"));
    assert_eq!(policy.program().backends()[0].name, "app");
    let config = Arc::new(config_for(crate::process::free_addr()));
    let proxy = lacquer::pipeline::Proxy::with_policy(config.clone(), policy).expect("proxy");
    let lq = lacquer::server::start_with(config, proxy)
        .await
        .expect("start");
    assert_eq!(get(lq.addr(), "/page").await.status, 200);
    assert_eq!(
        origin.last("/page").unwrap().headers["x-order"],
        "first,main"
    );
}

#[test]
fn check_prints_backends_and_every_error() {
    let path = write_policy("include-check", 8080);
    let out = Command::new(BIN)
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("backend app: 127.0.0.1:8080, probe inline (/healthz every 2s, 3/8 good)"),
        "{stdout}"
    );

    let dir = path.parent().unwrap();
    std::fs::write(
        dir.join("conf/first.vcl"),
        "sub vcl_recv {\n    set req.http.a = req.uri;\n}\nsub vcl_deliver {\n    set resp.http.b = obj.ag;\n}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let first = stderr.find("conf/first.vcl:2:22").expect(&stderr);
    let second = stderr.find("conf/first.vcl:5:23").expect(&stderr);
    assert!(first < second, "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}

#[test]
fn vcl_init_runs_at_load_and_its_fail_refuses_the_policy() {
    let ok = "sub vcl_init { return (ok); }\nsub vcl_pipe { return (pipe); }\n";
    assert!(VclPolicy::compile(ok, "init.vcl").is_ok());
    let fail = "sub vcl_init {\n    return (fail);\n}\n";
    let err = VclPolicy::compile(fail, "init.vcl")
        .unwrap_err()
        .to_string();
    assert!(err.contains("vcl_init returned fail"), "{err}");
}
