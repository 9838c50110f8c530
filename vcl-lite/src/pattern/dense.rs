//! `is_match` on a fully built DFA: a table walk over the subject's bytes,
//! with no search cache to take out of a pool and no choice of strategy
//! per search. For the URL tests of real policies (`req.url ~
//! "^/(admin|account)(/|$|\?)"`, `req.url ~ "\.(css|js|png)(\?.*)?$"`)
//! the `regex` engine spends ~440 instructions a search before and around
//! a walk of a few dozen bytes (callgrind, lacquer's production policy).
//!
//! Built when the policy loads, from the same syntax as the engine reads
//! (`regex-automata` is the engine's own automaton crate, same parser and
//! defaults), so the answer is the engine's. Within [`DENSE_SIZE_LIMIT`]
//! only: a pattern whose automaton would be larger, or that a DFA cannot
//! express (a Unicode word boundary), keeps the engine.

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{nfa::thompson, util::syntax, Input, MatchKind, Span};

/// Largest automaton built for one pattern (and largest memory its
/// building may use). The 20 patterns of `benches/production.vcl` take
/// 0.2–25 KiB each, ~120 KiB in all; a pattern over the limit (a long
/// case-insensitive list of user agents, say) keeps the engine.
pub const DENSE_SIZE_LIMIT: usize = 256 << 10;

/// Texts at least this long are first searched for where a match can
/// start ([`Dense`]'s prefilter): on shorter ones (URLs, hosts) setting up
/// the search costs more than the walk it saves.
const PREFILTER_FROM: usize = 48;

/// A pattern's automaton, and the literals every match starts with when a
/// fast search for them exists (`(?i)(ipad|tablet|kindle|playbook)` on a
/// 120-byte `User-Agent`: a vectorised search for the four words instead
/// of a table walk over every byte).
#[derive(Debug, Clone)]
pub(crate) struct Dense(dense::DFA<Vec<u32>>, Option<Prefilter>);

impl Dense {
    /// The automaton of `pattern` (with the engine's nesting limit
    /// `nest_limit`), if it has one within [`DENSE_SIZE_LIMIT`].
    pub(crate) fn of(pattern: &str, nest_limit: u32) -> Option<Dense> {
        dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Unanchored)
                    .dfa_size_limit(Some(DENSE_SIZE_LIMIT))
                    .determinize_size_limit(Some(DENSE_SIZE_LIMIT)),
            )
            .syntax(syntax::Config::new().nest_limit(nest_limit))
            .thompson(thompson::Config::new().nfa_size_limit(Some(DENSE_SIZE_LIMIT)))
            .build(pattern)
            .ok()
            .map(|dfa| Dense(dfa, prefilter(pattern, nest_limit)))
    }

    /// Whether `s` has a match; `None` when the automaton cannot say (a
    /// quit state: none is configured here, so never; the engine answers).
    ///
    /// A walk of its own rather than `try_search_fwd`, which also serves
    /// prefilters and match positions (~240 instructions for an 11-byte
    /// URL against ~190): a match ends in the automaton when it enters a
    /// match state (one byte late, or at the end of the text); none can
    /// come once it is in the dead state; and a state that only a few
    /// bytes leave (the unanchored start of `[?&]nocache=`) skips to the
    /// next of them with `memchr`, as the crate's own search does.
    pub(crate) fn is_match(&self, s: &str) -> Option<bool> {
        let dfa = &self.0;
        let bytes = s.as_bytes();
        // No match starts before the first place the prefilter finds (and
        // none at all when it finds none); the walk starts there, with the
        // byte before it as the look-behind context (`^`, `\b`).
        let mut at = match &self.1 {
            Some(pre) if bytes.len() >= PREFILTER_FROM => {
                match pre.find(bytes, Span::from(0..bytes.len())) {
                    Some(found) => found.start,
                    None => return Some(false),
                }
            }
            _ => 0,
        };
        let mut state = dfa.start_state_forward(&Input::new(s).range(at..)).ok()?;
        loop {
            if dfa.is_special_state(state) {
                if dfa.is_match_state(state) {
                    return Some(true);
                }
                if dfa.is_dead_state(state) {
                    return Some(false);
                }
                if dfa.is_quit_state(state) {
                    return None;
                }
                if dfa.is_accel_state(state) {
                    at = skip_to(dfa.accelerator(state), bytes, at);
                }
            }
            let Some(&byte) = bytes.get(at) else { break };
            state = dfa.next_state(state, byte);
            at += 1;
        }
        Some(dfa.is_match_state(dfa.next_eoi_state(state)))
    }
}

/// The prefilter of `pattern`'s match starts, when a fast one exists.
fn prefilter(pattern: &str, nest_limit: u32) -> Option<Prefilter> {
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(nest_limit)
        .build()
        .parse(pattern)
        .ok()?;
    Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, &hir).filter(Prefilter::is_fast)
}

/// Where the next of `needles` (one to three bytes) is in `bytes` from
/// `at`; the end when none is.
fn skip_to(needles: &[u8], bytes: &[u8], at: usize) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    let found = match *needles {
        [a] => memchr::memchr(a, rest),
        [a, b] => memchr::memchr2(a, b, rest),
        [a, b, c] => memchr::memchr3(a, b, c, rest),
        _ => Some(0),
    };
    found.map_or(bytes.len(), |p| at + p)
}

#[cfg(test)]
mod tests {
    use super::Dense;

    /// Patterns of real policies and the corners of the dialect: anchors,
    /// multi-line mode, case folding (Unicode: `k` also matches the Kelvin
    /// sign), Unicode classes, `.` and line breaks, empty alternatives.
    const PATTERNS: [&str; 22] = [
        r"^/(admin|account|checkout|cart|login|logout|api/session)(/|$|\?)",
        r"[?&](nocache|preview)=",
        r"(\?|&)(utm_[a-z]+|gclid|fbclid|mc_cid|mc_eid|_ga|yclid)=",
        r"^[^?]*\.(7z|avi|css|gif|jpe?g|js|png|svgz?|woff2?|xml|zip)(\?.*)?$",
        r"(?i)(ipad|tablet|kindle|playbook)",
        r"(?i)(mobi|iphone|android|blackberry|opera mini)",
        r"^https?$",
        r":[0-9]+$",
        r"(^|;\s*)(PHPSESSID|SESS[a-z0-9]+|wordpress_logged_in_[a-z0-9]+)=",
        r"^\s*$",
        r"(?m)^x$",
        r"a.c",
        r"(?s)a.c",
        r"\d+",
        r"\w+@\w+",
        r"[[:upper:]]{2}",
        r"\p{Greek}",
        r"(?i)straße",
        r"^$",
        r"x|",
        r"(a|b)*c$",
        r"\Bx",
    ];
    const SUBJECTS: [&str; 24] = [
        "",
        "/",
        "/admin",
        "/admin/x",
        "/administrator",
        "/cart?x=1",
        "/bytes/1024",
        "/a.css",
        "/a.css?v=3",
        "/a.css/x",
        "/p?utm_source=x&b=1",
        "/p?nocache=1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
        "Mozilla/5.0 (KINDLE)",
        "\u{212A}indle",
        "https",
        "example.com:8080",
        "a=1; SESSabc=2",
        " \t",
        "x\nx",
        "a\nc",
        "٣٤",
        "ab@cd αβ",
        "STRASSE straße",
    ];

    #[test]
    fn dense_answers_as_the_engine() {
        let mut dense = 0;
        for p in PATTERNS {
            let re = regex::Regex::new(p).expect("test pattern");
            let Some(dfa) = Dense::of(p, 64) else {
                continue;
            };
            dense += 1;
            for s in SUBJECTS {
                assert_eq!(dfa.is_match(s), Some(re.is_match(s)), "{p:?} on {s:?}");
            }
        }
        assert!(
            dense >= 20,
            "{dense} of the test patterns have an automaton"
        );
    }

    /// Long subjects, where states that few bytes leave are skipped over
    /// (`memchr` to the next `?` or `&` for `[?&](nocache|preview)=`).
    #[test]
    fn long_subjects_answer_as_the_engine() {
        let long = "x".repeat(300);
        let subjects = [
            format!("/{long}"),
            format!("/{long}?nocache=1"),
            format!("/{long}?a=1&preview=2"),
            format!("/{long}&nocache"),
            format!("/{long}.css"),
            format!("/{long}.css?{long}"),
            format!("{long}:8080"),
            format!("{long}\n"),
            format!("Mozilla/5.0 ({long}; Android 14) Mobile"),
        ];
        for p in PATTERNS {
            let re = regex::Regex::new(p).expect("test pattern");
            let Some(dfa) = Dense::of(p, 64) else {
                continue;
            };
            for s in &subjects {
                assert_eq!(dfa.is_match(s), Some(re.is_match(s)), "{p:?} on {s:?}");
            }
        }
    }

    /// The pieces random patterns are made of, and their subjects' letters.
    const PIECES: [&str; 20] = [
        "a", "b", "A", r"\.", ".", "/", "^", "$", "(?i)", "[ab]", "[^a]", "(a|b)", "*", "+", "?",
        "é", r"\d", r"\s", "(?m)", "(?s)",
    ];
    const LETTERS: [&str; 9] = ["a", "b", "A", ".", "/", "é", "\n", "1", " "];

    /// Random patterns over the dialect's pieces on random subjects.
    #[test]
    fn random_patterns_answer_as_the_engine() {
        let (mut checked, mut dense) = (0, 0);
        let cases =
            crate::pattern::random_cases(0x2545_f491_4f6c_dd1d, &PIECES, &LETTERS, 3_000, (5, 5));
        for (pattern, re, subjects) in cases {
            let Some(dfa) = Dense::of(&pattern, 64) else {
                continue;
            };
            dense += 1;
            for subject in &subjects {
                assert_eq!(
                    dfa.is_match(subject),
                    Some(re.is_match(subject)),
                    "{pattern:?} on {subject:?}"
                );
                checked += 1;
            }
        }
        assert!(dense > 1_000, "only {dense} patterns had an automaton");
        assert!(checked > 8_000);
    }

    /// The same random patterns on texts long enough for the prefilter
    /// (the short case put before, after and between filler): where it
    /// starts the walk must not change an answer (`^` after the filler,
    /// `\B`, case folding, multi-byte letters).
    #[test]
    fn random_patterns_on_long_subjects_answer_as_the_engine() {
        let filler = "x1 /é\nx".repeat(8);
        let (mut prefiltered, mut checked) = (0, 0);
        let cases =
            crate::pattern::random_cases(0x9e37_79b9_7f4a_7c15, &PIECES, &LETTERS, 3_000, (5, 5));
        for (pattern, re, subjects) in cases {
            let Some(dfa) = Dense::of(&pattern, 64) else {
                continue;
            };
            prefiltered += usize::from(dfa.1.is_some());
            for subject in &subjects {
                for long in [
                    format!("{filler}{subject}"),
                    format!("{subject}{filler}"),
                    format!("{filler}{subject}{filler}"),
                    format!("{subject}{filler}{subject}"),
                ] {
                    assert_eq!(
                        dfa.is_match(&long),
                        Some(re.is_match(&long)),
                        "{pattern:?} on {long:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            prefiltered > 100,
            "only {prefiltered} patterns had a prefilter"
        );
        assert!(checked > 30_000);
    }

    /// Real policies' `User-Agent` tests on real agents (each longer than
    /// the prefilter's threshold), and the Kelvin sign `(?i)k` matches.
    #[test]
    fn user_agent_tests_answer_as_the_engine() {
        let agents = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 \u{212A}INDLE",
            "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
        ];
        for p in [
            r"(?i)(ipad|tablet|kindle|playbook)",
            r"(?i)(mobi|iphone|android|blackberry|opera mini)",
            r"(?i)bot|crawl|spider",
            r"Chrome/[0-9]+",
        ] {
            let re = regex::Regex::new(p).expect("test pattern");
            let dfa = Dense::of(p, 64).expect("small pattern");
            for a in agents {
                assert_eq!(dfa.is_match(a), Some(re.is_match(a)), "{p:?} on {a:?}");
            }
        }
    }

    #[test]
    fn what_a_dfa_cannot_do_is_left_to_the_engine() {
        // A Unicode word boundary: no DFA.
        assert!(Dense::of(r"\bword\b", 64).is_none());
        // Too large an automaton: `(a|b)*a(a|b){20}` has 2^21 states.
        assert!(Dense::of("(a|b)*a(a|b){20}", 64).is_none());
        // Nested deeper than allowed.
        assert!(Dense::of(&format!("{}a{}", "(".repeat(70), ")".repeat(70)), 64).is_none());
    }
}
