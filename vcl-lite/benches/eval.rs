//! Time per request of running policies: `cargo bench -p vcl-lite`.
//! The goal is well under 1 µs for the default policy (vcl_recv + vcl_hash).

use std::borrow::Cow;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

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
    fn set(&mut self, var: &Var, value: Value<'static>) -> Result<(), String> {
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

fn bench(name: &str, source: &str, subs: &[Sub]) {
    let program = match compile(source, name) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let iterations = 200_000u32;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut reqs: Vec<Req> = (0..1000).map(|_| request()).collect();
        let start = Instant::now();
        for i in 0..iterations {
            let req = &mut reqs[(i % 1000) as usize];
            for sub in subs {
                black_box(program.run(*sub, req).ok());
            }
            req.key.clear();
        }
        let per = start.elapsed().as_secs_f64() * 1e9 / f64::from(iterations);
        best = best.min(per);
    }
    println!("{name:<40} {best:>8.1} ns/request");
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap_or_default();
    bench(
        "default.vcl (recv + hash)",
        vcl_lite::DEFAULT_POLICY,
        &[Sub::Recv, Sub::Hash],
    );
    bench("default.vcl (recv)", vcl_lite::DEFAULT_POLICY, &[Sub::Recv]);
    bench("default.vcl (hash)", vcl_lite::DEFAULT_POLICY, &[Sub::Hash]);
    bench("empty vcl_deliver", "sub vcl_deliver { }", &[Sub::Deliver]);
    bench(
        "examples/purge_acl.vcl (recv)",
        &read("examples/purge_acl.vcl"),
        &[Sub::Recv],
    );
    bench(
        "examples/accept_encoding.vcl (recv)",
        &read("examples/accept_encoding.vcl"),
        &[Sub::Recv],
    );
    bench(
        "examples/static_cookies.vcl (recv)",
        &read("examples/static_cookies.vcl"),
        &[Sub::Recv],
    );
}
