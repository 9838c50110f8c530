//! ESI variables (`$(HTTP_HOST)`, `$(HTTP_COOKIE{name})`, …) and the small
//! expression language of `<esi:when test="…">`.
//!
//! Everything here is pure: a [`RequestView`] supplies the request's headers
//! and query string when a variable is resolved.
//!
//! # Variables
//!
//! | written                    | value                                             |
//! |----------------------------|---------------------------------------------------|
//! | `$(HTTP_COOKIE{name})`     | the value of cookie `name` from the `Cookie` header |
//! | `$(HTTP_COOKIE)`           | the whole `Cookie` header                         |
//! | `$(HTTP_HOST)`             | the `Host` header                                 |
//! | `$(HTTP_REFERER)`          | the `Referer` header                              |
//! | `$(HTTP_USER_AGENT)`       | the `User-Agent` header                           |
//! | `$(QUERY_STRING{key})`     | the value of query parameter `key`                |
//! | `$(QUERY_STRING)`          | the whole query string (without `?`)              |
//! | `$(HTTP_ACCEPT_LANGUAGE{da})` | `true` when the client accepts language `da`, else `false` |
//! | `$(HTTP_ACCEPT_LANGUAGE)`  | the whole `Accept-Language` header                |
//!
//! `HTTP_ACCEPT_LANGUAGE{lang}` is a list variable (ESI 1.0 §4): a boolean.
//! It is true when an entry of the client's `Accept-Language` list with a
//! q-value above 0 matches `lang`, ignoring case: the same tag, the tag
//! with a region subtag (`da` matches `da-DK`), or the entry's primary
//! language alone (an entry `en` accepts every English, so it matches
//! `en-gb`). `*` matches nothing (it names no language). In a test, the
//! variable alone is true or false; written in text, it prints `true` or
//! `false`.
//!
//! # Default values
//!
//! `$(NAME{key}|default)` and `$(NAME{key}|'default')` resolve to the
//! default when the variable is empty (unset, or set to nothing). A quoted
//! default runs to the next `'` and may hold any character but `'`; an
//! unquoted one runs to the `)` and may not hold whitespace, `'`, `(` or
//! `$`. Defaults work wherever variables do: in text, in `src`/`alt` and in
//! tests.
//!
//! A variable that is not set resolves to the empty string. Values are
//! inserted as they are: cookie and query values are **not** percent-decoded,
//! and nothing is HTML-escaped (as in the ESI 1.0 specification), so a page
//! that writes `$(QUERY_STRING{q})` into its markup reflects whatever the
//! client sent. Anything else written `$(…)` (an unknown name, a key on a
//! variable that takes none, a malformed default) is not a variable and
//! stays in the text literally.
//!
//! # Test expressions
//!
//! Grammar (lowest precedence first; `&` binds tighter than `|`):
//!
//! ```text
//! or         := and ( '|' and )*
//! and        := unary ( '&' unary )*
//! unary      := '!' unary | '(' or ')' | comparison
//! comparison := operand ( ( '==' | '!=' | '<' | '>' | '<=' | '>=' ) operand )?
//! operand    := variable | 'string' | number
//! ```
//!
//! `&&` and `||` are accepted as spellings of `&` and `|`. Strings are in
//! single quotes; `\'` and `\\` escape a quote and a backslash. Numbers are
//! decimal (`-12`, `3.5`). A comparison is numeric when both sides are numeric
//! (a number literal, or a variable whose value is a decimal number);
//! otherwise both sides are compared as strings, byte by byte. A quoted string
//! is always a string. An operand alone is true when its value is not empty
//! (a number: not zero). `!` applies to a whole comparison:
//! `!$(HTTP_HOST)=='a'` means `!($(HTTP_HOST)=='a')`.

use std::cmp::Ordering;
use std::fmt;

/// Longest key accepted inside `{…}` of a variable, and longest default.
const MAX_KEY_LEN: usize = 256;
/// Deepest nesting of `(` and `!` accepted in a test expression.
const MAX_EXPR_DEPTH: usize = 64;

/// A supported ESI variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Variable {
    /// `$(HTTP_COOKIE{name})`, or the whole `Cookie` header for `None`.
    HttpCookie(Option<String>),
    /// `$(HTTP_HOST)`.
    HttpHost,
    /// `$(HTTP_REFERER)`.
    HttpReferer,
    /// `$(HTTP_USER_AGENT)`.
    HttpUserAgent,
    /// `$(QUERY_STRING{key})`, or the whole query string for `None`.
    QueryString(Option<String>),
    /// `$(HTTP_ACCEPT_LANGUAGE{lang})` (a boolean), or the whole
    /// `Accept-Language` header for `None`.
    HttpAcceptLanguage(Option<String>),
    /// `$(…|default)`: the variable, or the default when it is empty.
    /// The inner variable is never itself a `WithDefault`.
    WithDefault(Box<Variable>, String),
}

/// Text in which variables are substituted at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarPart {
    /// Text, copied as is.
    Text(String),
    /// A variable, resolved against the request.
    Var(Variable),
}

/// What variables need from the client's request.
pub trait RequestView {
    /// The value of request header `name`. Names are asked for in lower case
    /// (`cookie`, `host`, `referer`, `user-agent`, `accept-language`);
    /// implementations should
    /// match case-insensitively. For a repeated `Cookie` header, joining the
    /// values with `"; "` lets every cookie be found.
    fn header(&self, name: &str) -> Option<&str>;
    /// The raw query string, without the leading `?`.
    fn query(&self) -> Option<&str>;
}

impl Variable {
    /// The variable's value for this request; the empty string when unset.
    ///
    /// A cookie is found by exact name among the `;`-separated pairs of the
    /// `Cookie` header; a query parameter by exact key among the
    /// `&`-separated pairs of the query string (a key without `=` has the
    /// empty value). The first match wins. Nothing is percent-decoded.
    pub fn resolve(&self, req: &dyn RequestView) -> String {
        let found = match self {
            Variable::WithDefault(var, default) => {
                let value = var.resolve(req);
                return if value.is_empty() {
                    default.clone()
                } else {
                    value
                };
            }
            Variable::HttpAcceptLanguage(Some(lang)) => {
                let accepted = req
                    .header("accept-language")
                    .is_some_and(|h| accepts_language(h, lang));
                return accepted.to_string();
            }
            Variable::HttpAcceptLanguage(None) => req.header("accept-language"),
            Variable::HttpCookie(None) => req.header("cookie"),
            Variable::HttpCookie(Some(name)) => req.header("cookie").and_then(|h| cookie(h, name)),
            Variable::HttpHost => req.header("host"),
            Variable::HttpReferer => req.header("referer"),
            Variable::HttpUserAgent => req.header("user-agent"),
            Variable::QueryString(None) => req.query(),
            Variable::QueryString(Some(key)) => req.query().and_then(|q| query_param(q, key)),
        };
        found.unwrap_or_default().to_owned()
    }

    /// True for a list variable used as a boolean
    /// (`$(HTTP_ACCEPT_LANGUAGE{lang})`): its value is `true` or `false`.
    pub fn is_boolean(&self) -> bool {
        match self {
            Variable::HttpAcceptLanguage(key) => key.is_some(),
            Variable::WithDefault(var, _) => var.is_boolean(),
            _ => false,
        }
    }
}

/// Whether an `Accept-Language` list accepts `lang` (see the module docs).
fn accepts_language(header: &str, lang: &str) -> bool {
    let lang = lang.trim();
    let primary = |t: &str| t.split('-').next().unwrap_or(t).to_owned();
    header.split(',').any(|entry| {
        let mut fields = entry.split(';');
        let tag = fields.next().unwrap_or("").trim();
        let q_zero = fields.any(|f| {
            let Some((k, v)) = f.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
        });
        if tag.is_empty() || tag == "*" || q_zero {
            return false;
        }
        let (tag, lang) = (tag.to_ascii_lowercase(), lang.to_ascii_lowercase());
        tag == lang
            // `da` asked, `da-DK` accepted.
            || (tag.starts_with(&lang) && tag.as_bytes().get(lang.len()) == Some(&b'-'))
            // `en-gb` asked, `en` (any English) accepted.
            || (!tag.contains('-') && primary(&lang) == tag)
    })
}

impl fmt::Display for Variable {
    /// The variable as it is written in a page, e.g. `$(HTTP_COOKIE{id})`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variable::HttpCookie(None) => f.write_str("$(HTTP_COOKIE)"),
            Variable::HttpCookie(Some(k)) => write!(f, "$(HTTP_COOKIE{{{k}}})"),
            Variable::HttpHost => f.write_str("$(HTTP_HOST)"),
            Variable::HttpReferer => f.write_str("$(HTTP_REFERER)"),
            Variable::HttpUserAgent => f.write_str("$(HTTP_USER_AGENT)"),
            Variable::QueryString(None) => f.write_str("$(QUERY_STRING)"),
            Variable::QueryString(Some(k)) => write!(f, "$(QUERY_STRING{{{k}}})"),
            Variable::HttpAcceptLanguage(None) => f.write_str("$(HTTP_ACCEPT_LANGUAGE)"),
            Variable::HttpAcceptLanguage(Some(k)) => {
                write!(f, "$(HTTP_ACCEPT_LANGUAGE{{{k}}})")
            }
            Variable::WithDefault(var, default) => {
                let inner = var.to_string();
                let open = inner.strip_suffix(')').unwrap_or(&inner);
                write!(f, "{open}|'{default}')")
            }
        }
    }
}

fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// Parses one variable at the start of `s` (which starts with `$(`).
/// Returns the variable and the number of bytes it spans, or `None` when
/// the text there is not a supported variable.
pub(crate) fn parse_var_prefix(s: &str) -> Option<(Variable, usize)> {
    let rest = s.strip_prefix("$(")?;
    let name_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
        .count();
    let (name, after) = rest.split_at(name_len);
    let (key, key_span) = match after.strip_prefix('{') {
        Some(k) => {
            let end = k
                .bytes()
                .take(MAX_KEY_LEN + 1)
                .position(|b| matches!(b, b'}' | b')' | b'{' | b'$'))?;
            if k.as_bytes().get(end) != Some(&b'}') || end == 0 {
                return None;
            }
            (Some(k[..end].to_owned()), end + 2)
        }
        None => (None, 0),
    };
    let tail = &after[key_span..];
    let (default, default_span) = match tail.strip_prefix('|') {
        Some(d) => {
            let (value, span) = parse_default(d)?;
            (Some(value), span + 1)
        }
        None => (None, 0),
    };
    if !tail[default_span..].starts_with(')') {
        return None;
    }
    let var = match (name, key) {
        ("HTTP_COOKIE", key) => Variable::HttpCookie(key),
        ("QUERY_STRING", key) => Variable::QueryString(key),
        ("HTTP_HOST", None) => Variable::HttpHost,
        ("HTTP_REFERER", None) => Variable::HttpReferer,
        ("HTTP_USER_AGENT", None) => Variable::HttpUserAgent,
        ("HTTP_ACCEPT_LANGUAGE", key) => Variable::HttpAcceptLanguage(key),
        _ => return None,
    };
    let var = match default {
        Some(d) => Variable::WithDefault(Box::new(var), d),
        None => var,
    };
    Some((var, 2 + name_len + key_span + default_span + 1))
}

/// A default value at the start of `s` (just after the `|`): the value and
/// the bytes it spans, up to (not including) the closing `)`.
fn parse_default(s: &str) -> Option<(String, usize)> {
    if let Some(q) = s.strip_prefix('\'') {
        let end = q.bytes().take(MAX_KEY_LEN + 1).position(|b| b == b'\'')?;
        return Some((q[..end].to_owned(), end + 2));
    }
    let end = s.bytes().take(MAX_KEY_LEN + 1).position(|b| {
        b == b')' || b == b'\'' || b == b'(' || b == b'$' || b.is_ascii_whitespace()
    })?;
    (s.as_bytes()[end] == b')').then(|| (s[..end].to_owned(), end))
}

/// Splits text into literal parts and variables. Adjacent text is merged;
/// anything written `$(…)` that is not a supported variable stays text.
pub fn parse_vars(text: &str) -> Vec<VarPart> {
    let mut parts = Vec::new();
    let mut buf = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        buf.push_str(&rest[..at]);
        let here = &rest[at..];
        match parse_var_prefix(here) {
            Some((var, len)) => {
                if !buf.is_empty() {
                    parts.push(VarPart::Text(std::mem::take(&mut buf)));
                }
                parts.push(VarPart::Var(var));
                rest = &here[len..];
            }
            None => {
                buf.push_str("$(");
                rest = &here[2..];
            }
        }
    }
    buf.push_str(rest);
    if !buf.is_empty() {
        parts.push(VarPart::Text(buf));
    }
    parts
}

/// Resolves every variable and concatenates the result.
pub fn render(parts: &[VarPart], req: &dyn RequestView) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            VarPart::Text(t) => out.push_str(t),
            VarPart::Var(v) => out.push_str(&v.resolve(req)),
        }
    }
    out
}

/// Like [`render`], for an include's `src` or `alt`: the value of each
/// variable is inserted with the bytes a request target cannot carry
/// percent-encoded (whitespace, control characters, non-ASCII, and
/// `"` `#` `<` `>` `\\` `^` `` ` `` `{` `|` `}`), so that a default such as
/// `'new user'` or a cookie with a space still makes a URL. Everything else,
/// `%`, `&`, `=`, `/` and `?` included, is inserted as it is (cookies and
/// query values often hold percent-encoded text already). The text around
/// the variables is copied as written.
pub fn render_url(parts: &[VarPart], req: &dyn RequestView) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            VarPart::Text(t) => out.push_str(t),
            VarPart::Var(v) => {
                for b in v.resolve(req).bytes() {
                    if b.is_ascii_graphic() && !b"\"#<>\\^`{|}".contains(&b) {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A variable, resolved at evaluation.
    Var(Variable),
    /// A quoted string constant.
    Str(String),
    /// A number constant.
    Num(f64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

/// A parsed `esi:when` test.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant; `Bool(false)` also stands for a test that could not be parsed.
    Bool(bool),
    /// An operand alone: true when its value is not empty (a number: not zero).
    Value(Operand),
    /// `left op right`.
    Cmp(Operand, CmpOp, Operand),
    /// `!e`.
    Not(Box<Expr>),
    /// `a & b & …` (kept flat, so long chains do not nest).
    And(Vec<Expr>),
    /// `a | b | …` (kept flat).
    Or(Vec<Expr>),
}

impl Expr {
    /// Evaluates the test for this request.
    pub fn eval(&self, req: &dyn RequestView) -> bool {
        match self {
            Expr::Bool(b) => *b,
            Expr::Value(op) => match op {
                Operand::Num(n) => *n != 0.0,
                Operand::Str(s) => !s.is_empty(),
                Operand::Var(v) if v.is_boolean() => v.resolve(req) == "true",
                Operand::Var(v) => !v.resolve(req).is_empty(),
            },
            Expr::Cmp(l, op, r) => compare(l, *op, r, req),
            Expr::Not(e) => !e.eval(req),
            Expr::And(es) => es.iter().all(|e| e.eval(req)),
            Expr::Or(es) => es.iter().any(|e| e.eval(req)),
        }
    }
}

/// An operand's value: its text and, when numeric, its number.
fn operand_value(op: &Operand, req: &dyn RequestView) -> (String, Option<f64>) {
    match op {
        Operand::Num(n) => (n.to_string(), Some(*n)),
        Operand::Str(s) => (s.clone(), None),
        Operand::Var(v) => {
            let s = v.resolve(req);
            let n = parse_decimal(&s);
            (s, n)
        }
    }
}

fn compare(l: &Operand, op: CmpOp, r: &Operand, req: &dyn RequestView) -> bool {
    let (ls, ln) = operand_value(l, req);
    let (rs, rn) = operand_value(r, req);
    let ord = match (ln, rn) {
        (Some(a), Some(b)) => match a.partial_cmp(&b) {
            Some(o) => o,
            None => return false,
        },
        _ => ls.as_bytes().cmp(rs.as_bytes()),
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// `-?[0-9]+(\.[0-9]+)?`, surrounding whitespace allowed.
fn parse_decimal(s: &str) -> Option<f64> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    t.parse().ok()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Operand(Operand),
    Cmp(CmpOp),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        let (tok, len) = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'$' => match s.get(i..).and_then(parse_var_prefix) {
                Some((v, len)) => (Tok::Operand(Operand::Var(v)), len),
                None => return Err(format!("unknown or malformed variable at {i}")),
            },
            b'\'' => {
                let mut out = String::new();
                let mut j = i + 1;
                loop {
                    let Some(ch) = s.get(j..).and_then(|r| r.chars().next()) else {
                        return Err(format!("unterminated string starting at {i}"));
                    };
                    j += ch.len_utf8();
                    match ch {
                        '\'' => break,
                        '\\' => match s.get(j..).and_then(|r| r.chars().next()) {
                            Some(e @ ('\'' | '\\')) => {
                                out.push(e);
                                j += 1;
                            }
                            _ => out.push('\\'),
                        },
                        _ => out.push(ch),
                    }
                }
                (Tok::Operand(Operand::Str(out)), j - i)
            }
            b'0'..=b'9' | b'-' | b'.' => {
                let len = b[i..]
                    .iter()
                    .enumerate()
                    .take_while(|&(k, &d)| d.is_ascii_digit() || d == b'.' || (k == 0 && d == b'-'))
                    .count();
                let text = &s[i..i + len];
                match parse_decimal(text) {
                    Some(n) => (Tok::Operand(Operand::Num(n)), len),
                    None => return Err(format!("malformed number '{text}' at {i}")),
                }
            }
            b'=' if next == Some(b'=') => (Tok::Cmp(CmpOp::Eq), 2),
            b'=' => return Err(format!("'=' at {i} is not an operator (use '==')")),
            b'!' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ne), 2),
            b'!' => (Tok::Not, 1),
            b'<' if next == Some(b'=') => (Tok::Cmp(CmpOp::Le), 2),
            b'<' => (Tok::Cmp(CmpOp::Lt), 1),
            b'>' if next == Some(b'=') => (Tok::Cmp(CmpOp::Ge), 2),
            b'>' => (Tok::Cmp(CmpOp::Gt), 1),
            b'&' if next == Some(b'&') => (Tok::And, 2),
            b'&' => (Tok::And, 1),
            b'|' if next == Some(b'|') => (Tok::Or, 2),
            b'|' => (Tok::Or, 1),
            b'(' => (Tok::Open, 1),
            b')' => (Tok::Close, 1),
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected '{ch}' at {i}"));
            }
        };
        toks.push((i, tok));
        i += len;
    }
    Ok(toks)
}

struct ExprParser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl ExprParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(i, _)| *i)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut terms = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut terms = vec![self.unary(depth)?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            terms.push(self.unary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth >= MAX_EXPR_DEPTH {
            return Err(format!("expression nested deeper than {MAX_EXPR_DEPTH}"));
        }
        match self.peek() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(format!("expected ')' at {}", self.at()));
                }
                self.pos += 1;
                Ok(e)
            }
            _ => self.comparison(),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Operand(op))) => {
                let op = op.clone();
                self.pos += 1;
                Ok(op)
            }
            Some((i, _)) => Err(format!("expected a variable, string or number at {i}")),
            None => Err("unexpected end of expression".to_owned()),
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        let Some(Tok::Cmp(op)) = self.peek() else {
            return Ok(Expr::Value(left));
        };
        let op = *op;
        self.pos += 1;
        let right = self.operand()?;
        if let Some(Tok::Cmp(_)) = self.peek() {
            return Err(format!("chained comparison at {}", self.at()));
        }
        Ok(Expr::Cmp(left, op, right))
    }
}

/// Parses an `esi:when` test expression (see the module docs for the
/// grammar). Errors name the byte offset of the problem.
pub fn parse_expr(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("empty expression".to_owned());
    }
    let mut p = ExprParser {
        toks,
        pos: 0,
        end: s.len(),
    };
    let e = p.or(0)?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected token at {}", p.at()));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Req {
        headers: HashMap<String, String>,
        query: Option<String>,
    }

    impl Req {
        fn new() -> Self {
            Self::default()
        }
        fn h(mut self, k: &str, v: &str) -> Self {
            self.headers.insert(k.to_owned(), v.to_owned());
            self
        }
        fn q(mut self, q: &str) -> Self {
            self.query = Some(q.to_owned());
            self
        }
    }

    impl RequestView for Req {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(String::as_str)
        }
        fn query(&self) -> Option<&str> {
            self.query.as_deref()
        }
    }

    fn req() -> Req {
        Req::new()
            .h("cookie", "group=admin; id=42; empty=; spaced = yes ")
            .h("host", "shop.example")
            .h("referer", "https://ref.example/")
            .h("user-agent", "curl/8")
            .q("a=1&b=two&flag&a=3&n=-2.5")
    }

    fn eval(s: &str) -> bool {
        parse_expr(s).unwrap().eval(&req())
    }

    #[test]
    fn parses_each_variable() {
        let one = parse_var_prefix;
        assert_eq!(one("$(HTTP_HOST)"), Some((Variable::HttpHost, 12)));
        assert_eq!(one("$(HTTP_REFERER)x"), Some((Variable::HttpReferer, 15)));
        assert_eq!(
            one("$(HTTP_USER_AGENT)"),
            Some((Variable::HttpUserAgent, 18))
        );
        assert_eq!(
            one("$(HTTP_COOKIE)"),
            Some((Variable::HttpCookie(None), 14))
        );
        assert_eq!(
            one("$(HTTP_COOKIE{id})"),
            Some((Variable::HttpCookie(Some("id".into())), 18))
        );
        assert_eq!(
            one("$(QUERY_STRING)"),
            Some((Variable::QueryString(None), 15))
        );
        assert_eq!(
            one("$(QUERY_STRING{page})!"),
            Some((Variable::QueryString(Some("page".into())), 21))
        );
    }

    #[test]
    fn rejects_unsupported_variables() {
        for s in [
            "$(FOO)",
            "$(HTTP_HOST{x})",
            "$(HTTP_USER_AGENT{browser})",
            "$(HTTP_COOKIE{})",
            "$(HTTP_COOKIE{a)",
            "$(HTTP_COOKIE{a}",
            "$(HTTP_HOST",
            "$(http_host)",
            "$(HTTP_HOST|'x)",
            "$(HTTP_HOST|x y)",
            "$(HTTP_HOST|x",
            "$(HTTP_HOST|'x'y)",
            "$(HTTP_HOST|'x'|'y')",
            "$(HTTP_ACCEPT_LANGUAGE{})",
            "$(",
            "$",
        ] {
            assert_eq!(parse_var_prefix(s), None, "{s}");
        }
        let long = format!("$(HTTP_COOKIE{{{}}})", "k".repeat(MAX_KEY_LEN + 1));
        assert_eq!(parse_var_prefix(&long), None);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "$(HTTP_COOKIE{id})",
            "$(HTTP_COOKIE)",
            "$(HTTP_HOST)",
            "$(QUERY_STRING{q})",
            "$(HTTP_ACCEPT_LANGUAGE{da})",
            "$(HTTP_ACCEPT_LANGUAGE)",
            "$(HTTP_COOKIE{a}|'new user')",
        ] {
            let (v, _) = parse_var_prefix(s).unwrap();
            assert_eq!(v.to_string(), s);
        }
    }

    #[test]
    fn parse_vars_splits_and_keeps_unknown() {
        let parts = parse_vars("Hi $(HTTP_COOKIE{name}), $(FOO) on $(HTTP_HOST)$(HTTP_HOST) $(");
        assert_eq!(
            parts,
            vec![
                VarPart::Text("Hi ".into()),
                VarPart::Var(Variable::HttpCookie(Some("name".into()))),
                VarPart::Text(", $(FOO) on ".into()),
                VarPart::Var(Variable::HttpHost),
                VarPart::Var(Variable::HttpHost),
                VarPart::Text(" $(".into()),
            ]
        );
        assert_eq!(parse_vars(""), vec![]);
        assert_eq!(parse_vars("plain"), vec![VarPart::Text("plain".into())]);
    }

    #[test]
    fn resolves_variables() {
        let r = req();
        let get = |s: &str| parse_var_prefix(s).unwrap().0.resolve(&r);
        assert_eq!(get("$(HTTP_COOKIE{group})"), "admin");
        assert_eq!(get("$(HTTP_COOKIE{id})"), "42");
        assert_eq!(get("$(HTTP_COOKIE{empty})"), "");
        assert_eq!(get("$(HTTP_COOKIE{spaced})"), "yes");
        assert_eq!(get("$(HTTP_COOKIE{missing})"), "");
        assert_eq!(get("$(HTTP_COOKIE{grou})"), "");
        assert_eq!(
            get("$(HTTP_COOKIE)"),
            "group=admin; id=42; empty=; spaced = yes "
        );
        assert_eq!(get("$(HTTP_HOST)"), "shop.example");
        assert_eq!(get("$(HTTP_REFERER)"), "https://ref.example/");
        assert_eq!(get("$(HTTP_USER_AGENT)"), "curl/8");
        assert_eq!(get("$(QUERY_STRING)"), "a=1&b=two&flag&a=3&n=-2.5");
        assert_eq!(get("$(QUERY_STRING{a})"), "1");
        assert_eq!(get("$(QUERY_STRING{b})"), "two");
        assert_eq!(get("$(QUERY_STRING{flag})"), "");
        assert_eq!(get("$(QUERY_STRING{zzz})"), "");
        let none = Req::new();
        assert_eq!(Variable::HttpHost.resolve(&none), "");
        assert_eq!(Variable::QueryString(Some("a".into())).resolve(&none), "");
    }

    #[test]
    fn default_values() {
        let r = req();
        let get = |s: &str| {
            let (v, len) = parse_var_prefix(s).unwrap();
            assert_eq!(len, s.len(), "{s}");
            v.resolve(&r)
        };
        assert_eq!(get("$(HTTP_COOKIE{first_name}|'new user')"), "new user");
        assert_eq!(get("$(HTTP_COOKIE{id}|default)"), "42");
        assert_eq!(get("$(HTTP_COOKIE{missing}|default)"), "default");
        assert_eq!(get("$(HTTP_COOKIE{empty}|'x')"), "x");
        assert_eq!(get("$(HTTP_COOKIE{empty}|)"), "");
        assert_eq!(get("$(HTTP_COOKIE{empty}|'a)b|c$(')"), "a)b|c$(");
        assert_eq!(get("$(HTTP_HOST|'h')"), "shop.example");
        assert_eq!(get("$(QUERY_STRING{zzz}|0)"), "0");
        assert_eq!(
            parse_vars("[$(HTTP_COOKIE{x}|'n u')]"),
            vec![
                VarPart::Text("[".into()),
                VarPart::Var(Variable::WithDefault(
                    Box::new(Variable::HttpCookie(Some("x".into()))),
                    "n u".into()
                )),
                VarPart::Text("]".into()),
            ]
        );
        assert!(eval("$(HTTP_COOKIE{nope}|'x')=='x'"));
        assert!(eval("$(HTTP_COOKIE{nope}|'x')"));
        assert!(eval("$(QUERY_STRING{zz}|5) > 4"));
        assert!(eval(
            "$(HTTP_COOKIE{nope}|'a')=='b' | $(HTTP_HOST)=='shop.example'"
        ));
    }

    #[test]
    fn accept_language_is_a_boolean_list() {
        let r = Req::new().h(
            "accept-language",
            "da, en-GB;q=0.8, EN;q=0.7, fr-CA, de;q=0, *;q=0.1",
        );
        let get = |s: &str| parse_var_prefix(s).unwrap().0.resolve(&r);
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{da})"), "true");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{DA})"), "true");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{en-gb})"), "true");
        // `en` accepted: any English.
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{en-us})"), "true");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{en})"), "true");
        // `fr-CA` accepted: `fr` asked is there with a region.
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{fr})"), "true");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{fr-fr})"), "false");
        // q=0: not acceptable; `*` names no language.
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{de})"), "false");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{ja})"), "false");
        assert_eq!(get("$(HTTP_ACCEPT_LANGUAGE{d})"), "false");
        assert_eq!(
            get("$(HTTP_ACCEPT_LANGUAGE)"),
            "da, en-GB;q=0.8, EN;q=0.7, fr-CA, de;q=0, *;q=0.1"
        );
        assert_eq!(
            Variable::HttpAcceptLanguage(Some("da".into())).resolve(&Req::new()),
            "false"
        );
        let t = |s: &str| parse_expr(s).unwrap().eval(&r);
        assert!(t("$(HTTP_ACCEPT_LANGUAGE{da})"));
        assert!(!t("$(HTTP_ACCEPT_LANGUAGE{ja})"));
        assert!(t(
            "!$(HTTP_ACCEPT_LANGUAGE{ja}) & $(HTTP_ACCEPT_LANGUAGE{en})"
        ));
        assert!(t("$(HTTP_ACCEPT_LANGUAGE{ja})=='false'"));
        let none = Req::new();
        assert!(!parse_expr("$(HTTP_ACCEPT_LANGUAGE{da})")
            .unwrap()
            .eval(&none));
    }

    #[test]
    fn render_url_encodes_what_a_url_cannot_carry() {
        let r = Req::new()
            .h("cookie", "a=x y; b=%41&c=d/e?f; c=\u{e9}\"#<>")
            .h("host", "h");
        let parts = parse_vars("/p q/$(HTTP_COOKIE{a})?b=$(HTTP_COOKIE{b})&c=$(HTTP_COOKIE{c})&d=$(HTTP_COOKIE{d}|'n u')");
        assert_eq!(
            render_url(&parts, &r),
            "/p q/x%20y?b=%41&c=d/e?f&c=%C3%A9%22%23%3C%3E&d=n%20u"
        );
    }

    #[test]
    fn no_percent_decoding() {
        let r = Req::new().q("q=a%20b").h("cookie", "c=x%3By");
        assert_eq!(Variable::QueryString(Some("q".into())).resolve(&r), "a%20b");
        assert_eq!(Variable::HttpCookie(Some("c".into())).resolve(&r), "x%3By");
    }

    #[test]
    fn render_substitutes() {
        let parts = parse_vars("//$(HTTP_HOST)/u/$(HTTP_COOKIE{id})?x=$(QUERY_STRING{b})");
        assert_eq!(render(&parts, &req()), "//shop.example/u/42?x=two");
    }

    #[test]
    fn expressions_compare_strings_and_numbers() {
        assert!(eval("$(HTTP_COOKIE{group})=='admin'"));
        assert!(!eval("$(HTTP_COOKIE{group}) == 'user'"));
        assert!(eval("$(HTTP_COOKIE{group}) != 'user'"));
        assert!(eval("$(HTTP_COOKIE{id}) == 42"));
        assert!(eval("$(HTTP_COOKIE{id}) > 5")); // numeric, not "42" < "5"
        assert!(!eval("$(HTTP_COOKIE{id}) > '5'")); // quoted: string comparison
        assert!(eval("$(HTTP_COOKIE{id}) >= 42.0"));
        assert!(eval("$(HTTP_COOKIE{id}) <= 42"));
        assert!(eval("$(QUERY_STRING{n}) < -2"));
        assert!(eval("'abc' < 'abd'"));
        assert!(eval("10 > 9"));
        assert!(eval("$(HTTP_COOKIE{missing}) == ''"));
        assert!(eval("$(HTTP_COOKIE{missing}) != 'x'"));
        assert!(eval("'it\\'s' == 'it\\'s'"));
    }

    #[test]
    fn expressions_logic_and_precedence() {
        assert!(eval(
            "$(HTTP_HOST)=='shop.example' & $(HTTP_COOKIE{id})==42"
        ));
        assert!(!eval("$(HTTP_HOST)=='x' & $(HTTP_COOKIE{id})==42"));
        assert!(eval("$(HTTP_HOST)=='x' | $(HTTP_COOKIE{id})==42"));
        assert!(eval("$(HTTP_HOST)=='x' || 1==1 && 2==2"));
        // & binds tighter than |
        assert!(eval("1==1 | 1==2 & 1==2"));
        assert!(!eval("(1==1 | 1==2) & 1==2"));
        assert!(eval("!(1==2)"));
        assert!(eval("!$(HTTP_HOST)=='x'"));
        assert!(!eval("!!(1==2)"));
        assert!(eval("$(HTTP_HOST)"));
        assert!(!eval("$(HTTP_COOKIE{missing})"));
        assert!(!eval("0"));
        assert!(!eval("''"));
    }

    #[test]
    fn long_chains_stay_flat() {
        let s = vec!["1==1"; 5000].join(" & ");
        let e = parse_expr(&s).unwrap();
        assert!(matches!(&e, Expr::And(v) if v.len() == 5000));
        assert!(e.eval(&req()));
    }

    #[test]
    fn invalid_expressions_are_errors() {
        for s in [
            "",
            "   ",
            "$(HTTP_COOKIE{group}) = 'admin'",
            "$(FOO) == 1",
            "'unterminated",
            "1 == ",
            "(1 == 1",
            "1 == 1)",
            "1 == 2 == 3",
            "(1==1) == 1",
            "admin == 'x'",
            "1..2 == 1",
            "- == 1",
            "1 == 1 &",
            "!",
            "# ",
        ] {
            assert!(parse_expr(s).is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = format!("{}1==1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse_expr(&s).is_err());
        let s = format!("{}1==1", "!".repeat(100_000));
        assert!(parse_expr(&s).is_err());
        let s = format!("{}1==1{}", "(".repeat(10), ")".repeat(10));
        assert!(parse_expr(&s).unwrap().eval(&req()));
    }

    #[test]
    fn unicode_in_strings() {
        assert!(eval("'héllo' == 'héllo'"));
        assert!(parse_expr("é").is_err());
    }
}
