//! Every policy shipped with vcl-lite compiles: `default.vcl` and each file
//! in `examples/`.

use std::fs;
use std::path::Path;

#[test]
fn default_and_examples_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("default.vcl")];
    let mut examples: Vec<_> = fs::read_dir(root.join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vcl"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 7, "examples: {examples:?}");
    files.extend(examples);
    // The benches' realistic policy (criterion and the load bench run it).
    files.push(root.join("benches/production.vcl"));
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let source = fs::read_to_string(&path).expect("read");
        if let Err(e) = vcl_lite::compile(&source, name) {
            panic!("{name} does not compile:\n{e}");
        }
    }
    assert_eq!(
        fs::read_to_string(root.join("default.vcl")).expect("default.vcl"),
        vcl_lite::DEFAULT_POLICY
    );
}
