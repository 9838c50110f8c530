//! Matches that need no automaton: many patterns in real policies are
//! plain text (`~ "gzip"`, `~ "^/static/"`, `~ "\.css$"`) or one character
//! out of a set (`req.http.host ~ "[A-Z]"` in the built-in VCL). For those
//! a string search answers `is_match` in a few instructions, where the
//! `regex` engine first takes a search cache out of its pool (a locked
//! stack on every thread but the first to use the pattern) and puts it
//! back: ~250 instructions per match, measured with callgrind.
//!
//! The shape is read from the pattern's syntax tree as the `regex` crate
//! parses it (same dialect, same defaults), so the answer is the engine's.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A pattern simple enough to match without the regex engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Quick {
    /// Text found anywhere (`gzip`).
    Contains(Box<str>),
    /// Text at the start (`^/static/`).
    Prefix(Box<str>),
    /// Text at the end (`\.css$`).
    Suffix(Box<str>),
    /// The whole subject (`^GET$`).
    Whole(Box<str>),
    /// Any one byte of an ASCII set (`[A-Z]`, `[[:upper:]]`, `[?&]`),
    /// looked up by byte (a table: a few instructions per byte).
    AnyOf(Box<[bool; 256]>),
}

impl Quick {
    /// The quick form of `pattern`, if it has one. `None` for anything
    /// else (and for a pattern that does not parse: the engine reports it).
    pub(crate) fn of(pattern: &str) -> Option<Quick> {
        let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
        Quick::of_hir(&hir)
    }

    fn of_hir(hir: &Hir) -> Option<Quick> {
        match hir.kind() {
            HirKind::Empty => Some(Quick::Contains("".into())),
            HirKind::Literal(lit) => Some(Quick::Contains(text(&lit.0)?)),
            HirKind::Class(Class::Unicode(class)) => {
                let mut set = Box::new([false; 256]);
                for range in class.iter() {
                    let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                    if end > 0x7F {
                        return None;
                    }
                    for b in start..=end {
                        set[b as usize] = true;
                    }
                }
                Some(Quick::AnyOf(set))
            }
            HirKind::Concat(parts) => {
                // The parser merges adjacent literals, so plain text between
                // optional anchors is at most three parts.
                let (start, rest) = match parts.split_first() {
                    Some((first, rest)) if is_look(first, Look::Start) => (true, rest),
                    _ => (false, &parts[..]),
                };
                let (end, middle) = match rest.split_last() {
                    Some((last, middle)) if is_look(last, Look::End) => (true, middle),
                    _ => (false, rest),
                };
                let lit = match middle {
                    [] => "".into(),
                    [one] => match one.kind() {
                        HirKind::Literal(lit) => text(&lit.0)?,
                        _ => return None,
                    },
                    _ => return None,
                };
                Some(match (start, end) {
                    (true, true) => Quick::Whole(lit),
                    (true, false) => Quick::Prefix(lit),
                    (false, true) => Quick::Suffix(lit),
                    (false, false) => Quick::Contains(lit),
                })
            }
            HirKind::Look(Look::Start | Look::End) => Some(Quick::Contains("".into())),
            _ => None,
        }
    }

    /// Whether `s` has a match.
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            Quick::Contains(t) => s.contains(&**t),
            Quick::Prefix(t) => s.starts_with(&**t),
            Quick::Suffix(t) => s.ends_with(&**t),
            Quick::Whole(t) => s == &**t,
            Quick::AnyOf(set) => s.bytes().any(|b| set[usize::from(b)]),
        }
    }
}

fn is_look(hir: &Hir, look: Look) -> bool {
    matches!(hir.kind(), HirKind::Look(l) if *l == look)
}

fn text(bytes: &[u8]) -> Option<Box<str>> {
    std::str::from_utf8(bytes).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::Quick;

    #[test]
    fn plain_shapes_are_recognised() {
        assert_eq!(Quick::of("gzip"), Some(Quick::Contains("gzip".into())));
        assert_eq!(
            Quick::of("^/static/"),
            Some(Quick::Prefix("/static/".into()))
        );
        assert_eq!(Quick::of(r"\.css$"), Some(Quick::Suffix(".css".into())));
        assert_eq!(Quick::of("^GET$"), Some(Quick::Whole("GET".into())));
        assert_eq!(Quick::of(r"^www\."), Some(Quick::Prefix("www.".into())));
        assert!(matches!(Quick::of("[A-Z]"), Some(Quick::AnyOf(_))));
        assert!(matches!(Quick::of("[[:upper:]]"), Some(Quick::AnyOf(_))));
        assert!(matches!(Quick::of("a|b"), Some(Quick::AnyOf(_))));
        // Not plain: left to the engine.
        for p in [
            "ESI/1.0", "^https?$", "(?i)gzip", "ab|cd", "[éa]", r"\bx", "(?m)^x", "x+",
        ] {
            assert_eq!(Quick::of(p), None, "{p}");
        }
    }

    /// Every quick pattern answers as the `regex` engine does, over
    /// subjects chosen to sit on each shape's edges.
    #[test]
    fn quick_answers_as_the_engine() {
        let patterns = [
            "gzip",
            "^/static/",
            r"\.css$",
            "^GET$",
            "[A-Z]",
            "[[:upper:]]",
            "[?&]",
            "",
            "^",
            "$",
            "^$",
            "#",
            r"^\s",
            "[^a-z]",
            r"\.",
            "^a.c$",
            "ab|cd",
        ];
        let subjects = [
            "",
            "gzip",
            "x-gzip, br",
            "GZIP",
            "/static/a.css",
            "/stat",
            "a.css?x",
            "GET",
            "GETS",
            "host:8080",
            "Example.com",
            "a?b",
            "#frag",
            " x",
            "é",
            "\n",
            "a.c",
        ];
        let mut quick = 0;
        for p in patterns {
            let re = regex::Regex::new(p).expect("test pattern");
            let Some(q) = Quick::of(p) else { continue };
            quick += 1;
            for s in subjects {
                assert_eq!(q.is_match(s), re.is_match(s), "{p:?} on {s:?}");
            }
        }
        assert!(quick >= 12, "{quick} of the test patterns were quick");
    }

    /// Random patterns built from the pieces the quick forms are made of
    /// (text with metacharacters escaped or not, anchors, flags, classes),
    /// on random subjects over a small alphabet: wherever a quick form is
    /// found it answers as the engine does.
    #[test]
    fn random_patterns_answer_as_the_engine() {
        const PIECES: [&str; 18] = [
            "a", "b", "A", r"\.", ".", "/", "^", "$", "(?i)", "[ab]", "[^a]", "[A-Z]", r"\?", "?",
            "é", "-", "ab", "(?m)",
        ];
        const LETTERS: [&str; 8] = ["a", "b", "A", ".", "/", "?", "é", "\n"];
        let (mut checked, mut quick) = (0, 0);
        let cases =
            crate::pattern::random_cases(0x9e37_79b9_7f4a_7c15, &PIECES, &LETTERS, 5_000, (4, 4));
        for (pattern, re, subjects) in cases {
            let Some(q) = Quick::of(&pattern) else {
                continue;
            };
            quick += 1;
            for subject in &subjects {
                assert_eq!(
                    q.is_match(subject),
                    re.is_match(subject),
                    "{pattern:?} on {subject:?}"
                );
                checked += 1;
            }
        }
        assert!(quick > 500, "only {quick} quick patterns");
        assert!(checked > 4_000);
    }
}
