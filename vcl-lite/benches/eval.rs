//! Time per request of running policies: `cargo bench -p vcl-lite --bench eval`.
//! The goal is well under 1 µs for the default policy (vcl_recv + vcl_hash).
//!
//! Each iteration runs the listed subroutines on a fresh request (built
//! outside the timed part), as lacquer does for every request it receives;
//! policies that rewrite headers therefore always see the original ones.

use std::borrow::Cow;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use vcl_lite::{compile, Context, Sub, Value, Var};

/// A host like lacquer's: a few fields and a small header list.
struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    ip: IpAddr,
    key: Vec<u8>,
}

impl Context for Req {
    fn get(&self, var: &Var) -> Option<Value<'_>> {
        match var {
            Var::ReqMethod => Some(Value::Str(Cow::Borrowed(&self.method))),
            Var::ReqUrl => Some(Value::Str(Cow::Borrowed(&self.url))),
            Var::ReqHttp(h) => self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(h.name()))
                .map(|(_, v)| Value::Str(Cow::Borrowed(v))),
            _ => None,
        }
    }
    fn set(&mut self, var: &Var, value: Value<'_>) -> Result<(), String> {
        let text = value.to_string();
        match var {
            Var::ReqUrl => self.url = text,
            Var::ReqHttp(h) => {
                self.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(h.name()));
                self.headers.push((h.name().to_string(), text));
            }
            _ => {}
        }
        Ok(())
    }
    fn unset(&mut self, var: &Var) {
        if let Var::ReqHttp(h) = var {
            self.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(h.name()));
        }
    }
    fn client_ip(&self) -> IpAddr {
        self.ip
    }
    fn hash_data(&mut self, data: &str) {
        self.key.extend_from_slice(data.as_bytes());
        self.key.push(0);
    }
    fn synthetic(&mut self, _: &str) {}
}

fn request() -> Req {
    Req {
        method: "GET".into(),
        url: "/assets/app.css?v=3".into(),
        headers: vec![
            ("host".into(), "www.example.com".into()),
            ("accept-encoding".into(), "gzip, deflate, br".into()),
            ("cookie".into(), "_ga=GA1.2.3; session=abc".into()),
            ("user-agent".into(), "bench".into()),
        ],
        ip: IpAddr::from([10, 1, 2, 3]),
        key: Vec::with_capacity(64),
    }
}

/// The load bench runs this policy too (`lacquer-policy`, `varnish-policy`).
const PRODUCTION: &str = include_str!("production.vcl");

fn bench_policies(c: &mut Criterion) {
    let cases: [(&str, &str, &[Sub]); 9] = [
        (
            "default.vcl (recv + hash)",
            vcl_lite::DEFAULT_POLICY,
            &[Sub::Recv, Sub::Hash],
        ),
        ("default.vcl (recv)", vcl_lite::DEFAULT_POLICY, &[Sub::Recv]),
        ("default.vcl (hash)", vcl_lite::DEFAULT_POLICY, &[Sub::Hash]),
        ("empty vcl_deliver", "sub vcl_deliver { }", &[Sub::Deliver]),
        (
            "examples/purge_acl.vcl (recv)",
            include_str!("../examples/purge_acl.vcl"),
            &[Sub::Recv],
        ),
        (
            "examples/accept_encoding.vcl (recv)",
            include_str!("../examples/accept_encoding.vcl"),
            &[Sub::Recv],
        ),
        (
            "examples/static_cookies.vcl (recv)",
            include_str!("../examples/static_cookies.vcl"),
            &[Sub::Recv],
        ),
        // A ~300-line policy as shops run them: what a hit costs in it.
        (
            "production.vcl (recv + hash)",
            PRODUCTION,
            &[Sub::Recv, Sub::Hash],
        ),
        (
            "production.vcl (recv + hash + deliver)",
            PRODUCTION,
            &[Sub::Recv, Sub::Hash, Sub::Deliver],
        ),
    ];
    let mut group = c.benchmark_group("eval");
    for (name, source, subs) in cases {
        let program = match compile(source, name) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        // Once, untimed: every subroutine runs without error, and the
        // default policy returns what lacquer expects for a GET.
        let mut req = request();
        for sub in subs {
            if let Err(e) = program.run(*sub, &mut req) {
                panic!("{name}: {e}");
            }
        }
        if source == vcl_lite::DEFAULT_POLICY && subs.contains(&Sub::Hash) {
            assert_eq!(req.key, b"/assets/app.css?v=3\0www.example.com\0");
        }
        if source == PRODUCTION && subs.contains(&Sub::Hash) {
            // A static file: cookies gone, no device or language variant,
            // the scheme the policy defaulted.
            assert_eq!(req.key, b"/assets/app.css?v=3\0www.example.com\0http\0");
            assert!(req.headers.iter().all(|(n, _)| n != "cookie"));
        }
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                request,
                |req| {
                    for sub in subs {
                        black_box(program.run(black_box(*sub), black_box(&mut *req)).ok());
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_policies);
criterion_main!(benches);
