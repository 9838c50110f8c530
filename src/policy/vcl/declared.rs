//! A VCL's `backend` and `probe` declarations as lacquer's backend
//! settings: the policy's backends replace `-b` / `[[backend]]`.

use std::time::Duration;

use crate::config::{BackendConfig, ProbeConfig, Seconds};

/// The backends `decls` declare, in order (`backend NAME none;` and Unix
/// socket backends, which lacquer cannot reach, are left out with a
/// warning).
pub fn backends(decls: &[vcl_lite::Backend]) -> Vec<BackendConfig> {
    decls.iter().filter_map(backend).collect()
}

fn backend(decl: &vcl_lite::Backend) -> Option<BackendConfig> {
    if decl.none {
        return None;
    }
    let Some(host) = &decl.host else {
        tracing::warn!(backend = %decl.name, "a backend without .host (a Unix socket?) is not supported; left out");
        return None;
    };
    let defaults = BackendConfig::default();
    let secs = |v: Option<f64>, default: Seconds| {
        v.filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(default, |s| Seconds(Duration::from_secs_f64(s)))
    };
    Some(BackendConfig {
        name: decl.name.clone(),
        address: format!("{}:{}", host_part(host), port(decl.port.as_deref())),
        connect_timeout: secs(decl.connect_timeout, defaults.connect_timeout),
        first_byte_timeout: secs(decl.first_byte_timeout, defaults.first_byte_timeout),
        between_bytes_timeout: secs(decl.between_bytes_timeout, defaults.between_bytes_timeout),
        max_connections: decl
            .max_connections
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(defaults.max_connections),
        idle_timeout: defaults.idle_timeout,
        probe: decl.probe.as_ref().map(probe),
        ..defaults
    })
}

/// An IPv6 literal gets its brackets for `host:port`.
fn host_part(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `.port` as written: a number, `http` / `https`, or absent (80).
fn port(port: Option<&str>) -> u16 {
    match port.map(str::trim) {
        None | Some("") | Some("http") => 80,
        Some("https") => 443,
        Some(p) => p.parse().unwrap_or(80),
    }
}

fn probe(decl: &vcl_lite::Probe) -> ProbeConfig {
    // `.request` is a whole request: lacquer sends a GET of its target.
    let url = decl
        .request
        .as_deref()
        .and_then(|r| r.lines().next())
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or(&decl.url)
        .to_string();
    let clamp = |n: i64| u32::try_from(n.clamp(1, 64)).unwrap_or(1);
    ProbeConfig {
        url,
        interval: Seconds(Duration::from_secs_f64(decl.interval.max(0.01))),
        timeout: Seconds(Duration::from_secs_f64(decl.timeout.max(0.01))),
        window: clamp(decl.window),
        threshold: clamp(decl.threshold),
        expected_status: u16::try_from(decl.expected_response).unwrap_or(200),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_become_backend_settings() {
        let program = vcl_lite::compile(
            r#"
probe health { .request = "HEAD /ping HTTP/1.1" "Host: app"; .interval = 1s; .window = 5; .threshold = 3; }
backend app { .host = "10.0.0.7"; .port = "8080"; .first_byte_timeout = 90s; .max_connections = 50; .probe = health; }
backend web { .host = "::1"; }
backend nothing none;
sub vcl_recv { return (hash); }
"#,
            "t.vcl",
        )
        .expect("compiles");
        let b = backends(program.backends());
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].name.as_str(), b[0].address.as_str()),
            ("app", "10.0.0.7:8080")
        );
        assert_eq!(b[0].first_byte_timeout.0, Duration::from_secs(90));
        assert_eq!(b[0].max_connections, 50);
        let p = b[0].probe.as_ref().expect("probe");
        assert_eq!((p.url.as_str(), p.window, p.threshold), ("/ping", 5, 3));
        assert_eq!(p.interval.0, Duration::from_secs(1));
        assert_eq!(b[1].address, "[::1]:80");
        assert!(b[1].probe.is_none());
    }
}
