//! The module graph has no cycles: in each crate, the `crate::…` edges
//! between top-level modules form a DAG (lacquer: `lifecycle` below
//! `policy` below `pipeline`; vcl-lite: `ast` below `ir` below `eval`).
//! A cycle means two modules can only be understood together; this test
//! names it so it is broken up rather than grown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/cache/store.rs` → `cache`,
/// `src/body.rs` → `body`); `None` for the crate root and binaries.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "bin" => None,
        _ => Some(name.to_string()),
    }
}

/// The `crate::NAME` paths in the code of `text` (comments skipped).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.insert(name);
            }
            rest = after;
        }
    }
    refs
}

/// Which module defines each `#[macro_export]` macro (reached as
/// `crate::name!` from anywhere).
fn macro_homes(src: &Path, files: &[PathBuf]) -> BTreeMap<String, String> {
    let mut homes = BTreeMap::new();
    for file in files {
        let (Some(module), Ok(text)) = (module_of(src, file), fs::read_to_string(file)) else {
            continue;
        };
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("macro_rules! ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                homes.insert(name, module.clone());
            }
        }
    }
    homes
}

/// The edges module → modules it uses.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    let macros = macro_homes(src, &files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        let targets = edges.entry(from.clone()).or_default();
        for name in crate_refs(&text) {
            let to = macros.get(&name).cloned().unwrap_or(name);
            if to != from && modules.contains(&to) {
                targets.insert(to);
            }
        }
    }
    edges
}

/// A cycle in `edges`, as the path that closes it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Open => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            Mark::New => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn assert_acyclic(crate_dir: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("src");
    let edges = graph(&src);
    if let Some(cycle) = find_cycle(&edges) {
        let listing: Vec<String> = edges
            .iter()
            .map(|(m, to)| format!("  {m} -> {}", Vec::from_iter(to.iter().cloned()).join(", ")))
            .collect();
        panic!(
            "import cycle between top-level modules of {}: {}\nall edges:\n{}",
            src.display(),
            cycle.join(" -> "),
            listing.join("\n")
        );
    }
}

#[test]
fn lacquer_modules_form_a_dag() {
    assert_acyclic(".");
}

#[test]
fn vcl_lite_modules_form_a_dag() {
    assert_acyclic("vcl-lite");
}

#[test]
fn a_cycle_is_found() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    edges.remove("c");
    assert_eq!(find_cycle(&edges), None);
}

#[test]
fn references_in_comments_do_not_count() {
    let refs = crate_refs("use crate::cache::Store; // see crate::pipeline\n/// [`crate::policy`]\nlet x = crate::log_limited!(1);");
    assert_eq!(
        refs,
        BTreeSet::from(["cache".to_string(), "log_limited".to_string()])
    );
}
