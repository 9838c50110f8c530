//! Regular expressions: the linear-time `regex` engine for every pattern it
//! accepts, a bounded backtracking engine (`fancy-regex`) only for the PCRE
//! constructs it lacks (look-ahead, look-behind, back-references, atomic
//! groups, possessive repetition, …).
//!
//! A backtracking match that gives up (more than [`BACKTRACK_LIMIT`] steps)
//! counts as "no match" and logs a warning: a hostile request never hangs a
//! worker.

use std::borrow::Cow;

mod dense;
mod per_thread;
mod quick;

use dense::Dense;
pub use dense::DENSE_SIZE_LIMIT;
use per_thread::PerThread;
use quick::Quick;

/// Compiled size limit of one regular expression (and, for a backtracking
/// pattern, of each part delegated to the linear engine).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How many backtracking steps one match of a backtracking pattern may take
/// before it gives up (then: no match, and a warning).
pub const BACKTRACK_LIMIT: usize = 100_000;

/// Deepest nesting of groups in a pattern.
const NEST_LIMIT: u32 = 64;

/// Largest backtracking program (instructions).
const MAX_PROGRAM: usize = 100_000;

/// A match's groups for `regsub`'s replacement: the text of group n (0: the
/// whole match), `None` if it did not take part.
pub(crate) type Groups<'s> = dyn Fn(usize) -> Option<&'s str> + 's;

/// A compiled regular expression.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// Linear time: the pattern needs nothing PCRE-only. With how
    /// `is_match` is answered, and whether it matches the empty text (what
    /// an unset header is matched as: `req.http.Cookie ~ …` on a request
    /// without cookies is answered without the engine). A copy of the
    /// engine per thread ([`PerThread`]).
    Linear(PerThread, Shortcut, bool),
    /// Backtracking, bounded by [`BACKTRACK_LIMIT`].
    Backtrack(fancy_regex::Regex),
}

/// How a linear pattern answers `is_match`.
#[derive(Debug, Clone)]
pub(crate) enum Shortcut {
    /// Plain text or one character out of a set: a string search.
    Quick(Quick),
    /// A fully built automaton ([`Dense`]; boxed: ~900 bytes, and a
    /// pattern is part of every expression node).
    Dense(Box<Dense>),
    /// The engine.
    Engine,
}

impl Shortcut {
    fn of(pattern: &str) -> Shortcut {
        match Quick::of(pattern) {
            Some(quick) => Shortcut::Quick(quick),
            None => Dense::of(pattern, NEST_LIMIT)
                .map_or(Shortcut::Engine, |dfa| Shortcut::Dense(Box::new(dfa))),
        }
    }
}

impl Pattern {
    /// Compiles `pattern` with vcl-lite's limits; `Err` is the reason,
    /// worded for the label under the pattern.
    pub(crate) fn new(pattern: &str) -> Result<Pattern, String> {
        if has_possessive(pattern) {
            // `regex` reads `a++` as `(a+)+`: same syntax, other meaning.
            let re = backtracking(pattern).map_err(|e| backtrack_reason(&e))?;
            check_conditions(pattern, &re)?;
            return Ok(re);
        }
        let linear_error = match regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(2 * REGEX_SIZE_LIMIT)
            .nest_limit(NEST_LIMIT)
            .build()
        {
            Ok(re) => {
                let empty = re.is_match("");
                return Ok(Pattern::Linear(
                    PerThread::new(re),
                    Shortcut::of(pattern),
                    empty,
                ));
            }
            Err(regex::Error::CompiledTooBig(_)) => return Err(too_big()),
            Err(e) => last_line(&e.to_string()),
        };
        match backtracking(pattern) {
            Ok(re) => {
                check_conditions(pattern, &re)?;
                Ok(re)
            }
            // `regex` stopped at a PCRE-only construct: the backtracking
            // parser saw the whole pattern, its reason is the one to show.
            Err(e) if linear_error.contains("not supported") => Err(backtrack_reason(&e)),
            Err(_) => Err(linear_error),
        }
    }

    /// Whether this pattern runs on the backtracking engine.
    #[cfg(test)]
    pub(crate) fn is_backtracking(&self) -> bool {
        matches!(self, Pattern::Backtrack(_))
    }

    /// Whether `s` contains a match. A backtracking match that gives up is
    /// no match. An empty subject (most often an absent header) is answered
    /// here, inlined where the test is made; the search in a frame of its
    /// own, which the empty subject no longer pays to enter and leave.
    #[inline]
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Linear(_, _, empty) if s.is_empty() => *empty,
            _ => self.search(s),
        }
    }

    /// [`Pattern::is_match`] of a subject that is not empty (or of any, on
    /// the backtracking engine).
    #[inline(never)]
    fn search(&self, s: &str) -> bool {
        match self {
            Pattern::Linear(_, Shortcut::Quick(quick), _) => quick.is_match(s),
            Pattern::Linear(re, Shortcut::Dense(dfa), _) => {
                dfa.is_match(s).unwrap_or_else(|| re.get().is_match(s))
            }
            Pattern::Linear(re, Shortcut::Engine, _) => re.get().is_match(s),
            Pattern::Backtrack(re) => re.is_match(s).unwrap_or_else(|e| {
                gave_up(re, &e);
                false
            }),
        }
    }

    /// `regsub` / `regsuball`: the first (or every) match replaced by what
    /// `expand(out, group)` appends to `out` (`group(n)`: the text of group
    /// n, 0 the whole match, `None` if it did not take part). A
    /// backtracking match that gives up leaves `s` as it was, as a failed
    /// match does in Varnish. `groups`: whether `expand` reads a group
    /// other than 0; without, the matches are found without captures.
    pub(crate) fn substitute<'a>(
        &self,
        s: Cow<'a, str>,
        all: bool,
        groups: bool,
        expand: impl Fn(&mut String, &Groups<'_>),
    ) -> Cow<'a, str> {
        let mut out = Splice::new(&s);
        match self {
            // `regsub(req.http.Host, ":[0-9]+$", "")`: the bounds from a
            // string search, without the engine (its search cache taken
            // from the pool, a reverse search for the start: ~600
            // instructions on a short Host). A quick pattern has no groups.
            Pattern::Linear(_, Shortcut::Quick(quick), _) if !all => match quick.find(&s) {
                Some(whole) => out.replace(|g| (g == 0).then_some(whole), &expand),
                None => return s,
            },
            // Most substitutions find nothing (a port not in the Host, a
            // parameter not in the URL): the match-only search answers that
            // without the cost of setting up captures.
            Pattern::Linear(..) if !self.is_match(&s) => return s,
            // `regsub(req.http.Host, ":[0-9]+$", "")`, `regsuball(cookie,
            // "; +", ";")`: the match's bounds are all the replacement
            // needs, and finding them costs a fraction of captures.
            Pattern::Linear(re, _, _) if !groups => {
                for m in re.get().find_iter(&s) {
                    let whole = (m.start(), m.end());
                    out.replace(|g| (g == 0).then_some(whole), &expand);
                    if !all {
                        break;
                    }
                }
            }
            Pattern::Linear(re, _, _) => {
                for caps in re.get().captures_iter(&s) {
                    out.replace(|g| caps.get(g).map(|m| (m.start(), m.end())), &expand);
                    if !all {
                        break;
                    }
                }
            }
            Pattern::Backtrack(re) => {
                for caps in re.captures_iter(&*s) {
                    match caps {
                        Ok(caps) => {
                            out.replace(|g| caps.get(g).map(|m| (m.start(), m.end())), &expand)
                        }
                        Err(e) => {
                            gave_up(re, &e);
                            return s;
                        }
                    }
                    if !all {
                        break;
                    }
                }
            }
        }
        match out.finish() {
            Some(o) => Cow::Owned(o),
            None => s,
        }
    }
}

fn backtracking(pattern: &str) -> Result<Pattern, fancy_regex::Error> {
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .delegate_size_limit(REGEX_SIZE_LIMIT)
        .delegate_dfa_size_limit(2 * REGEX_SIZE_LIMIT)
        .max_prog_size(MAX_PROGRAM)
        .build()
        .map(Pattern::Backtrack)
}

/// Whether `pattern` has a possessive repetition (`a*+`, `a++`, `a?+`,
/// `a{2,}+`): a repetition operator followed by `+`, outside classes and
/// escapes.
fn has_possessive(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    let mut i = 0;
    // Whether the previous token was a complete repetition operator.
    let mut after_repeat = false;
    while i < b.len() {
        let c = b[i];
        if after_repeat && c == b'+' {
            return true;
        }
        after_repeat = false;
        match c {
            b'\\' => {
                if b.get(i + 1) == Some(&b'Q') {
                    // Quoted text up to `\E`.
                    i = find(b, i + 2, b"\\E").map_or(b.len(), |e| e + 2);
                    continue;
                }
                i += 2;
                continue;
            }
            b'[' => {
                i = class_end(b, i);
                continue;
            }
            b'*' | b'+' | b'?' => after_repeat = true,
            b'{' => {
                let close = b[i..].iter().position(|&x| x == b'}').map(|p| i + p);
                if let Some(close) = close {
                    let inner = &b[i + 1..close];
                    if !inner.is_empty() && inner.iter().all(|x| x.is_ascii_digit() || *x == b',') {
                        i = close + 1;
                        after_repeat = true;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Conditionals are kept to the forms PCRE policies use and `fancy-regex`
/// checks: `(?(N)…)` on an existing group (1 ≤ N; the engine does not
/// check the number, and panics on one past its groups), `(?(<name>)…)`,
/// `(?('name')…)`. Others (`(?(R)…)`, `(?(DEFINE)…)`, `(?(-1)…)`, a bare
/// name) are refused.
fn check_conditions(pattern: &str, re: &Pattern) -> Result<(), String> {
    let Pattern::Backtrack(re) = re else {
        return Ok(());
    };
    let groups = re.captures_len();
    let b = pattern.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1) == Some(&b'Q') {
                    i = find(b, i + 2, b"\\E").map_or(b.len(), |e| e + 2);
                } else {
                    i += 2;
                }
                continue;
            }
            b'[' => {
                i = class_end(b, i);
                continue;
            }
            b'(' if b.get(i + 1..i + 3) == Some(b"?(") => {
                let start = i + 3;
                let end = b[start..]
                    .iter()
                    .position(|&x| x == b')')
                    .map_or(b.len(), |p| start + p);
                let cond = pattern.get(start..end).unwrap_or("");
                let named = (cond.starts_with('<') && cond.ends_with('>'))
                    || (cond.len() >= 2 && cond.starts_with('\'') && cond.ends_with('\''));
                let numbered = !cond.is_empty() && cond.bytes().all(|x| x.is_ascii_digit());
                if numbered {
                    let n: usize = cond.parse().unwrap_or(usize::MAX);
                    if n == 0 || n >= groups {
                        return Err(format!(
                            "the condition `(?({cond})` names group {cond}, which does not exist"
                        ));
                    }
                } else if !named {
                    return Err(format!(
                        "the condition `(?({cond})` is not supported: write `(?(N)…|…)` or `(?(<name>)…|…)`"
                    ));
                }
                i = start;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Index just after the class that starts at `open` (`[`): a `]` right
/// after `[` or `[^` is literal, `[:name:]` is one item, `\` escapes.
fn class_end(b: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    if b.get(i) == Some(&b'^') {
        i += 1;
    }
    if b.get(i) == Some(&b']') {
        i += 1;
    }
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'[' if b.get(i + 1) == Some(&b':') => {
                i = find(b, i + 2, b":]").map_or(b.len(), |e| e + 2);
            }
            b']' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Builds `regsub`'s result as matches come.
struct Splice<'s> {
    s: &'s str,
    out: Option<String>,
    /// End of the last match.
    last: usize,
}

impl<'s> Splice<'s> {
    fn new(s: &'s str) -> Self {
        Splice {
            s,
            out: None,
            last: 0,
        }
    }

    /// One match; `range(n)` is group n's byte range (0: the whole match).
    fn replace(
        &mut self,
        range: impl Fn(usize) -> Option<(usize, usize)>,
        expand: &impl Fn(&mut String, &Groups<'_>),
    ) {
        let Some((start, end)) = range(0) else { return };
        let s = self.s;
        let o = self
            .out
            .get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(s.get(self.last..start).unwrap_or(""));
        expand(o, &|g| range(g).and_then(|(a, b)| s.get(a..b)));
        self.last = end;
    }

    /// The result, `None` when nothing matched.
    fn finish(self) -> Option<String> {
        let mut o = self.out?;
        o.push_str(self.s.get(self.last..).unwrap_or(""));
        Some(o)
    }
}

fn too_big() -> String {
    format!(
        "too large once compiled (the limit is {} KiB)",
        REGEX_SIZE_LIMIT / 1024
    )
}

/// The `regex` crate's message is the pattern, a caret, then `error: why`:
/// the caret under the policy's string says where, keep the why.
fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(|| text.to_string(), str::to_string)
}

/// `fancy-regex`'s reason, in the same lower-case style as `regex`'s.
fn backtrack_reason(e: &fancy_regex::Error) -> String {
    use fancy_regex::{CompileError, Error, ParseError};
    match e {
        // Found at the end of the pattern: no position worth giving.
        Error::ParseError(_, ParseError::UnclosedOpenParen) => "unclosed group".into(),
        Error::ParseError(at, why) => format!("{} (at byte {at} of the pattern)", lower_first(why)),
        Error::CompileError(c) => match &**c {
            CompileError::InnerError(inner) if inner.size_limit().is_some() => too_big(),
            CompileError::PatternTooComplex => too_big(),
            CompileError::LookBehindNotConst => "a look-behind must have a bounded length".into(),
            other => lower_first(other),
        },
        other => lower_first(other),
    }
}

fn lower_first(why: &dyn std::fmt::Display) -> String {
    let text = why.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn gave_up(re: &fancy_regex::Regex, e: &fancy_regex::Error) {
    tracing::warn!(
        pattern = %re.as_str(),
        error = %e,
        limit = BACKTRACK_LIMIT,
        "regular expression gave up (counted as no match)"
    );
}

/// A test's source of numbers below `n` (xorshift from `seed`): the same
/// sequence on every run.
#[cfg(test)]
pub(crate) fn test_numbers(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    }
}

/// Random patterns for tests that check a shortcut against the engine:
/// `rounds` patterns of one to `max_pieces` of `pieces`, each the engine
/// accepts with the engine's answer and eight subjects of up to
/// `max_letters` of `letters` (the same on every run).
#[cfg(test)]
pub(crate) fn random_cases(
    seed: u64,
    pieces: &[&str],
    letters: &[&str],
    rounds: usize,
    (max_pieces, max_letters): (usize, usize),
) -> Vec<(String, regex::Regex, Vec<String>)> {
    let mut next = test_numbers(seed);
    let mut cases = Vec::new();
    for _ in 0..rounds {
        let pattern: String = (0..next(max_pieces) + 1)
            .map(|_| pieces[next(pieces.len())])
            .collect();
        let Ok(re) = regex::Regex::new(&pattern) else {
            continue;
        };
        let subjects = (0..8)
            .map(|_| {
                (0..next(max_letters + 1))
                    .map(|_| letters[next(letters.len())])
                    .collect()
            })
            .collect();
        cases.push((pattern, re, subjects));
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `regsub`'s replacement, reduced: `\N` is group N, the rest is text.
    fn expand(with: &str) -> impl Fn(&mut String, &Groups<'_>) + '_ {
        move |out, group| {
            let mut chars = with.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next().and_then(|d| d.to_digit(10))) {
                    ('\\', Some(n)) => {
                        chars.next();
                        out.push_str(group(n as usize).unwrap_or(""));
                    }
                    _ => out.push(c),
                }
            }
        }
    }

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sub(re: &str, s: &str, with: &str, all: bool) -> String {
        // Both ways, with captures and (when the replacement needs no group
        // but the whole match) without: they must agree.
        let with_groups = p(re).substitute(s.into(), all, true, expand(with));
        if !names_a_group(with) {
            assert_eq!(
                p(re).substitute(s.into(), all, false, expand(with)),
                with_groups,
                "{re} on {s:?}"
            );
        }
        with_groups.into_owned()
    }

    /// Whether a replacement names a group other than `\0`.
    fn names_a_group(with: &str) -> bool {
        with.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\\' && (b'1'..=b'9').contains(&w[1]))
    }

    #[test]
    fn plain_patterns_stay_linear() {
        for re in [r"^/(.*?)/?$", r"(?i)\.(jpg|png)$", r"\w+\s+\w+", "a|b"] {
            assert!(!p(re).is_backtracking(), "{re}");
        }
        for re in [
            r"wordpress_(?!test_cookie)[a-zA-Z0-9_]+",
            r"(\w+)\s+\1",
            r"(?<=/)x",
            r"(?<!a)b",
            r"(?=a)a",
            r"(?>a+)b",
            r"a++b",
            r"\d?+",
            r"(?<n>a)\k<n>",
            r"(a)?(?(1)b|c)",
            r"foo\Kbar",
        ] {
            assert!(p(re).is_backtracking(), "{re}");
        }
        // What the README promises of the linear engine.
        for re in [
            r"(?P<n>a)",
            "[[:alpha:]]+",
            r"\Aa\z",
            "(?x) a b # c",
            "(?i:a)b",
            "(?ms)^a.b$",
        ] {
            assert!(!p(re).is_backtracking(), "{re}");
        }
        assert!(Pattern::new(r"\Qa.b\E").is_err());
        assert_eq!(sub(r"foo\Kbar", "foobar", "X", false), "fooX");
        assert!(p(r"(a)?(?(1)b|c)").is_match("c"));
    }

    #[test]
    fn look_ahead_strips_wordpress_cookies_but_the_test_cookie() {
        let cookie =
            "wordpress_logged_in_1=a; wordpress_test_cookie=WP; wp-postpass_9=x; theme=dark";
        let re = "wordpress_(?!test_cookie)[a-zA-Z0-9_]+|wp-postpass_[a-zA-Z0-9_]+";
        assert_eq!(
            sub(re, cookie, "", true),
            "=a; wordpress_test_cookie=WP; =x; theme=dark"
        );
        assert!(p(re).is_match("wordpress_sec_1"));
        assert!(!p(re).is_match("wordpress_test_cookie"));
    }

    #[test]
    fn back_references_and_look_behind() {
        let dup = p(r"(\w+)\s+\1");
        assert!(dup.is_match("the the end"));
        assert!(!dup.is_match("the cat end"));
        assert_eq!(
            sub(r"\b(\w+)\s+\1\b", "say it it again", "\\1", true),
            "say it again"
        );
        assert_eq!(sub(r"(?<=/)v\d+/", "/v1/api/v2/x", "", true), "/api/x");
        assert!(!p(r"(?<!www\.)example\.com").is_match("www.example.com"));
        assert!(p(r"(?<!www\.)example\.com").is_match("api.example.com"));
        assert!(p("(?i)(?=.*MOBILE)").is_match("x mobile y"));
    }

    #[test]
    fn the_empty_text_is_answered_as_the_engine_would() {
        for re in [
            "^$",
            "x*",
            "a",
            r"^\s*$",
            "(?i)(ipad|tablet)",
            "^",
            "b?$",
            "[^a]",
        ] {
            let engine = regex::Regex::new(re).expect("valid").is_match("");
            assert_eq!(p(re).is_match(""), engine, "{re}");
        }
        assert!(p("^$").is_match(""));
        assert!(!p("a").is_match(""));
    }

    #[test]
    fn substitution_in_both_engines() {
        for re in ["(o+)", "(o+)(?!x)"] {
            assert_eq!(sub(re, "foo boo", "<\\1>", false), "f<oo> boo", "{re}");
            assert_eq!(sub(re, "foo boo", "<\\1>", true), "f<oo> b<oo>", "{re}");
            assert!(matches!(
                p(re).substitute("xyz".into(), true, false, expand("-")),
                Cow::Borrowed("xyz")
            ));
        }
        for re in ["x*", "(?!y)x*"] {
            assert_eq!(sub(re, "ab", "-", true), "-a-b-", "{re}");
        }
        assert_eq!(sub("^/(.*?)/?$", "/a/b/", "\\1", false), "a/b");
        // Replacements without groups (found without captures; `sub`
        // checks that both ways agree).
        assert_eq!(
            sub(":[0-9]+$", "example.com:8080", "", false),
            "example.com"
        );
        assert_eq!(sub("; +", "a=1;  b=2; c=3", ";", true), "a=1;b=2;c=3");
        assert_eq!(sub("(o+)", "foo boo", "[\\0]", true), "f[oo] b[oo]");
        assert_eq!(sub("(?i)O", "foo", "0", false), "f0o");
        // A group that did not take part is empty.
        assert_eq!(sub(r"(a)|(?=b)(b)", "b", "[\\1\\2]", false), "[b]");
    }

    /// Random linear patterns, subjects and group-free replacements: the
    /// substitution found without captures is the one found with them.
    #[test]
    fn random_substitutions_agree_with_and_without_captures() {
        const PIECES: [&str; 16] = [
            "a", "b", "x*", r"\b", "^", "$", "(?m)", "(?i)", "[ab]", "|", "é", "a?", "(b)", ".",
            r"\s", "{0,2}",
        ];
        const LETTERS: [&str; 7] = ["a", "b", "B", " ", "é", "\n", "x"];
        const WITH: [&str; 3] = ["", "-", "<\\0>"];
        let mut next = test_numbers(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for _ in 0..2_000 {
            let pattern: String = (0..next(4) + 1)
                .map(|_| PIECES[next(PIECES.len())])
                .collect();
            let Ok(re) = Pattern::new(&pattern) else {
                continue;
            };
            if re.is_backtracking() {
                continue;
            }
            for _ in 0..4 {
                let subject: String = (0..next(6)).map(|_| LETTERS[next(LETTERS.len())]).collect();
                let with = WITH[next(WITH.len())];
                for all in [false, true] {
                    let captures = re.substitute(subject.as_str().into(), all, true, expand(with));
                    let bounds = re.substitute(subject.as_str().into(), all, false, expand(with));
                    assert_eq!(captures, bounds, "{pattern:?} on {subject:?} with {with:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 4_000, "only {checked} checks");
    }

    /// `regsub` with a pattern answered without the engine (plain text,
    /// a set, a run: `:[0-9]+$`) replaces what the engine's first match
    /// would.
    #[test]
    fn quick_substitutions_are_the_engines() {
        let patterns = [
            ":[0-9]+$",
            ":[0-9]+",
            "[?&]+$",
            r"^www\.",
            "#",
            "^/v[0-9]+",
            "[A-Z]",
            "$",
            "^",
            "",
            "x+",
            "^a$",
        ];
        let subjects = [
            "",
            "a",
            "Example.COM:8080",
            "127.0.0.1:6085",
            "a:1:2",
            "a:1:2x",
            "/p?a=1&&",
            "www.x",
            "/#f",
            "/v12/x",
            "xxyxx",
            "é:1",
        ];
        for re in patterns {
            let compiled = p(re);
            assert!(
                matches!(compiled, Pattern::Linear(_, Shortcut::Quick(_), _)),
                "{re} is quick"
            );
            let engine = regex::Regex::new(re).unwrap_or_else(|e| panic!("{re}: {e}"));
            for s in subjects {
                let ours = compiled.substitute(s.into(), false, false, expand("<\\0>"));
                assert_eq!(ours, engine.replacen(s, 1, "<$0>"), "{re} on {s:?}");
            }
        }
    }

    #[test]
    fn runaway_backtracking_is_no_match() {
        // Exponential in a backtracking engine: must give up, not hang.
        let re = p(r"^(\w+\s?)*$(?<=x)");
        assert!(re.is_backtracking());
        let subject = format!("{}!", "a".repeat(64));
        let start = std::time::Instant::now();
        assert!(!re.is_match(&subject));
        assert_eq!(
            re.substitute(subject.as_str().into(), true, false, expand("z")),
            subject
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // This one matches (second branch), but only after the first has
        // tried exponentially many ways: the limit turns it into no match.
        let re = p(r"^(?:(a|aa)+\1c|a+b)");
        assert!(re.is_match("aab"));
        assert!(!re.is_match(&format!("{}b", "a".repeat(40))));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn possessive_repetition_is_not_read_as_nested_repetition() {
        for re in ["a++a", "a*+a", r"\d{1,3}+1", "(?:ab)++ab"] {
            assert!(p(re).is_backtracking(), "{re}");
            assert!(!p(re).is_match("aaaa ab ab 123"), "{re}");
        }
        // `+` after an escaped or bracketed `+` or `*` is plain repetition.
        for re in [r"\++", "[+*]+", "[]+]+", "[[:alpha:]+]+"] {
            assert!(!p(re).is_backtracking(), "{re}");
        }
        assert!(p("a{2}+").is_match("aa"));
        assert!(!has_possessive(r"\Qa+\E+"));
        assert!(has_possessive(r"\Qa+\Ea++"));
    }

    #[test]
    fn realistic_long_subjects_stay_within_the_limit() {
        // A 13 KB Cookie header through the WordPress clean-up.
        let mut cookie = String::new();
        for i in 0..400 {
            cookie.push_str(&format!("some_cookie_{i}=value{i}value{i}; "));
        }
        cookie.push_str("wordpress_sec_1=a; wordpress_test_cookie=WP");
        let out = sub(
            r"(^|;\s*)(wordpress_(?!test_cookie)[a-zA-Z0-9_]+|wp-postpass_[a-zA-Z0-9_]+)=[^;]*",
            &cookie,
            "",
            true,
        );
        assert!(out.ends_with("; wordpress_test_cookie=WP"), "gave up");
        assert!(!out.contains("wordpress_sec_1"), "gave up");
        // A 9 KB URL, a back-reference at its end.
        let url = format!("/{}/x/x", "abcdefgh/".repeat(1000));
        assert!(p(r"/(\w+)/\1(/|$)").is_match(&url));
        // 4 KB of distinct words before the repeated one.
        let mut text: String = (0..300).map(|i| format!("w{i}abcdefghij ")).collect();
        text.push_str("dup dup");
        assert!(p(r"(\w+)\s+\1").is_match(&text));
        // A 20 KB subject, a look-behind at its end.
        let s = format!("{}example.com", "x".repeat(20000));
        assert!(p(r"(?<!www\.)example\.com").is_match(&s));
    }

    #[test]
    fn conditions_name_existing_groups() {
        assert!(p(r"(a)?(?(1)b|c)").is_match("c"));
        assert!(p(r"(?<n>x)?(?(<n>)a|b)").is_match("xa"));
        assert!(p(r"(?<n>x)?(?('n')a|b)").is_match("b"));
        // A condition inside a class or after an escape is not one.
        assert!(!p(r"[(?(5)]+").is_backtracking());
        assert!(p(r"\(?(5)(?=b)").is_match("(5b"));
        // fancy-regex panics matching `(?(5)…)` without a group 5.
        for (re, why) in [
            (r"(?(5)b|c)", "group 5, which does not exist"),
            (r"(a)(?(2)b|c)", "group 2, which does not exist"),
            (r"(?(0)a|b)", "group 0, which does not exist"),
            (r"(?(R)a|b)", "is not supported"),
            (r"(?(DEFINE)a)", "is not supported"),
            (r"(a)(?(-1)a|b)", "is not supported"),
            (r"(?(n)a|b)", "is not supported"),
            (r"a++(?(9)b)", "group 9, which does not exist"),
        ] {
            let e = Pattern::new(re).unwrap_err();
            assert!(e.contains(why), "{re}: {e}");
        }
        assert!(Pattern::new(r"(?(<n>)a|b)").is_err());
    }

    #[test]
    fn errors_say_why() {
        assert_eq!(Pattern::new("(a").unwrap_err(), "unclosed group");
        assert_eq!(Pattern::new("(?=a").unwrap_err(), "unclosed group");
        let e = Pattern::new(r"(?=a)\q").unwrap_err();
        assert!(e.contains("at byte 5"), "{e}");
        let e = Pattern::new(r"(a)\2").unwrap_err();
        assert!(e.contains("back reference"), "{e}");
        assert!(Pattern::new(r"\w{1000}\w{1000}\w{1000}")
            .unwrap_err()
            .contains("too large"));
        let e = Pattern::new(r"(?=\w{1000}\w{1000}\w{1000})").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(Pattern::new(&deep).is_err());
        let deep = format!("(?=a){}a{}", "(".repeat(200), ")".repeat(200));
        assert!(Pattern::new(&deep).is_err());
    }
}
