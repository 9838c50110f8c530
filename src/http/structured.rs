//! A small Structured Field Dictionary parser (RFC 8941 §4.2.2, plus the
//! Date and Display String types of RFC 9651), enough to validate targeted
//! cache-control fields (RFC 9213) and extract their members.
//!
//! Why not the `sfv` crate: it would add four crates to the build (sfv,
//! base64, ref-cast and its proc-macro) for one dictionary parse, and its
//! full data model (decimals, byte sequences, parameters kept) is more than
//! the directives need; this parser reduces every value to [`Value`] and is
//! exercised by the directive tests in `cache::directives`.

/// A dictionary member value, reduced to what cache directives need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Boolean(bool),
    Integer(i64),
    Token(String),
    String(String),
    /// Decimal, byte sequence, date, display string or inner list.
    Other,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// Parse a dictionary. `None` for empty input or any syntax error.
/// Duplicate keys keep their first position and their last value.
pub(crate) fn parse_dictionary(input: &[u8]) -> Option<Vec<(String, Value)>> {
    let mut p = Parser { s: input, i: 0 };
    p.skip_sp();
    // Trailing spaces are discarded too (RFC 8941 §4.2).
    let mut end = input.len();
    while end > p.i && input[end - 1] == b' ' {
        end -= 1;
    }
    p.s = &input[..end];
    if p.at_end() {
        return None;
    }
    let mut members: Vec<(String, Value)> = Vec::new();
    loop {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            if p.peek() == Some(b'(') {
                p.inner_list()?;
                Value::Other
            } else {
                let v = p.bare_item()?;
                p.parameters()?;
                v
            }
        } else {
            p.parameters()?;
            Value::Boolean(true)
        };
        match members.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => members.push((key, value)),
        }
        p.skip_ows();
        if p.at_end() {
            return Some(members);
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        if p.at_end() {
            return None;
        }
    }
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.i += 1,
            _ => return None,
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.i += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            return None;
        }
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            match self.peek() {
                Some(b' ' | b')') => {}
                _ => return None,
            }
        }
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(Value::String),
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => Some(Value::Token(self.token())),
            b':' => self.binary(),
            b'?' => self.boolean(),
            b'@' => {
                self.i += 1;
                match self.number()? {
                    Value::Integer(_) => Some(Value::Other),
                    _ => None,
                }
            }
            b'%' => self.display_string(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Value> {
        let negative = self.eat(b'-');
        let int_start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let int_len = self.i - int_start;
        if int_len == 0 {
            return None;
        }
        if self.eat(b'.') {
            let frac_start = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            let frac_len = self.i - frac_start;
            if int_len > 12 || !(1..=3).contains(&frac_len) {
                return None;
            }
            return Some(Value::Other);
        }
        if int_len > 15 {
            return None;
        }
        let digits = std::str::from_utf8(&self.s[int_start..self.i]).ok()?;
        let n: i64 = digits.parse().ok()?;
        Some(Value::Integer(if negative { -n } else { n }))
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = String::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'\\' => {
                    let next = self.peek()?;
                    if next != b'"' && next != b'\\' {
                        return None;
                    }
                    self.i += 1;
                    out.push(char::from(next));
                }
                b'"' => return Some(out),
                0x20..=0x7e => out.push(char::from(b)),
                _ => return None,
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.i;
        self.i += 1;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphanumeric() || b":/!#$%&'*+-.^_`|~".contains(&b);
            if !ok {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn binary(&mut self) -> Option<Value> {
        self.i += 1;
        loop {
            match self.peek()? {
                b':' => {
                    self.i += 1;
                    return Some(Value::Other);
                }
                b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') => {
                    self.i += 1;
                }
                _ => return None,
            }
        }
    }

    fn boolean(&mut self) -> Option<Value> {
        self.i += 1;
        let v = match self.peek()? {
            b'0' => false,
            b'1' => true,
            _ => return None,
        };
        self.i += 1;
        Some(Value::Boolean(v))
    }

    fn display_string(&mut self) -> Option<Value> {
        self.i += 1;
        if !self.eat(b'"') {
            return None;
        }
        let mut bytes = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'%' => {
                    let hex = self.s.get(self.i..self.i + 2)?;
                    if !hex.iter().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f')) {
                        return None;
                    }
                    let hex = std::str::from_utf8(hex).ok()?;
                    bytes.push(u8::from_str_radix(hex, 16).ok()?);
                    self.i += 2;
                }
                b'"' => {
                    return std::str::from_utf8(&bytes).ok().map(|_| Value::Other);
                }
                0x20..=0x7e => bytes.push(b),
                _ => return None,
            }
        }
    }
}
