//! `include`: files in memory, errors naming the included file.

use std::collections::HashMap;
use std::path::Path;

use vcl_lite::{compile_file, LoadError, Program};

fn load(files: &[(&str, &str)], main: &str) -> Result<Program, LoadError> {
    let files: HashMap<String, String> = files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut read = |p: &Path| {
        files
            .get(&p.display().to_string())
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    };
    compile_file(Path::new(main), &mut read)
}

fn error(files: &[(&str, &str)], main: &str) -> String {
    match load(files, main) {
        Ok(_) => panic!("compiled"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn included_text_replaces_the_directive() {
    let p = load(
        &[
            ("etc/main.vcl", "vcl 4.1;\ninclude \"conf/acl.vcl\";\nsub vcl_recv { if (client.ip ~ purgers) { return (purge); } }\n"),
            ("etc/conf/acl.vcl", "acl purgers { \"localhost\"; }\n"),
        ],
        "etc/main.vcl",
    )
    .unwrap();
    assert!(p.defines(vcl_lite::Sub::Recv));
}

#[test]
fn errors_in_an_included_file_name_it() {
    let e = error(
        &[
            ("main.vcl", "include \"sub.vcl\";\nsub vcl_recv { }\n"),
            ("sub.vcl", "\nsub vcl_hash {\n    set req.uri = \"x\";\n}\n"),
        ],
        "main.vcl",
    );
    assert!(e.contains("--> sub.vcl:3:9"), "{e}");
    assert!(e.contains(" 3 |     set req.uri = \"x\";"), "{e}");
}

#[test]
fn errors_after_an_include_point_into_the_main_file() {
    let e = error(
        &[
            (
                "main.vcl",
                "include \"a.vcl\";\n\nsub vcl_recv { set req.uri = \"x\"; }\n",
            ),
            ("a.vcl", "acl a { \"localhost\"; }\n# two\n# lines\n"),
        ],
        "main.vcl",
    );
    assert!(e.contains("--> main.vcl:3:20"), "{e}");
}

#[test]
fn cycles_and_missing_files_are_refused() {
    let e = error(
        &[
            ("a.vcl", "include \"b.vcl\";\n"),
            ("b.vcl", "\ninclude \"a.vcl\";\n"),
        ],
        "a.vcl",
    );
    assert!(
        e.contains("`include` cycle: `a.vcl` → `b.vcl` → `a.vcl`"),
        "{e}"
    );
    assert!(e.contains("--> b.vcl:2:9"), "{e}");
    let e = error(&[("a.vcl", "include \"nope.vcl\";\n")], "a.vcl");
    assert!(e.contains("cannot read `nope.vcl`"), "{e}");
    let e = error(&[("a.vcl", "include nope;\n")], "a.vcl");
    assert!(e.contains("expected a file name in double quotes"), "{e}");
}

#[test]
fn include_depth_is_limited() {
    let mut files: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                format!("f{i}.vcl"),
                format!("include \"f{}.vcl\";\n", i + 1),
            )
        })
        .collect();
    files.push(("f40.vcl".into(), String::new()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let e = error(&refs, "f0.vcl");
    assert!(e.contains("includes nest too deeply"), "{e}");
}

#[test]
fn runtime_errors_name_the_included_file() {
    use vcl_lite::{Context, Value, Var};
    struct Refuse;
    impl Context for Refuse {
        fn get(&self, _: &Var) -> Option<Value<'_>> {
            None
        }
        fn set(&mut self, _: &Var, _: Value<'_>) -> Result<(), String> {
            Err("no".into())
        }
        fn unset(&mut self, _: &Var) {}
        fn client_ip(&self) -> std::net::IpAddr {
            std::net::IpAddr::from([127, 0, 0, 1])
        }
        fn hash_data(&mut self, _: &str) {}
        fn synthetic(&mut self, _: &str) {}
    }
    let p = load(
        &[
            ("main.vcl", "include \"r.vcl\";\n"),
            ("r.vcl", "sub vcl_recv {\n  set req.url = \"/\";\n}\n"),
        ],
        "main.vcl",
    )
    .unwrap();
    let e = p.run(vcl_lite::Sub::Recv, &mut Refuse).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.location.line, e.location.column),
        ("r.vcl", 2, 3)
    );
}

#[test]
fn notes_name_the_file_of_the_first_definition() {
    let e = error(
        &[
            (
                "main.vcl",
                "include \"a.vcl\";\nacl purge { \"localhost\"; }\nsub vcl_recv { }\n",
            ),
            ("a.vcl", "\n\nacl purge { \"localhost\"; }\n"),
        ],
        "main.vcl",
    );
    assert!(e.contains("--> main.vcl:2:5"), "{e}");
    assert!(
        e.contains("`purge` is first defined on line 3 of a.vcl"),
        "{e}"
    );
}

#[test]
fn an_included_file_may_start_with_its_own_vcl_header() {
    let p = load(
        &[
            ("main.vcl", "vcl 4.1;\ninclude \"builtin.vcl\";\n"),
            (
                "builtin.vcl",
                "# Varnish's toolbox files start like this.\nvcl 4.0;\nsub vcl_recv { return (pass); }\n",
            ),
        ],
        "main.vcl",
    )
    .unwrap();
    assert!(p.defines(vcl_lite::Sub::Recv));
    // Only at its start: a header in the middle of a file stays an error.
    let e = error(
        &[
            ("main.vcl", "vcl 4.1;\ninclude \"late.vcl\";\n"),
            ("late.vcl", "sub vcl_recv { }\nvcl 4.0;\n"),
        ],
        "main.vcl",
    );
    assert!(e.contains("misplaced `vcl` header"), "{e}");
}
