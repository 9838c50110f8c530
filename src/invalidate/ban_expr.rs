//! Varnish-style BAN expressions: parsing and evaluation.
//!
//! A ban expression is a conjunction of conditions:
//!
//! ```text
//! expr     := cond ( "&&" cond )*
//! cond     := field op argument
//! field    := "req.url" | "req.http." NAME | "obj.status" | "obj.http." NAME
//! op       := "==" | "!=" | "~" | "!~"            (string fields)
//!           | "==" | "!=" | "<" | ">" | "<=" | ">=" (obj.status only)
//! argument := '"' ( '\"' | '\\' | any other char )* '"'  |  bare token
//! ```
//!
//! * Header names (`NAME`) are case-insensitive; the field prefixes
//!   (`req.url`, `req.http.`, `obj.status`, `obj.http.`) are written in
//!   lowercase, as in Varnish.
//! * `~` and `!~` take a regular expression (the [`regex`] crate's syntax,
//!   unanchored search). It is compiled once, at parse time, with its
//!   compiled size bounded by [`REGEX_SIZE_LIMIT`] and its lazy DFA cache by
//!   [`REGEX_CACHE_LIMIT`]. Each compiled regex reports what it costs
//!   ([`BanExpr::regexes`], [`BanRegex::charge`]), and [`BanExpr::parse_with`]
//!   can reuse regexes already compiled for other bans.
//! * In a quoted argument, `\"` stands for `"` and `\\` for `\`; a backslash
//!   before any other character is kept as is, so regex escapes such as
//!   `"\.png$"` need no doubling.
//! * A bare argument runs up to the next whitespace or `&&` and cannot
//!   contain `"`.
//! * `obj.status` takes an integer from 0 to 999, quoted or bare.
//! * Whitespace between tokens is free. An expression is at most [`MAX_LEN`]
//!   bytes long and has at most [`MAX_CONDITIONS`] conditions.
//!
//! Evaluation: a ban matches when every condition is true. A missing header
//! compares as the empty string for `==` and `!=`, and never matches `~`
//! (so `!~` is true for it). String comparisons are case-sensitive.
//!
//! Everything here is pure: no I/O, no allocation beyond the parsed form.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use std::sync::Arc;

use regex_automata::meta;

/// Longest accepted expression, in bytes.
pub const MAX_LEN: usize = 4096;

/// Most conditions (joined by `&&`) accepted in one expression.
pub const MAX_CONDITIONS: usize = 16;

/// Bound on the compiled size of each regex (its NFA), in bytes, so that a
/// client cannot make the cache allocate without limit.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Bound on each lazy DFA cache of a regex (forward and reverse), in bytes.
/// Past it the cache is cleared and refilled, or matching falls back to a
/// slower engine: never more memory.
pub const REGEX_CACHE_LIMIT: usize = 256 << 10;

/// Bytes charged for one thread's match cache of a regex, on top of the
/// compiled form: both lazy DFA caches at their bound, plus the bounded
/// backtracker's visited set (256 KiB in `regex-automata`).
const MATCH_CACHE_CHARGE: usize = 2 * REGEX_CACHE_LIMIT + (256 << 10);

const FIELD_HINT: &str = "(expected req.url, req.http.NAME, obj.status or obj.http.NAME)";
const STRING_OPS_HINT: &str = "(==, !=, ~, !~)";
const STATUS_OPS_HINT: &str = "(==, !=, <, >, <=, >=)";

/// Why a ban expression was rejected.
///
/// `column` is 1-based and counted in characters (not bytes) of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct BanParseError {
    /// 1-based column, in characters, where the problem was found.
    pub column: usize,
    /// Human-readable explanation.
    pub reason: String,
}

/// A parsed ban expression: one or more conditions that must all hold.
///
/// Two expressions are equal (and hash equally) when their
/// [canonical forms](BanExpr::canonical) are equal.
#[derive(Debug, Clone)]
pub struct BanExpr {
    conditions: Vec<Condition>,
    canonical: String,
}

/// What a ban is evaluated against: a stored object and the request it was stored for.
pub trait BanTarget {
    /// The request URL (path and query) the object was stored for.
    fn url(&self) -> &str;
    /// A request header, looked up by its lowercase name (`host` must work).
    fn req_header(&self, name: &str) -> Option<&str>;
    /// The stored response's status code.
    fn status(&self) -> u16;
    /// A stored response header, looked up by its lowercase name.
    fn obj_header(&self, name: &str) -> Option<&str>;
}

#[derive(Debug, Clone)]
enum Condition {
    Text { field: TextField, test: TextTest },
    Status { op: CmpOp, value: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TextField {
    ReqUrl,
    /// Lowercase header name.
    ReqHeader(String),
    /// Lowercase header name.
    ObjHeader(String),
}

#[derive(Debug, Clone)]
enum TextTest {
    Eq(String),
    Ne(String),
    Match(Arc<BanRegex>),
    NoMatch(Arc<BanRegex>),
}

/// A compiled ban regex, shared (`Arc`) by every condition of the bans in
/// force that uses the same pattern.
pub struct BanRegex {
    pattern: Box<str>,
    re: meta::Regex,
    charge: usize,
}

impl BanRegex {
    /// Compiles `pattern` with the size bounds of this module. The error is
    /// one line, starting with `invalid regex: `.
    pub fn compile(pattern: &str) -> Result<BanRegex, String> {
        let config = meta::Config::new()
            .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
            .hybrid_cache_capacity(REGEX_CACHE_LIMIT)
            .utf8_empty(true);
        let syntax = regex_automata::util::syntax::Config::new().utf8(true);
        let re = meta::Builder::new()
            .configure(config)
            .syntax(syntax)
            .build(pattern)
            .map_err(|e| format!("invalid regex: {}", regex_message(&e)))?;
        // The match caches grow with the program (NFA states, DFA states
        // built from them) up to their bounds: a small pattern's stay small.
        let compiled = re.memory_usage();
        let charge = compiled + MATCH_CACHE_CHARGE.min(2 * compiled) + 2 * pattern.len() + 64;
        Ok(BanRegex {
            pattern: pattern.into(),
            re,
            charge,
        })
    }

    /// The pattern as written (after unquoting).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Bytes this regex is charged: its compiled form (as `regex-automata`
    /// measures it), one match cache (estimated as twice the compiled form,
    /// at most the caches' bounds), and the pattern text. Each further
    /// thread matching it at the same moment may hold another match cache.
    pub fn charge(&self) -> usize {
        self.charge
    }

    fn is_match(&self, haystack: &str) -> bool {
        self.re.is_match(haystack)
    }
}

impl fmt::Debug for BanRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BanRegex")
            .field("pattern", &self.pattern)
            .field("charge", &self.charge)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOp {
    Eq,
    Ne,
    Match,
    NoMatch,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
        }
    }

    fn eval(self, left: u16, right: u16) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Lt => left < right,
            CmpOp::Gt => left > right,
            CmpOp::Le => left <= right,
            CmpOp::Ge => left >= right,
        }
    }
}

impl TextOp {
    fn as_str(self) -> &'static str {
        match self {
            TextOp::Eq => "==",
            TextOp::Ne => "!=",
            TextOp::Match => "~",
            TextOp::NoMatch => "!~",
        }
    }
}

impl TextField {
    fn value<'t>(&self, t: &'t dyn BanTarget) -> Option<&'t str> {
        match self {
            TextField::ReqUrl => Some(t.url()),
            TextField::ReqHeader(name) => t.req_header(name),
            TextField::ObjHeader(name) => t.obj_header(name),
        }
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            TextField::ReqUrl => out.push_str("req.url"),
            TextField::ReqHeader(name) => {
                out.push_str("req.http.");
                out.push_str(name);
            }
            TextField::ObjHeader(name) => {
                out.push_str("obj.http.");
                out.push_str(name);
            }
        }
    }
}

impl Condition {
    fn eval(&self, t: &dyn BanTarget) -> bool {
        match self {
            Condition::Status { op, value } => op.eval(t.status(), *value),
            Condition::Text { field, test } => {
                let value = field.value(t);
                match test {
                    TextTest::Eq(arg) => value.unwrap_or("") == arg,
                    TextTest::Ne(arg) => value.unwrap_or("") != arg,
                    TextTest::Match(re) => value.is_some_and(|v| re.is_match(v)),
                    TextTest::NoMatch(re) => !value.is_some_and(|v| re.is_match(v)),
                }
            }
        }
    }

    fn lurker_friendly(&self) -> bool {
        match self {
            Condition::Status { .. } => true,
            Condition::Text { field, .. } => match field {
                TextField::ReqUrl | TextField::ObjHeader(_) => true,
                TextField::ReqHeader(name) => name == "host",
            },
        }
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Condition::Status { op, value } => {
                out.push_str("obj.status ");
                out.push_str(op.as_str());
                out.push(' ');
                out.push_str(&value.to_string());
            }
            Condition::Text { field, test } => {
                field.write_canonical(out);
                let (op, arg) = match test {
                    TextTest::Eq(s) => (TextOp::Eq, s.as_str()),
                    TextTest::Ne(s) => (TextOp::Ne, s.as_str()),
                    TextTest::Match(re) => (TextOp::Match, re.pattern()),
                    TextTest::NoMatch(re) => (TextOp::NoMatch, re.pattern()),
                };
                out.push(' ');
                out.push_str(op.as_str());
                out.push(' ');
                write_quoted(arg, out);
            }
        }
    }
}

fn write_quoted(arg: &str, out: &mut String) {
    out.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

impl BanExpr {
    /// Parses a ban expression (see the [module documentation](self) for the
    /// grammar). Regexes are compiled here, once.
    ///
    /// Errors carry the 1-based column (in characters) of the offending token.
    pub fn parse(s: &str) -> Result<BanExpr, BanParseError> {
        BanExpr::parse_with(s, &|_| None)
    }

    /// Like [`BanExpr::parse`], but a regex whose pattern `known` returns
    /// is shared instead of compiled again.
    pub fn parse_with(
        s: &str,
        known: &dyn Fn(&str) -> Option<Arc<BanRegex>>,
    ) -> Result<BanExpr, BanParseError> {
        if s.len() > MAX_LEN {
            let column = s.char_indices().take_while(|(i, _)| *i < MAX_LEN).count() + 1;
            return Err(BanParseError {
                column,
                reason: format!("expression longer than {MAX_LEN} bytes"),
            });
        }
        let mut parser = Parser {
            chars: s.chars().collect(),
            pos: 0,
            known,
        };
        let conditions = parser.expression()?;
        let mut canonical = String::with_capacity(s.len() + 8);
        for (i, cond) in conditions.iter().enumerate() {
            if i > 0 {
                canonical.push_str(" && ");
            }
            cond.write_canonical(&mut canonical);
        }
        Ok(BanExpr {
            conditions,
            canonical,
        })
    }

    /// The compiled regexes of the expression, in condition order (a
    /// pattern used twice appears twice).
    pub fn regexes(&self) -> impl Iterator<Item = &Arc<BanRegex>> + '_ {
        self.conditions.iter().filter_map(|c| match c {
            Condition::Text {
                test: TextTest::Match(re) | TextTest::NoMatch(re),
                ..
            } => Some(re),
            _ => None,
        })
    }

    /// Replaces each regex by what `f` returns for it (the ban list swaps in
    /// the copy it already holds, so that identical patterns share one).
    pub fn intern_regexes(&mut self, mut f: impl FnMut(&Arc<BanRegex>) -> Arc<BanRegex>) {
        for c in &mut self.conditions {
            if let Condition::Text {
                test: TextTest::Match(re) | TextTest::NoMatch(re),
                ..
            } = c
            {
                *re = f(re);
            }
        }
    }

    /// Heap and inline bytes of the expression without its regexes (those
    /// are charged per distinct pattern: [`BanRegex::charge`]).
    pub fn own_bytes(&self) -> usize {
        let conditions: usize = self
            .conditions
            .iter()
            .map(|c| {
                std::mem::size_of::<Condition>()
                    + match c {
                        Condition::Status { .. } => 0,
                        Condition::Text { field, test } => {
                            let name = match field {
                                TextField::ReqUrl => 0,
                                TextField::ReqHeader(n) | TextField::ObjHeader(n) => n.len(),
                            };
                            let arg = match test {
                                TextTest::Eq(a) | TextTest::Ne(a) => a.len(),
                                TextTest::Match(_) | TextTest::NoMatch(_) => 0,
                            };
                            name + arg
                        }
                    }
            })
            .sum();
        std::mem::size_of::<BanExpr>() + self.canonical.len() + conditions
    }

    /// True when every condition holds for `t`.
    ///
    /// A missing header compares as `""` for `==`/`!=` and does not match
    /// `~` (so `!~` is true for it).
    pub fn matches(&self, t: &dyn BanTarget) -> bool {
        self.conditions.iter().all(|c| c.eval(t))
    }

    /// True when every condition can be decided from the stored object alone:
    /// obj.*, req.url, and req.http.host (lacquer keeps each object's URL and Host).
    /// Bans using other req.http.* headers can only be evaluated at lookup time.
    pub fn lurker_friendly(&self) -> bool {
        self.conditions.iter().all(Condition::lurker_friendly)
    }

    /// A normalised text form (single spaces, quoted arguments), so two bans
    /// written differently but meaning the same compare equal (a newer identical ban supersedes older ones).
    ///
    /// Header names are lowercased, string and regex arguments are
    /// double-quoted (with `"` and `\` escaped), `obj.status` arguments are
    /// written as bare integers, and conditions are joined by `" && "` in
    /// their original order. Parsing the canonical form gives the same
    /// canonical form back (it may be a few bytes longer than the input, so
    /// an input right at [`MAX_LEN`] may produce one that exceeds it).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl PartialEq for BanExpr {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for BanExpr {}

impl Hash for BanExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl fmt::Display for BanExpr {
    /// Writes the [canonical form](BanExpr::canonical).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for BanExpr {
    type Err = BanParseError;

    /// Same as [`BanExpr::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BanExpr::parse(s)
    }
}

/// Which kind of field a condition tests, as parsed.
enum ParsedField {
    Text(TextField),
    Status,
}

/// Recursive-descent parser over the input's characters; `pos` is a
/// character index, so the column of `pos` is `pos + 1`.
struct Parser<'k> {
    chars: Vec<char>,
    pos: usize,
    /// Regexes compiled already, by pattern.
    known: &'k dyn Fn(&str) -> Option<Arc<BanRegex>>,
}

impl Parser<'_> {
    fn err(&self, pos: usize, reason: impl Into<String>) -> BanParseError {
        BanParseError {
            column: pos + 1,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn at_and(&self) -> bool {
        self.peek() == Some('&') && self.peek_at(1) == Some('&')
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expression(&mut self) -> Result<Vec<Condition>, BanParseError> {
        let mut conditions = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Err(self.err(0, "empty expression"));
        }
        loop {
            if conditions.len() == MAX_CONDITIONS {
                return Err(self.err(self.pos, format!("more than {MAX_CONDITIONS} conditions")));
            }
            conditions.push(self.condition()?);
            self.skip_ws();
            match self.peek() {
                None => return Ok(conditions),
                Some(_) if self.at_and() => {
                    self.pos += 2;
                    self.skip_ws();
                    if self.peek().is_none() {
                        return Err(self.err(self.pos, "expected a condition after \"&&\""));
                    }
                }
                Some(_) => {
                    return Err(self.err(self.pos, "expected \"&&\" or end of expression"));
                }
            }
        }
    }

    /// Parses one condition; leading whitespace is already skipped and the
    /// input is not at its end.
    fn condition(&mut self) -> Result<Condition, BanParseError> {
        let field = self.field()?;
        self.skip_ws();
        match field {
            ParsedField::Status => {
                let op = self.status_op()?;
                self.skip_ws();
                let arg_pos = self.pos;
                let arg = self.argument()?;
                let value = parse_status(&arg).map_err(|reason| self.err(arg_pos, reason))?;
                Ok(Condition::Status { op, value })
            }
            ParsedField::Text(field) => {
                let op = self.text_op()?;
                self.skip_ws();
                let arg_pos = self.pos;
                let arg = self.argument()?;
                let test = match op {
                    TextOp::Eq => TextTest::Eq(arg),
                    TextOp::Ne => TextTest::Ne(arg),
                    TextOp::Match => TextTest::Match(self.regex(&arg, arg_pos)?),
                    TextOp::NoMatch => TextTest::NoMatch(self.regex(&arg, arg_pos)?),
                };
                Ok(Condition::Text { field, test })
            }
        }
    }

    /// The compiled regex for `pattern`: a known one, else compiled now.
    fn regex(&self, pattern: &str, pos: usize) -> Result<Arc<BanRegex>, BanParseError> {
        if let Some(re) = (self.known)(pattern) {
            return Ok(re);
        }
        BanRegex::compile(pattern)
            .map(Arc::new)
            .map_err(|r| self.err(pos, r))
    }

    fn field(&mut self) -> Result<ParsedField, BanParseError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !matches!(c, '=' | '!' | '~' | '<' | '>' | '"'))
        {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(start, format!("expected a field {FIELD_HINT}")));
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "req.url" => return Ok(ParsedField::Text(TextField::ReqUrl)),
            "obj.status" => return Ok(ParsedField::Status),
            _ => {}
        }
        let (prefix, name) = if let Some(name) = word.strip_prefix("req.http.") {
            ("req.http.", name)
        } else if let Some(name) = word.strip_prefix("obj.http.") {
            ("obj.http.", name)
        } else {
            return Err(self.err(start, format!("unknown field {word:?} {FIELD_HINT}")));
        };
        let name_pos = start + prefix.chars().count();
        if name.is_empty() {
            return Err(self.err(name_pos, format!("missing header name after {prefix:?}")));
        }
        if let Some(offset) = name.chars().position(|c| !is_tchar(c)) {
            return Err(self.err(
                name_pos + offset,
                format!("invalid character in header name {name:?}"),
            ));
        }
        let name = name.to_ascii_lowercase();
        Ok(ParsedField::Text(if prefix == "req.http." {
            TextField::ReqHeader(name)
        } else {
            TextField::ObjHeader(name)
        }))
    }

    fn text_op(&mut self) -> Result<TextOp, BanParseError> {
        let start = self.pos;
        let (op, len) = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => (TextOp::Eq, 2),
            (Some('!'), Some('=')) => (TextOp::Ne, 2),
            (Some('!'), Some('~')) => (TextOp::NoMatch, 2),
            (Some('~'), _) => (TextOp::Match, 1),
            (Some('<' | '>'), next) => {
                let op = if next == Some('=') { "=" } else { "" };
                let c = self.chars[start];
                return Err(self.err(
                    start,
                    format!("operator \"{c}{op}\" is only valid for obj.status {STRING_OPS_HINT}"),
                ));
            }
            _ => {
                return Err(self.err(start, format!("expected an operator {STRING_OPS_HINT}")));
            }
        };
        self.pos += len;
        Ok(op)
    }

    fn status_op(&mut self) -> Result<CmpOp, BanParseError> {
        let start = self.pos;
        let (op, len) = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('=')) => (CmpOp::Eq, 2),
            (Some('!'), Some('=')) => (CmpOp::Ne, 2),
            (Some('<'), Some('=')) => (CmpOp::Le, 2),
            (Some('>'), Some('=')) => (CmpOp::Ge, 2),
            (Some('<'), _) => (CmpOp::Lt, 1),
            (Some('>'), _) => (CmpOp::Gt, 1),
            (Some('~'), _) | (Some('!'), Some('~')) => {
                return Err(self.err(
                    start,
                    format!("obj.status cannot be matched with a regex {STATUS_OPS_HINT}"),
                ));
            }
            _ => {
                return Err(self.err(start, format!("expected an operator {STATUS_OPS_HINT}")));
            }
        };
        self.pos += len;
        Ok(op)
    }

    /// Parses a quoted or bare argument; leading whitespace is already skipped.
    fn argument(&mut self) -> Result<String, BanParseError> {
        let start = self.pos;
        match self.peek() {
            None => Err(self.err(start, "expected an argument")),
            Some('"') => self.quoted(),
            Some(_) if self.at_and() => Err(self.err(start, "expected an argument")),
            Some(_) => {
                let mut out = String::new();
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || self.at_and() {
                        break;
                    }
                    if c == '"' {
                        return Err(self.err(
                            self.pos,
                            "unexpected '\"' in unquoted argument (quote the whole argument)",
                        ));
                    }
                    out.push(c);
                    self.pos += 1;
                }
                Ok(out)
            }
        }
    }

    /// Parses a double-quoted string starting at `self.pos`.
    fn quoted(&mut self) -> Result<String, BanParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(open, "unterminated string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => match self.peek_at(1) {
                    None => return Err(self.err(open, "unterminated string")),
                    Some(c @ ('"' | '\\')) => {
                        out.push(c);
                        self.pos += 2;
                    }
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                        self.pos += 2;
                    }
                },
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

/// RFC 9110 `tchar`, minus nothing: the characters allowed in a header name.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '.'
                | '^'
                | '_'
                | '`'
                | '|'
                | '~'
        )
}

fn parse_status(arg: &str) -> Result<u16, String> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err("obj.status needs an integer".to_owned());
    }
    let digits = arg.trim_start_matches('0');
    if digits.len() > 3 {
        return Err("obj.status needs an integer from 0 to 999".to_owned());
    }
    match digits.parse::<u16>() {
        Ok(v) if v <= 999 => Ok(v),
        Ok(_) => Err("obj.status needs an integer from 0 to 999".to_owned()),
        // All zeros: `trim_start_matches` left nothing.
        Err(_) => Ok(0),
    }
}

/// The informative line of a regex error: for syntax errors the line
/// starting with `error:` (the first line is only "regex parse error:"),
/// otherwise the first line.
fn regex_message(e: &meta::BuildError) -> String {
    if let Some(limit) = e.size_limit() {
        return format!("compiled regex exceeds the size limit of {limit} bytes");
    }
    let text = match e.syntax_error() {
        Some(syntax) => syntax.to_string(),
        None => e.to_string(),
    };
    if let Some(line) = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error:"))
    {
        return line.trim().to_owned();
    }
    text.lines().next().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Obj {
        url: String,
        req: HashMap<String, String>,
        status: u16,
        obj: HashMap<String, String>,
    }

    impl Obj {
        fn new(url: &str, status: u16) -> Obj {
            Obj {
                url: url.to_owned(),
                req: HashMap::new(),
                status,
                obj: HashMap::new(),
            }
        }
        fn req(mut self, name: &str, value: &str) -> Obj {
            self.req.insert(name.to_owned(), value.to_owned());
            self
        }
        fn obj(mut self, name: &str, value: &str) -> Obj {
            self.obj.insert(name.to_owned(), value.to_owned());
            self
        }
    }

    impl BanTarget for Obj {
        fn url(&self) -> &str {
            &self.url
        }
        fn req_header(&self, name: &str) -> Option<&str> {
            assert_eq!(name, name.to_ascii_lowercase(), "names are lowercase");
            self.req.get(name).map(String::as_str)
        }
        fn status(&self) -> u16 {
            self.status
        }
        fn obj_header(&self, name: &str) -> Option<&str> {
            assert_eq!(name, name.to_ascii_lowercase(), "names are lowercase");
            self.obj.get(name).map(String::as_str)
        }
    }

    fn ban(s: &str) -> BanExpr {
        match BanExpr::parse(s) {
            Ok(b) => b,
            Err(e) => panic!("{s:?} failed to parse: {e}"),
        }
    }

    fn m(s: &str, t: &Obj) -> bool {
        ban(s).matches(t)
    }

    fn err(s: &str) -> (usize, String) {
        match BanExpr::parse(s) {
            Ok(b) => panic!("{s:?} parsed as {b}"),
            Err(e) => (e.column, e.reason),
        }
    }

    fn sample() -> Obj {
        Obj::new("/img/logo.png?v=2", 200)
            .req("host", "example.com")
            .req("cookie", "session=abc")
            .obj("content-type", "image/png")
            .obj("x-tags", "a b \"c\"")
    }

    #[test]
    fn req_url_operators() {
        let t = sample();
        assert!(m(r#"req.url == "/img/logo.png?v=2""#, &t));
        assert!(!m(r#"req.url == "/img/logo.png""#, &t));
        assert!(m(r#"req.url != "/img/logo.png""#, &t));
        assert!(!m(r#"req.url != "/img/logo.png?v=2""#, &t));
        assert!(m(r#"req.url ~ "\.png""#, &t));
        assert!(m(r#"req.url ~ "^/img/""#, &t));
        assert!(!m(r#"req.url ~ "^/css/""#, &t));
        assert!(m(r#"req.url !~ "^/css/""#, &t));
        assert!(!m(r#"req.url !~ "^/img/""#, &t));
    }

    #[test]
    fn req_header_operators() {
        let t = sample();
        assert!(m(r#"req.http.host == "example.com""#, &t));
        assert!(m(r#"req.http.host != "example.org""#, &t));
        assert!(m(r#"req.http.host ~ "example\.(com|org)$""#, &t));
        assert!(m(r#"req.http.host !~ "^www\.""#, &t));
        assert!(!m(r#"req.http.cookie ~ "session=xyz""#, &t));
    }

    #[test]
    fn obj_header_operators() {
        let t = sample();
        assert!(m(r#"obj.http.content-type == "image/png""#, &t));
        assert!(!m(r#"obj.http.content-type != "image/png""#, &t));
        assert!(m(r#"obj.http.content-type ~ "^image/""#, &t));
        assert!(m(r#"obj.http.content-type !~ "^text/""#, &t));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let t = sample();
        assert!(m(r#"req.http.Host == "example.com""#, &t));
        assert!(m(r#"req.http.HOST == "example.com""#, &t));
        assert!(m(r#"obj.http.Content-Type ~ "png""#, &t));
        assert_eq!(
            ban(r#"obj.http.Content-Type ~ png"#).canonical(),
            r#"obj.http.content-type ~ "png""#
        );
        // Values stay case-sensitive.
        assert!(!m(r#"req.http.host == "EXAMPLE.COM""#, &t));
    }

    #[test]
    fn missing_headers() {
        let t = sample();
        assert!(m(r#"obj.http.x-missing == """#, &t));
        assert!(!m(r#"obj.http.x-missing == "a""#, &t));
        assert!(m(r#"obj.http.x-missing != "a""#, &t));
        assert!(!m(r#"obj.http.x-missing != """#, &t));
        // `~` never matches a missing header, even with a regex matching "".
        assert!(!m(r#"req.http.x-missing ~ "^$""#, &t));
        assert!(!m(r#"req.http.x-missing ~ ".*""#, &t));
        assert!(m(r#"req.http.x-missing !~ ".*""#, &t));
        assert!(m(r#"req.http.x-missing !~ "a""#, &t));
    }

    #[test]
    fn status_comparisons() {
        let t = Obj::new("/", 404);
        let cases = [
            ("==", 404, true),
            ("==", 200, false),
            ("!=", 200, true),
            ("!=", 404, false),
            ("<", 500, true),
            ("<", 404, false),
            (">", 400, true),
            (">", 404, false),
            ("<=", 404, true),
            ("<=", 403, false),
            (">=", 404, true),
            (">=", 405, false),
        ];
        for (op, v, want) in cases {
            assert_eq!(m(&format!("obj.status {op} {v}"), &t), want, "{op} {v}");
            assert_eq!(
                m(&format!("obj.status{op}\"{v}\""), &t),
                want,
                "{op} \"{v}\""
            );
        }
        assert!(m("obj.status == 0404", &t));
        assert_eq!(ban("obj.status == 0404").canonical(), "obj.status == 404");
        assert_eq!(ban(r#"obj.status>="500""#).canonical(), "obj.status >= 500");
        assert!(m("obj.status >= 0", &t));
        assert!(m("obj.status <= 999", &t));
        assert!(m("obj.status > 000", &t));
    }

    #[test]
    fn and_joins() {
        let t = sample();
        assert!(m(
            r#"req.url ~ "^/img/" && obj.status == 200 && req.http.host == "example.com""#,
            &t
        ));
        assert!(!m(
            r#"req.url ~ "^/img/" && obj.status == 404 && req.http.host == "example.com""#,
            &t
        ));
        assert!(!m(r#"req.url ~ "^/css/" && obj.status == 200"#, &t));
        // No whitespace around && is fine.
        assert!(m(r#"req.url~"^/img/"&&obj.status==200"#, &t));
        assert!(m("req.url ~ ^/img/&&obj.status==200", &t));
        let b = ban("req.url ~ a && obj.status == 1");
        assert_eq!(b.canonical(), r#"req.url ~ "a" && obj.status == 1"#);
    }

    #[test]
    fn quoting_and_escapes() {
        let t = sample();
        assert!(m(r#"obj.http.x-tags == "a b \"c\"""#, &t));
        let b = ban(r#"obj.http.x == "back\\slash \"q\"""#);
        let t2 = Obj::new("/", 200).obj("x", r#"back\slash "q""#);
        assert!(b.matches(&t2));
        assert_eq!(b.canonical(), r#"obj.http.x == "back\\slash \"q\"""#);
        // Other escapes are kept as is: regex escapes need no doubling.
        let b = ban(r#"req.url ~ "\.png$""#);
        assert!(b.matches(&Obj::new("/a.png", 200)));
        assert!(!b.matches(&Obj::new("/apng", 200)));
        assert_eq!(b, ban(r#"req.url ~ "\\.png$""#));
        assert_eq!(b.canonical(), r#"req.url ~ "\\.png$""#);
        // Quoted strings keep their whitespace and && verbatim.
        let b = ban(r#"obj.http.x == "  a && b  ""#);
        assert!(b.matches(&Obj::new("/", 200).obj("x", "  a && b  ")));
        // Empty quoted argument.
        assert!(ban(r#"req.http.x == """#).matches(&Obj::new("/", 200)));
    }

    #[test]
    fn bare_arguments() {
        let t = sample();
        assert!(m("req.url == /img/logo.png?v=2", &t));
        assert!(m(r"req.url ~ \.png", &t));
        assert!(m("req.http.host == example.com", &t));
        assert!(m("obj.status == 200", &t));
        assert!(m("req.url ~ ^/img/ && obj.status != 500", &t));
        assert_eq!(
            ban(r"req.url ~ a\b").canonical(),
            r#"req.url ~ "a\\b""#,
            "bare backslashes are literal"
        );
    }

    #[test]
    fn whitespace_is_free() {
        let a = ban("req.url == /a && obj.status == 200");
        let b = ban("\t req.url==/a\n&&\r\nobj.status   ==\t\"200\"  ");
        assert_eq!(a, b);
        assert_eq!(a.canonical(), b.canonical());
    }

    #[test]
    fn canonical_equality() {
        let a = ban(r#"req.url ~ "^/a""#);
        let b = ban("req.url  ~  ^/a");
        assert_eq!(a.canonical(), r#"req.url ~ "^/a""#);
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a, b);
        assert_eq!(a.to_string(), a.canonical());
        assert_ne!(a, ban(r#"req.url ~ "^/b""#));
        assert_ne!(a, ban(r#"req.url == "^/a""#));
    }

    #[test]
    fn canonical_round_trips() {
        for s in [
            r#"req.url ~ "^/a" && obj.status >= 500"#,
            r#"obj.http.X-Y == "q\"uo\\te" && req.http.Cookie !~ "\d+""#,
            r"req.url == a\b",
            r#"req.http.x == """#,
        ] {
            let b = ban(s);
            let again: BanExpr = match b.canonical().parse() {
                Ok(x) => x,
                Err(e) => panic!("canonical of {s:?} does not parse: {e}"),
            };
            assert_eq!(again.canonical(), b.canonical(), "{s:?}");
        }
    }

    #[test]
    fn from_str_and_display() {
        let b: BanExpr = "req.url == /x".parse().unwrap();
        assert_eq!(format!("{b}"), r#"req.url == "/x""#);
        let e = "req.url".parse::<BanExpr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "column 8: expected an operator (==, !=, ~, !~)"
        );
    }

    #[test]
    fn lurker_friendliness() {
        assert!(ban("req.url ~ ^/a").lurker_friendly());
        assert!(ban("req.http.host == example.com").lurker_friendly());
        assert!(ban("req.http.Host == example.com").lurker_friendly());
        assert!(ban("obj.status == 200").lurker_friendly());
        assert!(ban("obj.http.content-type ~ text").lurker_friendly());
        assert!(ban("req.url ~ ^/a && req.http.host == x && obj.status != 1").lurker_friendly());
        assert!(!ban("req.http.cookie ~ session").lurker_friendly());
        assert!(!ban("req.url ~ ^/a && req.http.cookie ~ session").lurker_friendly());
    }

    #[test]
    fn error_empty() {
        assert_eq!(err(""), (1, "empty expression".to_owned()));
        assert_eq!(err("   \t"), (1, "empty expression".to_owned()));
    }

    #[test]
    fn error_unknown_field() {
        let hint = "(expected req.url, req.http.NAME, obj.status or obj.http.NAME)";
        assert_eq!(
            err("req.url == /a && req.uri == /b"),
            (18, format!("unknown field \"req.uri\" {hint}"))
        );
        assert_eq!(
            err("  req.uri == /"),
            (3, format!("unknown field \"req.uri\" {hint}"))
        );
        assert_eq!(
            err("REQ.URL == /"),
            (1, format!("unknown field \"REQ.URL\" {hint}"))
        );
        assert_eq!(
            err("obj.statuses == 1"),
            (1, format!("unknown field \"obj.statuses\" {hint}"))
        );
        assert_eq!(err("== /"), (1, format!("expected a field {hint}")));
        assert_eq!(
            err("req.http. == x"),
            (10, "missing header name after \"req.http.\"".to_owned())
        );
        assert_eq!(
            err("obj.http.a/b == x"),
            (11, "invalid character in header name \"a/b\"".to_owned())
        );
    }

    #[test]
    fn error_operator() {
        let hint = "(==, !=, ~, !~)";
        assert_eq!(
            err("req.url = /a"),
            (9, format!("expected an operator {hint}"))
        );
        assert_eq!(err("req.url"), (8, format!("expected an operator {hint}")));
        assert_eq!(
            err("req.http.host  /a"),
            (16, format!("expected an operator {hint}"))
        );
        assert_eq!(
            err("req.url < /a"),
            (
                9,
                format!("operator \"<\" is only valid for obj.status {hint}")
            )
        );
        assert_eq!(
            err("req.url >= /a"),
            (
                9,
                format!("operator \">=\" is only valid for obj.status {hint}")
            )
        );
        let shint = "(==, !=, <, >, <=, >=)";
        assert_eq!(
            err("obj.status ~ 200"),
            (
                12,
                format!("obj.status cannot be matched with a regex {shint}")
            )
        );
        assert_eq!(
            err("obj.status !~ 200"),
            (
                12,
                format!("obj.status cannot be matched with a regex {shint}")
            )
        );
        assert_eq!(
            err("obj.status = 200"),
            (12, format!("expected an operator {shint}"))
        );
    }

    #[test]
    fn error_argument() {
        assert_eq!(err("req.url =="), (11, "expected an argument".to_owned()));
        assert_eq!(
            err("req.url ==   "),
            (14, "expected an argument".to_owned())
        );
        assert_eq!(
            err("req.url == && obj.status == 1"),
            (12, "expected an argument".to_owned())
        );
        assert_eq!(
            err("req.url == /a\"b\""),
            (
                14,
                "unexpected '\"' in unquoted argument (quote the whole argument)".to_owned()
            )
        );
    }

    #[test]
    fn error_unterminated_string() {
        assert_eq!(
            err(r#"req.http.cookie == "abc"#),
            (20, "unterminated string".to_owned())
        );
        assert_eq!(
            err(r#"req.url == "abc\""#),
            (12, "unterminated string".to_owned())
        );
        assert_eq!(
            err(r#"req.url == "abc\"#),
            (12, "unterminated string".to_owned())
        );
    }

    #[test]
    fn error_trailing() {
        assert_eq!(
            err("req.url == /a obj.status == 200"),
            (15, "expected \"&&\" or end of expression".to_owned())
        );
        assert_eq!(
            err(r#"req.url == "a"b"#),
            (15, "expected \"&&\" or end of expression".to_owned())
        );
        assert_eq!(
            err("req.url == /a & obj.status == 1"),
            (15, "expected \"&&\" or end of expression".to_owned())
        );
        assert_eq!(
            err("req.url == /a || obj.status == 1"),
            (15, "expected \"&&\" or end of expression".to_owned())
        );
        assert_eq!(
            err("req.url == /a &&"),
            (17, "expected a condition after \"&&\"".to_owned())
        );
        assert_eq!(
            err("req.url == /a &&  "),
            (19, "expected a condition after \"&&\"".to_owned())
        );
    }

    #[test]
    fn error_invalid_regex() {
        let (col, reason) = err("req.url == /a && req.url ~ \"(\"");
        assert_eq!(col, 28);
        assert_eq!(reason, "invalid regex: unclosed group");
        let (col, reason) = err("obj.http.x !~ a[");
        assert_eq!(col, 15);
        assert!(reason.starts_with("invalid regex: "), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
    }

    #[test]
    fn error_regex_size_limit() {
        // Small to write, far beyond 1 MiB once compiled.
        let (col, reason) = err(r"req.url ~ \w{1000}");
        assert_eq!(col, 11);
        assert!(reason.starts_with("invalid regex: "), "{reason}");
        assert!(reason.contains("size limit"), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
        // A modest regex is fine.
        assert!(m(r"req.url ~ ^/\w{3}$", &Obj::new("/abc", 200)));
    }

    #[test]
    fn error_status_argument() {
        assert_eq!(
            err("obj.status == abc"),
            (15, "obj.status needs an integer".to_owned())
        );
        assert_eq!(
            err("obj.status == \"\""),
            (15, "obj.status needs an integer".to_owned())
        );
        assert_eq!(
            err("obj.status == -1"),
            (15, "obj.status needs an integer".to_owned())
        );
        assert_eq!(
            err("obj.status == 2e2"),
            (15, "obj.status needs an integer".to_owned())
        );
        assert_eq!(
            err("req.url == /a && obj.status >= 1000"),
            (32, "obj.status needs an integer from 0 to 999".to_owned())
        );
        assert_eq!(
            err("obj.status == 99999999999999999999"),
            (15, "obj.status needs an integer from 0 to 999".to_owned())
        );
    }

    #[test]
    fn error_too_long() {
        let ok = format!("req.url == /{}", "a".repeat(MAX_LEN - 12));
        assert_eq!(ok.len(), MAX_LEN);
        assert!(BanExpr::parse(&ok).is_ok());
        let long = format!("{ok}a");
        assert_eq!(
            err(&long),
            (MAX_LEN + 1, "expression longer than 4096 bytes".to_owned())
        );
        // Column is in characters: 3-byte characters count once.
        let wide = format!("req.url == {}", "€".repeat(2000));
        let (col, reason) = err(&wide);
        assert_eq!(reason, "expression longer than 4096 bytes");
        assert_eq!(col, 11 + (MAX_LEN - 11).div_ceil(3) + 1);
    }

    #[test]
    fn error_too_many_conditions() {
        let cond = "obj.status != 1";
        let ok = vec![cond; MAX_CONDITIONS].join(" && ");
        assert!(ban(&ok).matches(&Obj::new("/", 200)));
        let too_many = vec![cond; MAX_CONDITIONS + 1].join(" && ");
        let column = MAX_CONDITIONS * (cond.len() + 4) + 1;
        assert_eq!(
            err(&too_many),
            (column, "more than 16 conditions".to_owned())
        );
    }

    #[test]
    fn columns_count_characters() {
        // "é" is two bytes but one column: "zz" starts at byte 21, column 20.
        assert_eq!(
            err("req.http.x == é && zz == 1"),
            (20, "unknown field \"zz\" (expected req.url, req.http.NAME, obj.status or obj.http.NAME)".to_owned())
        );
    }

    #[test]
    fn unicode_arguments() {
        let t = Obj::new("/", 200).obj("x-name", "naïve café");
        assert!(m(r#"obj.http.x-name == "naïve café""#, &t));
        assert!(m("obj.http.x-name ~ ^naïve", &t));
    }
}
