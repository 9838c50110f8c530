//! Golden error messages: every `tests/errors/NAME.vcl` must fail to compile
//! with exactly the messages (all of them, in file order) in
//! `tests/errors/NAME.expected`. Files they include are in
//! `tests/errors/inc/`.
//!
//! `BLESS=1 cargo test -p vcl-lite --test golden` writes the `.expected`
//! files from the current output (review the diff before keeping it).

use std::fs;
use std::path::Path;

#[test]
fn error_messages_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&dir)
        .expect("tests/errors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vcl"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for path in &cases {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let mut read = |p: &Path| fs::read_to_string(dir.join(p));
        let actual = match vcl_lite::compile_file(Path::new(name), &mut read) {
            Ok(_) => "(compiled without error)".to_string(),
            Err(e) => e.to_string(),
        };
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, format!("{actual}\n")).expect("write .expected");
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| format!("(missing {})", expected_path.display()));
        if expected.trim_end_matches('\n') != actual {
            failures.push(format!(
                "--- {name}: expected\n{}\n--- got\n{actual}\n",
                expected.trim_end_matches('\n')
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
