//! Failures of every step become responses in one place: the client gets
//! the status and a fixed public reason, through `vcl_synth` like any
//! synthetic answer; what went wrong inside goes to the log only.
use crate::common::*;

const FAILING: &str = r#"
sub vcl_recv {
    if (req.url == "/loop") { return (restart); }
}
sub vcl_backend_fetch {
    if (bereq.url == "/abandoned") { return (abandon); }
}
sub vcl_deliver {
    if (req.url == "/deliver-fails") { return (fail); }
}
sub vcl_synth {
    set resp.http.X-Synth = resp.status + " " + resp.reason;
}
"#;

#[tokio::test]
async fn failures_get_a_fixed_public_reason_through_vcl_synth() {
    let origin = Origin::start().await;
    origin.route("/deliver-fails", |_, _| Reply::ok("never shown"));
    let lq = with_policy(origin.addr, FAILING).await;

    // The policy's internals (which hook gave up) stay in the log.
    let abandoned = get(lq.addr(), "/abandoned").await;
    assert_eq!(abandoned.status, 503);
    assert_eq!(
        abandoned.header("x-synth"),
        Some("503 backend fetch failed")
    );
    assert!(
        !abandoned.text().contains("vcl_backend_fetch"),
        "{}",
        abandoned.text()
    );

    let failed = get(lq.addr(), "/deliver-fails").await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.header("x-synth"), Some("503 policy failed"));
    assert!(!failed.text().contains("never shown"));

    // Too many restarts is a failure like the others: through vcl_synth.
    let looped = get(lq.addr(), "/loop").await;
    assert_eq!(looped.status, 503);
    assert_eq!(looped.header("x-synth"), Some("503 too many restarts"));
    assert_eq!(origin.hits("/abandoned") + origin.hits("/loop"), 0);
}

#[tokio::test]
async fn a_backend_error_names_no_backend() {
    // A port nothing listens on (free_addr never hands it out again).
    let addr = crate::process::free_addr();
    let origin = Origin::start().await;
    let mut config = config_for(addr);
    config.backend[0].name = "app-internal-7".into();
    let lq = lacquer(config).await;
    let got = get(lq.addr(), "/").await;
    assert_eq!(got.status, 502);
    assert!(
        got.text().contains("backend fetch failed"),
        "{}",
        got.text()
    );
    assert!(!got.text().contains("app-internal-7"), "{}", got.text());
    assert!(
        !got.text().contains(&addr.port().to_string()),
        "{}",
        got.text()
    );
    drop(origin);
}
