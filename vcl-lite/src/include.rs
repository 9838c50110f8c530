//! `include "file.vcl";`: the named file's text replaces the directive, as
//! in Varnish (anywhere a token may be). Paths are relative to the file
//! that includes them; cycles are refused and nesting is limited.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, SourceMap, Span};
use crate::lexer::{lex, TokenKind};

/// How deeply includes may nest (the main file is depth 0).
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads a file for [`crate::compile_file`]: the real file system
/// (`std::fs::read_to_string`) or, in tests, files in memory.
pub type ReadFile<'a> = dyn FnMut(&Path) -> std::io::Result<String> + 'a;

/// The text to compile, every include expanded, and where each part of it
/// comes from.
pub(crate) struct Expanded {
    pub(crate) text: String,
    pub(crate) map: SourceMap,
}

/// Expands `main` (already read: `text`) and everything it includes.
pub(crate) fn expand(main: &Path, text: &str, read: &mut ReadFile<'_>) -> Result<Expanded, Error> {
    let mut out = Expanded {
        text: String::with_capacity(text.len()),
        map: SourceMap::default(),
    };
    let mut stack = vec![normalize(main)];
    file(main, text, read, &mut stack, &mut out)?;
    Ok(out)
}

fn file(
    path: &Path,
    text: &str,
    read: &mut ReadFile<'_>,
    stack: &mut Vec<PathBuf>,
    out: &mut Expanded,
) -> Result<(), Error> {
    let name = path.display().to_string();
    let index = out.map.add_file(&name, text);
    let toks = lex(text, &name)?;
    // An included file may start with its own `vcl 4.x;` (Varnish allows
    // it): blanked out, so the parser sees one header.
    let blanked;
    let text = match (stack.len() > 1, toks.as_slice()) {
        (true, [vcl, version, semi, ..])
            if matches!(&vcl.kind, TokenKind::Ident(w) if w == "vcl")
                && matches!(version.kind, TokenKind::Real(_) | TokenKind::Int(_))
                && matches!(semi.kind, TokenKind::Semi) =>
        {
            let (start, end) = (vcl.span.start, semi.span.end);
            blanked = format!(
                "{}{}{}",
                &text[..start],
                " ".repeat(end - start),
                &text[end..]
            );
            blanked.as_str()
        }
        _ => text,
    };
    let mut cursor = 0;
    let mut i = 0;
    while i < toks.len() {
        let is_include = matches!(&toks[i].kind, TokenKind::Ident(w) if w == "include");
        if !is_include {
            i += 1;
            continue;
        }
        let at = toks[i].span;
        let err = |span: Span, message: String, label: &str| {
            Error::new(text, &name, span, message, label)
        };
        let (target, target_span) = match toks.get(i + 1).map(|t| (&t.kind, t.span)) {
            Some((TokenKind::Str(s), span)) => (s.clone(), span),
            Some((_, span)) => {
                return Err(err(
                    span,
                    "expected a file name in double quotes after `include`".into(),
                    "write `include \"file.vcl\";`",
                ))
            }
            None => return Err(err(at, "incomplete `include`".into(), "")),
        };
        let end = match toks.get(i + 2).map(|t| (&t.kind, t.span)) {
            Some((TokenKind::Semi, span)) => span.end,
            Some((_, span)) => {
                return Err(err(
                    span,
                    "missing `;` after `include \"…\"`".into(),
                    "expected `;`",
                ))
            }
            None => target_span.end,
        };
        // The text before the directive, then the included file, each on
        // its own lines so tokens never run together.
        out.map.piece(out.text.len(), index, cursor);
        out.text.push_str(&text[cursor..at.start]);
        out.text.push('\n');
        let resolved = match path.parent() {
            Some(dir) => dir.join(&target),
            None => PathBuf::from(&target),
        };
        let key = normalize(&resolved);
        if let Some(from) = stack.iter().position(|p| *p == key) {
            let mut chain: Vec<String> = stack[from..]
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect();
            chain.push(format!("`{}`", key.display()));
            return Err(err(
                target_span,
                format!("`include` cycle: {}", chain.join(" → ")),
                "this file is already being included",
            ));
        }
        if stack.len() > MAX_INCLUDE_DEPTH {
            return Err(err(
                target_span,
                "includes nest too deeply".into(),
                &format!("more than {MAX_INCLUDE_DEPTH} levels of `include`"),
            ));
        }
        let included = read(&resolved).map_err(|e| {
            err(
                target_span,
                format!("cannot read `{}`: {e}", resolved.display()),
                "included from here (paths are relative to this file)",
            )
        })?;
        stack.push(key);
        file(&resolved, &included, read, stack, out)?;
        stack.pop();
        out.text.push('\n');
        cursor = end;
        i += 3;
    }
    out.map.piece(out.text.len(), index, cursor);
    out.text.push_str(&text[cursor..]);
    Ok(())
}

/// `a/./b/../c.vcl` → `a/c.vcl`, without touching the file system (cycles
/// are found on these).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
