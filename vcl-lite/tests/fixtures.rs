//! Production-style policies under `tests/fixtures/` (backends, probes,
//! a director, includes, a vcl_recv in two files) compile, and their
//! backends and directors are handed to the host.

use std::path::Path;

use vcl_lite::{compile_file, Program};

fn load(rel: &str) -> Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let mut read = |p: &Path| std::fs::read_to_string(p);
    match compile_file(&path, &mut read) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn shop_policy_compiles_with_its_backend_and_inline_probe() {
    let p = load("shop/default.vcl");
    let [b] = p.backends() else {
        panic!("{:?}", p.backends())
    };
    assert_eq!(b.name, "default");
    assert_eq!(b.host.as_deref(), Some("app.internal"));
    assert_eq!(b.port.as_deref(), Some("8080"));
    assert_eq!(b.first_byte_timeout, Some(600.0));
    let probe = b.probe.as_ref().expect("probe");
    assert_eq!(probe.name, None);
    assert_eq!(probe.url, "/health_check.php");
    assert_eq!((probe.window, probe.threshold, probe.initial), (10, 5, 4));
    assert!(p.probes().is_empty());
}

#[test]
fn cms_policy_compiles_with_shared_probe_and_none_backend() {
    let p = load("cms/main.vcl");
    let names: Vec<&str> = p.backends().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "maintenance"]);
    let web1 = &p.backends()[0];
    assert_eq!(web1.connect_timeout, Some(1.5));
    assert_eq!(web1.between_bytes_timeout, Some(10.0));
    assert_eq!(web1.max_connections, Some(300));
    let probe = web1.probe.as_ref().expect("probe");
    assert_eq!(probe.name.as_deref(), Some("healthcheck"));
    assert_eq!(
        probe.request.as_deref(),
        Some("GET /status HTTP/1.1\r\nHost: cms.example\r\nConnection: close\r\n\r\n")
    );
    assert_eq!(probe.expected_response, 204);
    assert_eq!(p.backends()[1].probe, web1.probe);
    assert!(p.backends()[2].none);
    assert_eq!(p.probes().len(), 1);
    let [cluster] = p.directors() else {
        panic!("{:?}", p.directors())
    };
    assert_eq!(
        (cluster.name.as_str(), cluster.kind),
        ("cluster", vcl_lite::DirectorKind::RoundRobin)
    );
    let members: Vec<&str> = cluster.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(members, ["web1", "web2"]);
}
