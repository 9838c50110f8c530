//! Policies are untrusted input: compiling anything must return, quickly,
//! without panicking or overflowing the stack.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ";",
    "\"",
    "{\"",
    "\"}",
    "/*",
    "*/",
    "#",
    "//",
    "if",
    "else",
    "elseif",
    "set",
    "unset",
    "return",
    "call",
    "sub",
    "acl",
    "vcl_recv",
    "vcl_hash",
    "req.url",
    "req.http.X",
    "beresp.ttl",
    "client.ip",
    "~",
    "!~",
    "==",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "=",
    "10s",
    "1.5",
    "99999999999999999999",
    "\"(\"",
    "\"10.0.0.0\"/8",
    "regsub(",
    ",",
    "é",
    "\t",
    "\n",
    " ",
    "synth(",
    "hash_data(",
    "std.integer(",
    "pass",
    "\"\"\"",
];

/// Compiles with a stand-in resolver: a mutated ACL entry may be any host
/// name, and tests send no DNS queries.
fn offline(src: &str, file: &str) -> Result<vcl_lite::Program, vcl_lite::Error> {
    vcl_lite::with_resolver(
        |name| Err(format!("{name}: no DNS in tests")),
        || vcl_lite::compile(src, file),
    )
}

fn sources() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![fs::read_to_string(root.join("default.vcl")).expect("default.vcl")];
    for dir in ["examples", "tests/errors"] {
        let mut paths: Vec<_> = fs::read_dir(root.join(dir))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "vcl"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| fs::read_to_string(p).expect("read")));
    }
    out
}

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(4) {
            0 if at < s.len() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                s.drain(at..end);
            }
            1 => s.truncate(at),
            _ => {
                let piece = PIECES[rng.below(PIECES.len())];
                for (i, c) in piece.chars().enumerate() {
                    s.insert((at + i).min(s.len()), c);
                }
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn mutated_policies_never_panic() {
    let sources = sources();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut compiled = 0;
    for round in 0..4000 {
        let base = &sources[round % sources.len()];
        let src = mutate(&mut rng, base);
        let result = std::panic::catch_unwind(|| offline(&src, "fuzz.vcl"));
        match result {
            Ok(Ok(_)) => compiled += 1,
            Ok(Err(e)) => {
                let text = e.to_string();
                assert!(text.starts_with("error: "), "{text}");
                assert!(text.contains("--> fuzz.vcl:"), "{text}");
            }
            Err(_) => panic!("compile panicked on:\n{src}"),
        }
    }
    assert!(compiled > 0);
}

#[test]
fn random_token_soup_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let n = rng.below(60);
        let src: String = (0..n)
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect::<Vec<_>>()
            .join(if rng.below(2) == 0 { " " } else { "" });
        let wrapped = format!("sub vcl_recv {{ {src} }}");
        for s in [&src, &wrapped] {
            if std::panic::catch_unwind(|| offline(s, "soup.vcl")).is_err() {
                panic!("compile panicked on:\n{s}");
            }
        }
    }
}

fn quick(src: &str) -> Result<vcl_lite::Program, vcl_lite::Error> {
    let start = Instant::now();
    let result = vcl_lite::compile(src, "big.vcl");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?} on {} bytes",
        start.elapsed(),
        src.len()
    );
    result
}

#[test]
fn pathological_inputs_are_refused_quickly() {
    let mb = 1 << 20;
    assert!(quick(&"{".repeat(mb)).is_err());
    assert!(quick(&format!("sub vcl_recv {{ {} }}", "{".repeat(mb))).is_err());
    assert!(quick(&format!("sub vcl_recv {{ set req.url = {}", "(".repeat(mb))).is_err());
    assert!(quick(&format!(
        "sub vcl_recv {{ if ({}true) {{}} }}",
        "!".repeat(mb)
    ))
    .is_err());
    assert!(quick(&format!(
        "sub vcl_recv {{ set req.url = {}1; }}",
        "-".repeat(mb)
    ))
    .is_err());
    assert!(quick(&"}".repeat(mb)).is_err());
    assert!(quick(&"\"".repeat(mb)).is_err());
    assert!(quick(&"/*".repeat(mb)).is_err());
    // Many blocks on one long line.
    let line = format!(
        "sub vcl_recv {{ {}{} }}",
        " ".repeat(mb / 2),
        "if (true) { } ".repeat(20_000)
    );
    assert!(quick(&line).is_ok());
    // Long but flat: 20 000 alternatives and 20 000 concatenations.
    let or: Vec<String> = (0..20_000)
        .map(|i| format!("req.url == \"/{i}\""))
        .collect();
    assert!(quick(&format!(
        "sub vcl_recv {{ if ({}) {{ return (pass); }} }}",
        or.join(" || ")
    ))
    .is_ok());
    let cat: Vec<String> = (0..20_000).map(|i| format!("\"{i}\"")).collect();
    assert!(quick(&format!(
        "sub vcl_recv {{ set req.http.x = {}; }}",
        cat.join(" + ")
    ))
    .is_ok());
    // Many subroutines in one long chain.
    let mut chain = String::from("sub vcl_recv { call s0; }\n");
    for i in 0..50_000 {
        chain.push_str(&format!("sub s{i} {{ call s{}; }}\n", i + 1));
    }
    chain.push_str("sub s50000 { }\n");
    assert_eq!(quick(&chain).unwrap_err().message(), "call chain too deep");
}

#[test]
fn deepest_accepted_expression_compiles_on_a_small_stack() {
    // 1 MiB for unoptimised builds; an optimised build needs about 128 KiB.
    let parens = |n: usize| format!("{}req.url{}", "(".repeat(n), ")".repeat(n));
    let src = format!(
        "sub vcl_recv {{ if (req.url ~ \"a\" && {} == \"\") {{ return (pass); }} }}",
        parens(60)
    );
    let bangs = format!(
        "sub vcl_recv {{ if ({}true) {{ return (pass); }} }}",
        "!".repeat(62)
    );
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            vcl_lite::compile(&src, "deep.vcl").expect("compiles");
            vcl_lite::compile(&bangs, "deep.vcl").expect("compiles");
        })
        .expect("spawn")
        .join()
        .expect("no overflow");
}

#[test]
fn deepest_allowed_policy_runs() {
    // 64 nested calls, each inside nested blocks, still run on a small stack
    // (512 KiB unoptimised, far less optimised).
    let mut src = String::from("sub vcl_recv { call s0; }\n");
    for i in 0..63 {
        src.push_str(&format!(
            "sub s{i} {{ if (true) {{ if (true) {{ call s{}; }} }} }}\n",
            i + 1
        ));
    }
    src.push_str(&format!(
        "sub s63 {{ {}return (pass);{} }}\n",
        "if (true) {".repeat(40),
        "}".repeat(40)
    ));
    let program = vcl_lite::compile(&src, "deep.vcl").expect("compiles");
    struct Nothing;
    impl vcl_lite::Context for Nothing {
        fn get(&self, _: &vcl_lite::Var) -> Option<vcl_lite::Value<'_>> {
            None
        }
        fn set(&mut self, _: &vcl_lite::Var, _: vcl_lite::Value<'_>) -> Result<(), String> {
            Ok(())
        }
        fn unset(&mut self, _: &vcl_lite::Var) {}
        fn client_ip(&self) -> std::net::IpAddr {
            std::net::IpAddr::from([127, 0, 0, 1])
        }
        fn hash_data(&mut self, _: &str) {}
        fn synthetic(&mut self, _: &str) {}
    }
    let action = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || program.run(vcl_lite::Sub::Recv, &mut Nothing))
        .expect("spawn")
        .join()
        .expect("no overflow");
    assert_eq!(action, Ok(Some(vcl_lite::Action::Pass)));
}

/// Found by `cargo fuzz run vcl_compile`: an error at the end of input
/// after a comment ending in `\r\n` put the caret past its line (a panic).
#[test]
fn an_error_after_a_crlf_comment_at_the_end_is_reported() {
    let e = vcl_lite::compile("sub\tsu\n#\r\n", "crlf.vcl").expect_err("incomplete");
    let text = e.to_string();
    assert!(text.contains("crlf.vcl:"), "{text}");
}
