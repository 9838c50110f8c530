//! Tokens of vcl-lite, with their byte spans.

use crate::error::{Error, Span};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A name, possibly dotted: `vcl_recv`, `req.http.X-Forwarded-For`, `std.tolower`.
    Ident(String),
    /// A string literal's contents (`"..."`, `{"..."}` or `"""..."""`).
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A decimal number without a unit (only valid in the `vcl 4.1;` header).
    Real(f64),
    /// A duration literal, in seconds (`10ms`, `10s`, `5m`, `2h`, `1d`, `1w`, `1y`).
    Duration(f64),
    /// A size literal, in bytes (`512B`, `10KB`, `1.5MB`, `1GB`, `1TB`).
    Bytes(i64),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `;`
    Semi,
    /// `,`
    Comma,
    /// `/`
    Slash,
    /// `*`
    Star,
    /// `=`
    Assign,
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
    /// `~`
    Match,
    /// `!~`
    NoMatch,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `!`
    Not,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `.` on its own (not part of vcl-lite; lexed for better errors).
    Dot,
    /// End of input.
    Eof,
}

impl TokenKind {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(s) => format!("`{s}`"),
            TokenKind::Str(s) => {
                let short: String = s.chars().take(20).collect();
                if short.len() < s.len() {
                    format!("string \"{short}…\"")
                } else {
                    format!("string \"{s}\"")
                }
            }
            TokenKind::Int(i) => format!("number `{i}`"),
            TokenKind::Real(r) => format!("number `{r}`"),
            TokenKind::Duration(_) => "duration".to_string(),
            TokenKind::Bytes(_) => "size".to_string(),
            TokenKind::Eof => "end of file".to_string(),
            other => format!("`{}`", other.symbol()),
        }
    }

    /// The text of a punctuation or operator token.
    pub fn symbol(&self) -> &'static str {
        match self {
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::Semi => ";",
            TokenKind::Comma => ",",
            TokenKind::Slash => "/",
            TokenKind::Star => "*",
            TokenKind::Assign => "=",
            TokenKind::Eq => "==",
            TokenKind::Ne => "!=",
            TokenKind::Lt => "<",
            TokenKind::Gt => ">",
            TokenKind::Le => "<=",
            TokenKind::Ge => ">=",
            TokenKind::Match => "~",
            TokenKind::NoMatch => "!~",
            TokenKind::And => "&&",
            TokenKind::Or => "||",
            TokenKind::Not => "!",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Dot => ".",
            TokenKind::Ident(_)
            | TokenKind::Str(_)
            | TokenKind::Int(_)
            | TokenKind::Real(_)
            | TokenKind::Duration(_)
            | TokenKind::Bytes(_)
            | TokenKind::Eof => "",
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
}

/// Duration units and their length in seconds.
const UNITS: &[(&str, f64)] = &[
    ("ms", 0.001),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
    ("w", 7.0 * 86400.0),
    ("y", 365.0 * 86400.0),
];

/// Seconds in one `unit` (`ms`, `s`, `m`, `h`, `d`, `w`, `y`).
pub(crate) fn unit_seconds(unit: &str) -> Option<f64> {
    UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    file: &'a str,
    pos: usize,
    tokens: Vec<Token>,
    /// End of the last token or comment: where "end of file" is reported.
    last_end: usize,
}

/// Splits `src` into tokens; the last one is [`TokenKind::Eof`].
pub fn lex(src: &str, file: &str) -> Result<Vec<Token>, Error> {
    let mut lexer = Lexer {
        src,
        bytes: src.as_bytes(),
        file,
        pos: 0,
        tokens: Vec::new(),
        last_end: 0,
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

impl<'a> Lexer<'a> {
    fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        Error::new(self.src, self.file, span, message, label)
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos),
        });
        self.last_end = self.pos;
    }

    fn run(&mut self) -> Result<(), Error> {
        while let Some(b) = self.peek_at(self.pos) {
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => self.line_comment(),
                b'/' if self.peek_at(start + 1) == Some(b'/') => self.line_comment(),
                b'/' if self.peek_at(start + 1) == Some(b'*') => self.block_comment()?,
                b'"' => self.string()?,
                b'{' if self.peek_at(start + 1) == Some(b'"') => self.long_string()?,
                b'0'..=b'9' => self.number()?,
                b if is_ident_start(b) => self.ident(),
                _ => self.punct()?,
            }
        }
        let at = self.last_end;
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            span: Span::new(at, at),
        });
        Ok(())
    }

    fn line_comment(&mut self) {
        while let Some(b) = self.peek_at(self.pos) {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
        self.last_end = self.pos;
    }

    fn block_comment(&mut self) -> Result<(), Error> {
        let start = self.pos;
        match self.src[start + 2..].find("*/") {
            Some(i) => {
                self.pos = start + 2 + i + 2;
                self.last_end = self.pos;
                Ok(())
            }
            None => Err(self.error(
                Span::new(start, start + 2),
                "unterminated comment",
                "this `/*` is never closed by `*/`",
            )),
        }
    }

    fn string(&mut self) -> Result<(), Error> {
        let start = self.pos;
        if self.src[start..].starts_with("\"\"\"") {
            return match self.src[start + 3..].find("\"\"\"") {
                Some(i) => {
                    let text = self.src[start + 3..start + 3 + i].to_string();
                    self.pos = start + 3 + i + 3;
                    self.push(TokenKind::Str(text), start);
                    Ok(())
                }
                None => Err(self.error(
                    Span::new(start, start + 3),
                    "unterminated string",
                    "this `\"\"\"` is never closed",
                )),
            };
        }
        let rest = &self.src[start + 1..];
        let close = rest.find(['"', '\n']);
        match close {
            Some(i) if rest.as_bytes()[i] == b'"' => {
                let text = rest[..i].to_string();
                self.pos = start + 1 + i + 1;
                self.push(TokenKind::Str(text), start);
                Ok(())
            }
            _ => Err(self
                .error(
                    Span::new(start, start + 1),
                    "unterminated string",
                    "this string is never closed",
                )
                .note("a \"...\" string ends on its line; use {\"...\"} for text spanning lines")),
        }
    }

    fn long_string(&mut self) -> Result<(), Error> {
        let start = self.pos;
        match self.src[start + 2..].find("\"}") {
            Some(i) => {
                let text = self.src[start + 2..start + 2 + i].to_string();
                self.pos = start + 2 + i + 2;
                self.push(TokenKind::Str(text), start);
                Ok(())
            }
            None => Err(self.error(
                Span::new(start, start + 2),
                "unterminated string",
                "this `{\"` is never closed by `\"}`",
            )),
        }
    }

    fn number(&mut self) -> Result<(), Error> {
        let start = self.pos;
        while self.peek_at(self.pos).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let mut fractional = false;
        if self.peek_at(self.pos) == Some(b'.')
            && self
                .peek_at(self.pos + 1)
                .is_some_and(|b| b.is_ascii_digit())
        {
            fractional = true;
            self.pos += 1;
            while self.peek_at(self.pos).is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let digits_end = self.pos;
        let number = &self.src[start..digits_end];
        while self.peek_at(self.pos).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let unit = &self.src[digits_end..self.pos];
        if let Some(per_unit) = crate::stdlib::bytes_unit(unit).filter(|_| !unit.is_empty()) {
            let value: f64 = number
                .parse()
                .map_err(|_| self.error(Span::new(start, self.pos), "bad size", "not a number"))?;
            let bytes = value * per_unit as f64;
            if !bytes.is_finite() || bytes >= 9.2e18 {
                return Err(self.error(Span::new(start, self.pos), "bad size", "too large"));
            }
            self.push(TokenKind::Bytes(bytes.floor() as i64), start);
            return Ok(());
        }
        if !unit.is_empty() {
            let Some(per_unit) = unit_seconds(unit) else {
                return Err(self.error(
                    Span::new(digits_end, self.pos),
                    format!("bad duration `{}`", &self.src[start..self.pos]),
                    format!("unknown unit `{unit}`: expected one of ms, s, m, h, d, w, y (or B, KB, MB, GB, TB for a size)"),
                ));
            };
            let value: f64 = number.parse().map_err(|_| {
                self.error(Span::new(start, self.pos), "bad duration", "not a number")
            })?;
            let seconds = value * per_unit;
            if !seconds.is_finite() {
                return Err(self.error(Span::new(start, self.pos), "bad duration", "too large"));
            }
            self.push(TokenKind::Duration(seconds), start);
            return Ok(());
        }
        if fractional {
            let value: f64 = number.parse().map_err(|_| {
                self.error(Span::new(start, self.pos), "bad number", "not a number")
            })?;
            self.push(TokenKind::Real(value), start);
            return Ok(());
        }
        match number.parse::<i64>() {
            Ok(i) => {
                self.push(TokenKind::Int(i), start);
                Ok(())
            }
            Err(_) => Err(self.error(
                Span::new(start, self.pos),
                "integer too large",
                format!("the largest integer is {}", i64::MAX),
            )),
        }
    }

    fn ident(&mut self) {
        let start = self.pos;
        self.pos += 1;
        loop {
            while self.peek_at(self.pos).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            if self.peek_at(self.pos) == Some(b'.')
                && self.peek_at(self.pos + 1).is_some_and(is_ident_char)
            {
                self.pos += 1;
                continue;
            }
            break;
        }
        let text = self.src[start..self.pos].to_string();
        self.push(TokenKind::Ident(text), start);
    }

    fn punct(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let next = self.peek_at(start + 1);
        let (kind, len) = match (self.bytes[start], next) {
            (b'=', Some(b'=')) => (TokenKind::Eq, 2),
            (b'!', Some(b'=')) => (TokenKind::Ne, 2),
            (b'<', Some(b'=')) => (TokenKind::Le, 2),
            (b'>', Some(b'=')) => (TokenKind::Ge, 2),
            (b'!', Some(b'~')) => (TokenKind::NoMatch, 2),
            (b'&', Some(b'&')) => (TokenKind::And, 2),
            (b'|', Some(b'|')) => (TokenKind::Or, 2),
            (b'=', _) => (TokenKind::Assign, 1),
            (b'<', _) => (TokenKind::Lt, 1),
            (b'>', _) => (TokenKind::Gt, 1),
            (b'~', _) => (TokenKind::Match, 1),
            (b'!', _) => (TokenKind::Not, 1),
            (b'+', _) => (TokenKind::Plus, 1),
            (b'-', _) => (TokenKind::Minus, 1),
            (b'(', _) => (TokenKind::LParen, 1),
            (b')', _) => (TokenKind::RParen, 1),
            (b'{', _) => (TokenKind::LBrace, 1),
            (b'}', _) => (TokenKind::RBrace, 1),
            (b';', _) => (TokenKind::Semi, 1),
            (b',', _) => (TokenKind::Comma, 1),
            (b'/', _) => (TokenKind::Slash, 1),
            (b'*', _) => (TokenKind::Star, 1),
            (b'.', _) => (TokenKind::Dot, 1),
            _ => {
                let c = self.src[start..].chars().next().unwrap_or('?');
                let label = match c {
                    '&' => "did you mean `&&`?".to_string(),
                    '|' => "did you mean `||`?".to_string(),
                    '\'' => "strings are written between double quotes: \"...\"".to_string(),
                    _ => "not part of vcl-lite".to_string(),
                };
                return Err(self.error(
                    Span::new(start, start + c.len_utf8()),
                    format!("unexpected character `{c}`"),
                    label,
                ));
            }
        };
        self.pos += len;
        self.push(kind, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src, "t.vcl")
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn ident(s: &str) -> TokenKind {
        TokenKind::Ident(s.to_string())
    }

    #[test]
    fn idents_with_dots_and_dashes() {
        assert_eq!(
            kinds("req.http.X-Forwarded-For std.tolower beresp.ttl"),
            vec![
                ident("req.http.X-Forwarded-For"),
                ident("std.tolower"),
                ident("beresp.ttl"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            kinds("10ms 10s 5m 2h 1d 1w 1y 1.5s"),
            vec![
                TokenKind::Duration(0.01),
                TokenKind::Duration(10.0),
                TokenKind::Duration(300.0),
                TokenKind::Duration(7200.0),
                TokenKind::Duration(86400.0),
                TokenKind::Duration(604800.0),
                TokenKind::Duration(31536000.0),
                TokenKind::Duration(1.5),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn bad_duration_unit() {
        let err = lex("set beresp.ttl = 10x;", "t.vcl").unwrap_err();
        assert_eq!(err.message(), "bad duration `10x`");
        assert_eq!(err.column(), 20);
    }

    #[test]
    fn numbers_and_version() {
        assert_eq!(
            kinds("vcl 4.1; 42"),
            vec![
                ident("vcl"),
                TokenKind::Real(4.1),
                TokenKind::Semi,
                TokenKind::Int(42),
                TokenKind::Eof
            ]
        );
        assert!(lex("99999999999999999999", "t").is_err());
    }

    #[test]
    fn strings() {
        assert_eq!(
            kinds(
                r#""a\b" {"x"y
z"} """q"q""""#
            ),
            vec![
                TokenKind::Str("a\\b".into()),
                TokenKind::Str("x\"y\nz".into()),
                TokenKind::Str("q\"q".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn unterminated_strings() {
        let err = lex("x = \"abc\n\"", "t.vcl").unwrap_err();
        assert_eq!(err.message(), "unterminated string");
        assert_eq!((err.line(), err.column()), (1, 5));
        assert!(lex("{\"abc", "t").is_err());
        assert!(lex("\"\"\"abc\"\"", "t").is_err());
    }

    #[test]
    fn operators() {
        use TokenKind::*;
        assert_eq!(
            kinds("== != < > <= >= ~ !~ && || ! = + - ( ) { } ; , /"),
            vec![
                Eq, Ne, Lt, Gt, Le, Ge, Match, NoMatch, And, Or, Not, Assign, Plus, Minus, LParen,
                RParen, LBrace, RBrace, Semi, Comma, Slash, Eof
            ]
        );
    }

    #[test]
    fn comments() {
        assert_eq!(
            kinds("a # x\nb // y\nc /* z\n w */ d"),
            vec![
                ident("a"),
                ident("b"),
                ident("c"),
                ident("d"),
                TokenKind::Eof
            ]
        );
        assert!(lex("a /* never", "t").is_err());
    }

    #[test]
    fn spans() {
        let toks = lex("sub  vcl_recv", "t").unwrap();
        assert_eq!(toks[1].span, Span::new(5, 13));
        assert_eq!(toks[2].span, Span::new(13, 13));
    }

    #[test]
    fn eof_after_last_token() {
        let toks = lex("a\n\n  # c\n\n", "t").unwrap();
        assert_eq!(toks[1].span.start, 8);
    }

    #[test]
    fn stray_characters() {
        let err = lex("a & b", "t").unwrap_err();
        assert_eq!(err.label(), "did you mean `&&`?");
        assert!(lex("é", "t").is_err());
    }
}
