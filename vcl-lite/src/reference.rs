//! The language reference tables, generated from the checker's own tables
//! (the README embeds them; a test keeps the two in step).

use crate::check::{actions, ActionArgs};
use crate::funcs::FUNCS;
use crate::vars::{Mask, Sub, VARS};

fn subs(mask: Mask) -> String {
    if mask.is_empty() {
        return "—".to_string();
    }
    if mask == crate::vars::ALL {
        return "all".to_string();
    }
    if mask.union(crate::vars::ALL) == mask {
        return "all, init, fini".to_string();
    }
    if mask == crate::vars::CLIENT {
        return "client".to_string();
    }
    if mask == crate::vars::REQ {
        return "client, pipe".to_string();
    }
    if mask == crate::vars::BEREQ {
        return "backend, pipe".to_string();
    }
    if mask == crate::vars::BACKEND {
        return "backend".to_string();
    }
    mask.subs()
        .map(|s| s.name().trim_start_matches("vcl_"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The variable table, in Markdown.
pub fn variables_table() -> String {
    let mut out = String::from(
        "| variable | type | readable in | writable in | what |\n|---|---|---|---|---|\n",
    );
    for def in VARS {
        let unset = if def.is_header() {
            " (and `unset`)"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {}{} | {} |\n",
            def.display_name(),
            def.ty,
            subs(def.read),
            subs(def.write),
            if def.write.is_empty() { "" } else { unset },
            def.doc
        ));
    }
    out
}

/// The actions of each subroutine, in Markdown.
pub fn actions_table() -> String {
    let mut out = String::from("| subroutine | `return (…)` |\n|---|---|\n");
    for sub in Sub::ALL {
        let list: Vec<String> = actions(sub)
            .iter()
            .map(|(name, args)| match args {
                ActionArgs::None => format!("`{name}`"),
                ActionArgs::Status => format!("`{name}(status[, reason])`"),
                ActionArgs::Ttl => format!("`{name}(duration)`"),
            })
            .collect();
        out.push_str(&format!("| `{}` | {} |\n", sub.name(), list.join(", ")));
    }
    out
}

/// The functions, in Markdown.
pub fn functions_table() -> String {
    let mut out = String::from("| function | usable in | what |\n|---|---|---|\n");
    for f in FUNCS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            f.signature(),
            subs(f.only),
            f.doc
        ));
    }
    out
}
