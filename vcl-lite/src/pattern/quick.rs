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
    /// Text followed by a greedy run of bytes of an ASCII set, optionally
    /// anchored at either end: `:[0-9]+$` (a port, in nearly every
    /// policy's `Host` normalisation), `[?&]+$`, `^/v[0-9]+`.
    Run(Box<Run>),
}

/// The parts of a [`Quick::Run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// At the start of the subject only (`^`).
    start: bool,
    /// Running to the end of the subject (`$`).
    end: bool,
    /// The text before the run (may be empty).
    lit: Box<str>,
    /// The bytes the run is made of (ASCII only).
    set: [bool; 256],
    /// The fewest bytes the run has (at least 1).
    min: usize,
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
            HirKind::Class(_) => Some(Quick::AnyOf(Box::new(ascii_set(hir)?))),
            HirKind::Repetition(_) => Run::of(false, "".into(), hir, false),
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
                        HirKind::Repetition(_) => return Run::of(start, "".into(), one, end),
                        _ => return None,
                    },
                    [lit, run] => match lit.kind() {
                        HirKind::Literal(lit) => return Run::of(start, text(&lit.0)?, run, end),
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
            // Matches everywhere; found at one end (as `find` tells).
            HirKind::Look(Look::Start) => Some(Quick::Prefix("".into())),
            HirKind::Look(Look::End) => Some(Quick::Suffix("".into())),
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
            Quick::Run(run) => run.find(s).is_some(),
        }
    }

    /// The leftmost-first match's bounds in `s`, as the engine's `find`
    /// gives them.
    pub(crate) fn find(&self, s: &str) -> Option<(usize, usize)> {
        match self {
            Quick::Contains(t) => s.find(&**t).map(|i| (i, i + t.len())),
            Quick::Prefix(t) => s.starts_with(&**t).then_some((0, t.len())),
            Quick::Suffix(t) => s.ends_with(&**t).then(|| (s.len() - t.len(), s.len())),
            Quick::Whole(t) => (s == &**t).then_some((0, s.len())),
            // The set is ASCII: a one-byte match.
            Quick::AnyOf(set) => s
                .bytes()
                .position(|b| set[usize::from(b)])
                .map(|i| (i, i + 1)),
            Quick::Run(run) => run.find(s),
        }
    }
}

impl Run {
    /// `lit` followed by `rep` (a greedy, unbounded repetition of an ASCII
    /// set, at least once) as a [`Quick::Run`]; `None` for other
    /// repetitions.
    fn of(start: bool, lit: Box<str>, rep: &Hir, end: bool) -> Option<Quick> {
        let HirKind::Repetition(r) = rep.kind() else {
            return None;
        };
        if !r.greedy || r.max.is_some() || r.min == 0 || r.min > MAX_RUN_MIN {
            return None;
        }
        Some(Quick::Run(Box::new(Run {
            start,
            end,
            lit,
            set: ascii_set(&r.sub)?,
            min: usize::try_from(r.min).ok()?,
        })))
    }

    /// The leftmost match: the first place the text is found followed by
    /// at least `min` bytes of the set (at the start only when anchored),
    /// running as far as the set goes (to the end when anchored there).
    /// Linear in the subject: the text is searched for (`memchr`), and a
    /// place that fails has a run shorter than `min` ([`MAX_RUN_MIN`]) to
    /// look at.
    fn find(&self, s: &str) -> Option<(usize, usize)> {
        let b = s.as_bytes();
        let in_set = |c: &u8| self.set[usize::from(*c)];
        let lit = self.lit.as_bytes();
        // With `$`, the run is the subject's trailing bytes of the set: a
        // match starts where the text ends at or after the run's start.
        let tail = if self.end {
            b.iter().rposition(|c| !in_set(c)).map_or(0, |i| i + 1)
        } else {
            0
        };
        let mut from = tail.saturating_sub(lit.len());
        loop {
            let rest = b.get(from..)?;
            // Most texts are empty or one byte (`:` before a port).
            let p = from
                + match lit {
                    [] => 0,
                    [one] => memchr::memchr(*one, rest)?,
                    _ => memchr::memmem::find(rest, lit)?,
                };
            if self.start && p != 0 {
                return None;
            }
            let after = p + lit.len();
            let run = b.get(after..).map_or(0, |rest| {
                rest.iter().position(|c| !in_set(c)).unwrap_or(rest.len())
            });
            // Past the run's start, a `$`-anchored run always reaches the
            // end; only its length can fail.
            if run >= self.min && (!self.end || after + run == b.len()) {
                return Some((p, after + run));
            }
            if self.start {
                return None;
            }
            from = p + 1;
        }
    }
}

/// The most bytes a [`Quick::Run`] asks for at least (`{n,}`): a place
/// where the text is found but the run is too short costs up to this many
/// bytes looked at; larger minimums are left to the engine.
const MAX_RUN_MIN: u32 = 16;

/// A class (or one ASCII byte) as a table of the bytes it holds; `None`
/// when it holds anything beyond ASCII.
fn ascii_set(hir: &Hir) -> Option<[bool; 256]> {
    let mut set = [false; 256];
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            for range in class.iter() {
                let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                if end > 0x7F {
                    return None;
                }
                for b in start..=end {
                    set[b as usize] = true;
                }
            }
        }
        HirKind::Literal(lit) => match &*lit.0 {
            [one] if one.is_ascii() => set[usize::from(*one)] = true,
            _ => return None,
        },
        _ => return None,
    }
    Some(set)
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
        for p in [
            ":[0-9]+$",
            "[?&]+$",
            "^/v[0-9]+",
            "[0-9]+",
            "ab+",
            "x{2,}",
            "^a[b-d]+$",
        ] {
            assert!(matches!(Quick::of(p), Some(Quick::Run(_))), "{p}");
        }
        // Not plain: left to the engine.
        for p in [
            "ESI/1.0",
            "^https?$",
            "(?i)gzip",
            "ab|cd",
            "[éa]",
            r"\bx",
            "(?m)^x",
            "x+?",
            "x*",
            "x{2,3}",
            "[é]+",
            "a[0-9]+b",
            "(?i)a[0-9]+",
            "x{17,}",
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
            ":[0-9]+$",
            ":[0-9]+",
            "[?&]+$",
            "^/v[0-9]+",
            "1[0-9]+$",
            "[0-9]{2,}",
            "^a[.a]+$",
            "x+",
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
            "127.0.0.1:6085",
            "a:1:2",
            "a:1:2x",
            ":",
            "x1112",
            "1",
            "/a?b&&",
            "?&",
            "/v12/x",
            "/v/12",
            "a..a.",
            "é:12",
            "9é12",
            "xx x",
        ];
        let mut quick = 0;
        for p in patterns {
            let re = regex::Regex::new(p).expect("test pattern");
            let Some(q) = Quick::of(p) else { continue };
            quick += 1;
            for s in subjects {
                assert_eq!(q.is_match(s), re.is_match(s), "{p:?} on {s:?}");
                let bounds = re.find(s).map(|m| (m.start(), m.end()));
                assert_eq!(q.find(s), bounds, "{p:?} found in {s:?}");
            }
        }
        assert!(quick >= 20, "{quick} of the test patterns were quick");
    }

    /// Random patterns built from the pieces the quick forms are made of
    /// (text with metacharacters escaped or not, anchors, flags, classes),
    /// on random subjects over a small alphabet: wherever a quick form is
    /// found it answers as the engine does.
    #[test]
    fn random_patterns_answer_as_the_engine() {
        const PIECES: [&str; 22] = [
            "a", "b", "A", r"\.", ".", "/", "^", "$", "(?i)", "[ab]", "[^a]", "[A-Z]", r"\?", "?",
            "é", "-", "ab", "(?m)", "+", "[a.]+", "b{2,}", "+?",
        ];
        const LETTERS: [&str; 8] = ["a", "b", "A", ".", "/", "?", "é", "\n"];
        let (mut checked, mut quick, mut runs) = (0, 0, 0);
        let cases =
            crate::pattern::random_cases(0x9e37_79b9_7f4a_7c15, &PIECES, &LETTERS, 5_000, (4, 4));
        for (pattern, re, subjects) in cases {
            let Some(q) = Quick::of(&pattern) else {
                continue;
            };
            quick += 1;
            runs += usize::from(matches!(q, Quick::Run(_)));
            for subject in &subjects {
                assert_eq!(
                    q.is_match(subject),
                    re.is_match(subject),
                    "{pattern:?} on {subject:?}"
                );
                let bounds = re.find(subject).map(|m| (m.start(), m.end()));
                assert_eq!(q.find(subject), bounds, "{pattern:?} found in {subject:?}");
                checked += 1;
            }
        }
        assert!(quick > 500, "only {quick} quick patterns");
        assert!(runs > 100, "only {runs} runs");
        assert!(checked > 4_000);
    }
}
