//! The test layout itself: with `autotests = false` a test file that is not
//! part of this crate is silently never built, so these fail instead.
use std::collections::BTreeSet;
use std::path::Path;

const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

/// The `.rs` files directly in `dir`, without the extension.
fn rust_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn no_test_file_is_outside_the_crate() {
    let outside: Vec<String> = rust_files(Path::new(TESTS))
        .into_iter()
        .map(|f| format!("tests/{f}.rs"))
        .collect();
    assert!(
        outside.is_empty(),
        "{outside:?} would never run: move them to tests/it/ and declare them in tests/it/main.rs"
    );
    let dirs: Vec<String> = std::fs::read_dir(TESTS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("it"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        dirs.is_empty(),
        "{dirs:?}: test code outside tests/it/ is not built"
    );
}

#[test]
fn every_file_in_the_crate_is_a_declared_module() {
    let dir = Path::new(TESTS).join("it");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let declared: BTreeSet<String> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    let mut files = rust_files(&dir);
    files.remove("main");
    let undeclared: Vec<String> = files
        .difference(&declared)
        .map(|f| format!("tests/it/{f}.rs"))
        .collect();
    assert!(
        undeclared.is_empty(),
        "{undeclared:?}: not declared with `mod` in tests/it/main.rs, never built"
    );
}
