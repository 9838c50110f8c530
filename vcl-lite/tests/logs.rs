//! What vcl-lite logs (through `tracing`): `+log` ACL matches, `-pedantic`
//! fixes, skipped ACL entries, and backtracking patterns that give up.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use vcl_lite::{compile, with_resolver, Context, Sub, Value, Var};

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a subscriber that records every event; returns the text.
fn logged(f: impl FnOnce()) -> String {
    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = lines.0.lock().expect("lock").clone();
    String::from_utf8(bytes).expect("utf-8")
}

/// A request from `ip` with a URL; headers are kept.
struct Req {
    ip: IpAddr,
    url: String,
    header: Option<String>,
}

impl Context for Req {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        match var {
            Var::ReqUrl => Some(Value::Str(self.url.as_str().into())),
            Var::ReqHttp(_) => self.header.as_deref().map(|h| Value::Str(h.into())),
            _ => None,
        }
    }
    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        if let Var::ReqHttp(_) = var {
            self.header = Some(value.to_string());
        }
        Ok(())
    }
    fn unset(&mut self, _: &Var) {}
    fn client_ip(&self) -> IpAddr {
        self.ip
    }
    fn hash_data(&mut self, _: &str) {}
    fn synthetic(&mut self, _: &str) {}
}

fn req(ip: &str, url: &str) -> Req {
    Req {
        ip: ip.parse().expect("ip"),
        url: url.to_string(),
        header: None,
    }
}

#[test]
fn acl_flags_and_skipped_entries_are_logged() {
    let policy = r#"
acl office +log -pedantic {
    "10.1.2.3"/8;
    ! "10.9.0.0"/16;
    ( "gone.example" );
}
acl quiet { "192.0.2.0"/24; }
sub vcl_recv {
    if (client.ip ~ office || client.ip ~ quiet) {
        return (pass);
    }
}"#;
    let mut program = None;
    let compiling = logged(|| {
        program = Some(
            with_resolver(
                |_| Err("not found".to_string()),
                || compile(policy, "t.vcl"),
            )
            .expect("compiles"),
        );
    });
    assert!(
        compiling.contains("changed to \"10.0.0.0\"/8 (-pedantic)"),
        "{compiling}"
    );
    assert!(
        compiling.contains("ACL entry skipped") && compiling.contains("gone.example"),
        "{compiling}"
    );
    let program = program.expect("compiled");
    let run = |ip: &str| {
        let mut r = req(ip, "/");
        let mut action = None;
        let text = logged(|| action = program.run(Sub::Recv, &mut r).expect("runs"));
        (action.is_some(), text)
    };
    let (pass, text) = run("10.200.0.1");
    assert!(pass);
    assert!(
        text.contains("MATCH") && text.contains("\"10.1.2.3\"/8 fixed: 10.0.0.0/8"),
        "{text}"
    );
    let (pass, text) = run("10.9.1.1");
    assert!(!pass);
    assert!(text.contains("NEG_MATCH"), "{text}");
    // `quiet` has no +log: only `office`'s NO MATCH is logged.
    let (pass, text) = run("192.0.2.5");
    assert!(pass);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("NO MATCH") && text.contains("acl=office"),
        "{text}"
    );
}

#[test]
fn a_backtracking_pattern_that_gives_up_is_logged() {
    let policy = r#"
sub vcl_recv {
    if (req.url ~ "^/(?:(a|aa)+\1c|a+b)") {
        return (pass);
    }
}"#;
    let program = compile(policy, "t.vcl").expect("compiles");
    let mut short = req("192.0.2.1", "/aab");
    let text = logged(|| assert!(program.run(Sub::Recv, &mut short).expect("runs").is_some()));
    assert_eq!(text, "");
    let mut long = req("192.0.2.1", &format!("/{}b", "a".repeat(40)));
    let text = logged(|| assert!(program.run(Sub::Recv, &mut long).expect("runs").is_none()));
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("gave up"), "{text}");
    assert!(text.contains(r"(a|aa)+\1c"), "{text}");
}
