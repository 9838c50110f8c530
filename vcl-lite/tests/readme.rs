//! The README's reference tables are the checker's own tables.
//!
//! `BLESS=1 cargo test -p vcl-lite --test readme` rewrites them in place.

use std::fs;
use std::path::Path;

fn section(readme: &str, name: &str) -> Option<(usize, usize)> {
    let begin = format!("<!-- begin {name} -->\n");
    let end = format!("<!-- end {name} -->");
    let start = readme.find(&begin)? + begin.len();
    let stop = readme[start..].find(&end)? + start;
    Some((start, stop))
}

#[test]
fn readme_tables_are_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let mut readme = fs::read_to_string(&path).expect("README.md");
    let tables = [
        ("variables", vcl_lite::reference::variables_table()),
        ("actions", vcl_lite::reference::actions_table()),
        ("functions", vcl_lite::reference::functions_table()),
    ];
    let bless = std::env::var_os("BLESS").is_some();
    for (name, table) in tables {
        let (start, stop) = section(&readme, name).unwrap_or_else(|| panic!("no {name} section"));
        if bless {
            readme.replace_range(start..stop, &table);
        } else {
            assert_eq!(
                readme[start..stop],
                table,
                "README {name} table is stale: run with BLESS=1"
            );
        }
    }
    if bless {
        fs::write(&path, readme).expect("write README.md");
    }
}
