//! Tokens → [`ast::Policy`](crate::ast::Policy).

use crate::ast::*;
use crate::error::{Error, LineIndex, Span};
use crate::lexer::{lex, Token, TokenKind};

/// The deepest nesting of blocks, parentheses and unary operators accepted.
pub const MAX_DEPTH: usize = 64;

/// Parses a policy; the first error.
pub fn parse(src: &str, file: &str) -> Result<Policy, Error> {
    parse_all(src, file).map_err(|mut errors| errors.swap_remove(0))
}

/// Parses a policy; every error found (in file order, at most
/// [`crate::MAX_ERRORS`]): after an error in a declaration, parsing goes
/// on at the next line starting with `sub`, `acl`, `backend`, `probe` or
/// `import`.
pub fn parse_all(src: &str, file: &str) -> Result<Policy, Vec<Error>> {
    let toks = lex(src, file).map_err(|e| vec![e])?;
    let mut parser = Parser {
        src,
        lines: LineIndex::new(src),
        file,
        toks,
        pos: 0,
        depth: 0,
        open: Vec::new(),
        misindented: None,
    };
    parser.policy()
}

struct Parser<'a> {
    src: &'a str,
    lines: LineIndex<'a>,
    file: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// The `{` of the blocks being parsed.
    open: Vec<Span>,
    /// The first `{ … }` pair whose `}` is indented differently from the
    /// line of its `{`: a hint where a brace is missing.
    misindented: Option<(Span, Span)>,
}

type PResult<T> = Result<T, Error>;

impl<'a> Parser<'a> {
    // ----- token helpers -----

    fn peek(&self) -> &TokenKind {
        &self.tok().kind
    }

    fn tok(&self) -> &Token {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.pos.min(last)]
    }

    fn nth(&self, n: usize) -> &TokenKind {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[(self.pos + n).min(last)].kind
    }

    fn bump(&mut self) -> Token {
        let t = self.tok().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn prev_end(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.toks[self.pos - 1].span.end
        }
    }

    /// Takes the next token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind) -> bool {
        let here = self.peek() == kind;
        if here {
            self.bump();
        }
        here
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(self.peek(), TokenKind::Ident(s) if s == word)
    }

    fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        Error::new(self.src, self.file, span, message, label)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    fn indent_of(&self, offset: usize) -> usize {
        self.lines.indent(offset)
    }

    /// "expected X, found Y" at the current token.
    fn unexpected(&self, expected: &str, label: &str) -> Error {
        let t = self.tok();
        let label = if label.is_empty() {
            format!("expected {expected}")
        } else {
            label.to_string()
        };
        self.error(
            t.span,
            format!("expected {expected}, found {}", t.kind.describe()),
            label,
        )
    }

    fn expect(&mut self, kind: TokenKind, label: &str) -> PResult<Span> {
        if *self.peek() == kind {
            return Ok(self.bump().span);
        }
        Err(self.unexpected(&format!("`{}`", kind.symbol()), label))
    }

    /// The `;` ending a statement. When it is missing at the end of a line,
    /// the caret goes right after the statement.
    fn semicolon(&mut self) -> PResult<Span> {
        if *self.peek() == TokenKind::Semi {
            return Ok(self.bump().span);
        }
        let end = self.prev_end();
        let next = self.tok();
        let elsewhere = matches!(next.kind, TokenKind::RBrace | TokenKind::Eof)
            || self.line_of(next.span.start) != self.line_of(end);
        if elsewhere {
            return Err(self.error(Span::new(end, end), "missing `;`", "expected `;` here"));
        }
        Err(self.unexpected("`;`", "expected `;` to end the statement"))
    }

    fn ident(&mut self, what: &str) -> PResult<Ident> {
        match self.peek().clone() {
            TokenKind::Ident(name) => {
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => Err(self.unexpected(what, "")),
        }
    }

    fn enter(&mut self, span: Span) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                span,
                "nesting too deep",
                format!("more than {MAX_DEPTH} levels of blocks, parentheses and operators"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Adds where braces look wrong; `missing`: a `}` is missing (else
    /// there is one too many).
    fn brace_note(&self, err: Error, missing: bool) -> Error {
        let question = if missing {
            "is a `}` missing before it?"
        } else {
            "is it one `}` too many?"
        };
        match self.misindented {
            Some((open, close)) => err.note(format!(
                "the `}}` on line {} closes the `{{` on line {}, but is indented differently: {question}",
                self.line_of(close.start),
                self.line_of(open.start)
            )),
            None => err,
        }
    }

    // ----- top level -----

    fn policy(&mut self) -> Result<Policy, Vec<Error>> {
        let mut policy = Policy::default();
        let mut errors = Vec::new();
        if self.is_ident("vcl") {
            match self.version() {
                Ok(v) => policy.version = Some(v),
                Err(e) => errors.push(e),
            }
        }
        loop {
            let at = self.pos;
            match self.item(&mut policy) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    errors.push(e);
                    if errors.len() >= crate::error::MAX_ERRORS || !self.recover(at) {
                        break;
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }

    /// After an error in a top-level declaration: skip to the next line
    /// that starts (in its first column) with `sub`, `acl`, `backend`,
    /// `probe` or `import`, where parsing can go on. `false`: none.
    fn recover(&mut self, item_start: usize) -> bool {
        self.depth = 0;
        self.open.clear();
        if self.pos <= item_start {
            self.pos = item_start + 1;
        }
        while self.pos < self.toks.len() {
            let t = &self.toks[self.pos];
            let at_line_start =
                t.span.start == 0 || self.src.as_bytes().get(t.span.start - 1) == Some(&b'\n');
            if at_line_start
                && matches!(&t.kind, TokenKind::Ident(w) if matches!(w.as_str(), "sub" | "acl" | "backend" | "probe" | "import"))
            {
                return true;
            }
            if t.kind == TokenKind::Eof {
                return false;
            }
            self.pos += 1;
        }
        false
    }

    /// One top-level declaration into `policy`; `false` at the end.
    fn item(&mut self, policy: &mut Policy) -> PResult<bool> {
        let word = match self.peek() {
            TokenKind::Eof => return Ok(false),
            TokenKind::Ident(w) => w.clone(),
            TokenKind::RBrace => {
                let err = self.error(self.tok().span, "unexpected `}`", "no block is open here");
                return Err(self.brace_note(err, false));
            }
            _ => return Err(self.unexpected("`sub`, `acl` or `import`", "")),
        };
        let span = self.tok().span;
        match word.as_str() {
            "sub" => policy.items.push(Item::Sub(self.sub()?)),
            "acl" => policy.items.push(Item::Acl(self.acl()?)),
            "import" => {
                self.bump();
                let name = self.plain_name("a vmod name")?;
                if self.is_ident("from") {
                    // `import std from "/usr/lib/…/libvmod_std.so";`:
                    // the path means nothing to vcl-lite.
                    self.bump();
                    if !matches!(self.peek(), TokenKind::Str(_)) {
                        return Err(self.unexpected("a path in double quotes after `from`", ""));
                    }
                    self.bump();
                }
                self.semicolon()?;
                policy.items.push(Item::Import(name));
            }
            "vcl" => {
                return Err(self.error(
                    span,
                    "misplaced `vcl` header",
                    "`vcl 4.1;` must be the first line of the policy",
                ))
            }
            "backend" => policy.items.push(Item::Backend(self.backend()?)),
            "probe" => {
                self.bump();
                let name = self.plain_name("a probe name")?;
                let (fields, _) = self.fields("probe")?;
                policy.items.push(Item::Probe(ProbeDef { name, fields }));
            }
            "include" => {
                return Err(self.error(
                    span,
                    "`include` needs a policy loaded from a file",
                    "`vcl_lite::compile` takes one text: use `vcl_lite::compile_file`",
                ))
            }
            "if" | "set" | "unset" | "return" | "call" | "hash_data" | "synthetic" => {
                let err = self.unexpected(
                    "`sub`, `acl` or `import`",
                    "statements belong inside a `sub`",
                );
                return Err(self.brace_note(err, false));
            }
            _ => return Err(self.unexpected("`sub`, `acl` or `import`", "")),
        }
        Ok(true)
    }

    fn version(&mut self) -> PResult<(String, Span)> {
        self.bump();
        if !matches!(self.peek(), TokenKind::Real(_) | TokenKind::Int(_)) {
            return Err(self.unexpected("a version such as `4.1`", ""));
        }
        let t = self.bump();
        let text = &self.src[t.span.start..t.span.end];
        if text != "4.0" && text != "4.1" {
            return Err(self.error(
                t.span,
                format!("unsupported VCL version `{text}`"),
                "vcl-lite accepts `vcl 4.0;` and `vcl 4.1;`",
            ));
        }
        let text = text.to_string();
        self.semicolon()?;
        Ok((text, t.span))
    }

    fn plain_name(&mut self, what: &str) -> PResult<Ident> {
        let name = self.ident(what)?;
        if name.name.contains('.') {
            return Err(self.error(
                name.span,
                format!("invalid name `{}`", name.name),
                format!("{what} cannot contain `.`"),
            ));
        }
        Ok(name)
    }

    fn sub(&mut self) -> PResult<SubDef> {
        self.bump();
        let name = self.plain_name("a subroutine name")?;
        let body = self.block()?;
        Ok(SubDef { name, body })
    }

    fn backend(&mut self) -> PResult<BackendDef> {
        self.bump();
        let name = self.plain_name("a backend name")?;
        if self.is_ident("none") {
            self.bump();
            self.semicolon()?;
            return Ok(BackendDef { name, fields: None });
        }
        let (fields, _) = self.fields("backend")?;
        Ok(BackendDef {
            name,
            fields: Some(fields),
        })
    }

    /// `{ .name = value; … }` of a backend or probe.
    fn fields(&mut self, what: &str) -> PResult<(Vec<Field>, Span)> {
        let open = self.expect(
            TokenKind::LBrace,
            &format!("expected `{{` to start the {what}"),
        )?;
        self.enter(open)?;
        let mut fields = Vec::new();
        let close = loop {
            match self.peek() {
                TokenKind::RBrace => break self.bump().span,
                TokenKind::Eof => {
                    return Err(self.brace_note(
                        self.error(open, "unclosed `{`", "this `{` is never closed"),
                        true,
                    ))
                }
                TokenKind::Dot => {}
                _ => {
                    return Err(self.unexpected(
                        "a field such as `.host`",
                        &format!("{what} fields look like `.name = value;`"),
                    ))
                }
            }
            let dot = self.bump().span;
            let mut name = self.plain_name("a field name")?;
            name.span = dot.to(name.span);
            self.expect(TokenKind::Assign, "expected `=` after the field name")?;
            let value = match self.peek().clone() {
                TokenKind::Str(first) => {
                    let mut span = self.bump().span;
                    let mut parts = vec![first];
                    while let TokenKind::Str(more) = self.peek().clone() {
                        span = span.to(self.bump().span);
                        parts.push(more);
                    }
                    FieldValue::Str(parts, span)
                }
                TokenKind::Int(i) => FieldValue::Int(i, self.bump().span),
                TokenKind::Duration(d) => FieldValue::Duration(d, self.bump().span),
                TokenKind::Ident(_) => FieldValue::Name(self.plain_name("a name")?),
                TokenKind::LBrace => {
                    let (inner, span) = self.fields("probe")?;
                    // `.probe = { … }` takes no `;` in Varnish; allow one.
                    if *self.peek() == TokenKind::Semi {
                        self.bump();
                    }
                    fields.push(Field {
                        name,
                        value: FieldValue::Probe(inner, span),
                    });
                    continue;
                }
                _ => return Err(self.unexpected("a value", "")),
            };
            self.semicolon()?;
            fields.push(Field { name, value });
        };
        self.leave();
        Ok((fields, open.to(close)))
    }

    fn acl(&mut self) -> PResult<Acl> {
        self.bump();
        let name = self.plain_name("an ACL name")?;
        let flags = self.acl_flags()?;
        let open = self.expect(TokenKind::LBrace, "expected `{` to start the ACL")?;
        let mut entries = Vec::new();
        loop {
            match self.peek() {
                TokenKind::RBrace => {
                    self.bump();
                    break;
                }
                TokenKind::Eof => {
                    return Err(self.brace_note(
                        self.error(open, "unclosed `{`", "this `{` is never closed"),
                        true,
                    ))
                }
                _ => {}
            }
            entries.push(self.acl_entry()?);
        }
        Ok(Acl {
            name,
            flags,
            entries,
        })
    }

    /// `+log -pedantic …` between an ACL's name and its `{`.
    fn acl_flags(&mut self) -> PResult<AclFlags> {
        let mut flags = AclFlags::default();
        loop {
            let on = match self.peek() {
                TokenKind::Plus => true,
                TokenKind::Minus => false,
                _ => return Ok(flags),
            };
            let sign = self.bump().span;
            let flag = match self.peek().clone() {
                TokenKind::Ident(word) => (word, self.bump().span),
                _ => {
                    return Err(
                        self.unexpected("an ACL flag", "flags look like `+log` or `-pedantic`")
                    )
                }
            };
            let slot = match flag.0.as_str() {
                "log" => &mut flags.log,
                "pedantic" => &mut flags.pedantic,
                "table" => &mut flags.table,
                "fold" => &mut flags.fold,
                other => return Err(self.error(
                    sign.to(flag.1),
                    format!("unknown ACL flag `{other}`"),
                    "the flags are `log`, `pedantic`, `table` and `fold`, each after `+` or `-`",
                )),
            };
            *slot = on;
        }
    }

    /// `"10.0.0.0"/8;`, `!"10.0.0.1";`, `( "backend.example" );`
    fn acl_entry(&mut self) -> PResult<AclEntry> {
        let mut negated = self.eat(&TokenKind::Not);
        let optional = self.eat(&TokenKind::LParen);
        // Varnish takes `!` on either side of the `(`.
        if optional && !negated {
            negated = self.eat(&TokenKind::Not);
        }
        let (addr, addr_span) = match self.peek().clone() {
            TokenKind::Str(s) => (s, self.bump().span),
            _ => {
                return Err(self.unexpected(
                    "an address in double quotes",
                    "ACL entries look like `\"10.0.0.0\"/8;`",
                ))
            }
        };
        let prefix = if self.eat(&TokenKind::Slash) {
            match *self.peek() {
                TokenKind::Int(bits) => Some((bits, self.bump().span)),
                _ => return Err(self.unexpected("a prefix length after `/`", "")),
            }
        } else {
            None
        };
        if optional {
            self.expect(
                TokenKind::RParen,
                "expected `)` after the address (and its prefix length)",
            )?;
        }
        self.semicolon()?;
        Ok(AclEntry {
            negated,
            optional,
            addr,
            addr_span,
            prefix,
        })
    }

    // ----- statements -----

    fn block(&mut self) -> PResult<Block> {
        let open = match self.peek() {
            TokenKind::LBrace => self.bump().span,
            _ => return Err(self.unexpected("`{`", "")),
        };
        self.enter(open)?;
        self.open.push(open);
        let mut stmts = Vec::new();
        let close = loop {
            match self.peek() {
                TokenKind::RBrace => break self.bump().span,
                TokenKind::Eof => {
                    let err = self.error(open, "unclosed `{`", "this `{` is never closed");
                    return Err(self.brace_note(err, true));
                }
                _ => {
                    if let Some(stmt) = self.stmt()? {
                        stmts.push(stmt);
                    }
                }
            }
        };
        self.open.pop();
        self.leave();
        if self.misindented.is_none()
            && self.line_of(open.start) != self.line_of(close.start)
            && self.indent_of(open.start) != self.indent_of(close.start)
        {
            self.misindented = Some((open, close));
        }
        Ok(Block {
            stmts,
            span: open.to(close),
        })
    }

    fn stmt(&mut self) -> PResult<Option<Stmt>> {
        let start = self.tok().span;
        let word = match self.peek() {
            TokenKind::Semi => {
                self.bump();
                return Ok(None);
            }
            TokenKind::Ident(w) => w.clone(),
            _ => return Err(self.unexpected("a statement", "")),
        };
        let kind = match word.as_str() {
            "if" => self.if_stmt()?,
            "set" => {
                self.bump();
                let target = self.ident("a variable to set")?;
                // `set X += E;` is `set X = X + E;` (`-=` likewise).
                let compound = match (self.peek(), self.nth(1)) {
                    (TokenKind::Plus, TokenKind::Assign) => Some(AddOp::Add),
                    (TokenKind::Minus, TokenKind::Assign) => Some(AddOp::Sub),
                    (TokenKind::Star, TokenKind::Assign) => Some(AddOp::Mul),
                    (TokenKind::Slash, TokenKind::Assign) => Some(AddOp::Div),
                    _ => None,
                };
                let op_span = self.tok().span;
                if compound.is_some() {
                    self.bump();
                } else if *self.peek() != TokenKind::Assign {
                    return Err(self.unexpected(
                        "`=`",
                        "expected `=`, `+=`, `-=`, `*=` or `/=` after the variable",
                    ));
                }
                self.bump();
                let mut value = self.expr()?;
                if let Some(op) = compound {
                    let span = target.span.to(value.span);
                    let current = Expr {
                        kind: ExprKind::Name(target.clone()),
                        span: target.span,
                    };
                    value = Expr {
                        kind: ExprKind::Arith(Box::new(current), vec![(op, op_span, value)]),
                        span,
                    };
                }
                self.semicolon()?;
                StmtKind::Set { target, value }
            }
            "unset" => {
                self.bump();
                let target = self.ident("a variable to unset")?;
                self.semicolon()?;
                StmtKind::Unset(target)
            }
            "return" => {
                self.bump();
                if *self.peek() != TokenKind::LParen {
                    let label = match self.peek() {
                        TokenKind::Ident(a) => format!("write `return ({a});`"),
                        _ => "write `return (action);`".to_string(),
                    };
                    return Err(self.unexpected("`(`", &label));
                }
                self.bump();
                let name = self.ident("an action such as `pass` or `hash`")?;
                let mut args = Vec::new();
                let mut span = name.span;
                if *self.peek() == TokenKind::LParen {
                    let (a, close) = self.args()?;
                    args = a;
                    span = span.to(close);
                }
                self.expect(TokenKind::RParen, "expected `)` after the action")?;
                self.semicolon()?;
                StmtKind::Return(ActionExpr { name, args, span })
            }
            "call" => {
                self.bump();
                let name = self.ident("a subroutine name")?;
                self.semicolon()?;
                StmtKind::Call(name)
            }
            "hash_data" | "synthetic" => {
                self.bump();
                let open = self.expect(TokenKind::LParen, "")?;
                self.enter(open)?;
                let e = self.expr()?;
                self.leave();
                self.expect(TokenKind::RParen, "")?;
                self.semicolon()?;
                if word == "hash_data" {
                    StmtKind::HashData(e)
                } else {
                    StmtKind::Synthetic(e)
                }
            }
            "else" | "elseif" | "elsif" => {
                return Err(self.error(
                    start,
                    format!("`{word}` without `if`"),
                    "there is no `if` just before this",
                ))
            }
            "sub" | "acl" => {
                let mut err = self.error(
                    start,
                    format!("expected `}}`, found `{word}`"),
                    format!("`{word}` cannot appear inside a block"),
                );
                if let Some(open) = self.open.last() {
                    err = err.note(format!(
                        "the `{{` on line {} is not closed",
                        self.line_of(open.start)
                    ));
                }
                return Err(self.brace_note(err, true));
            }
            "remove" => {
                return Err(self.error(
                    start,
                    "unknown statement `remove`",
                    "did you mean `unset`?",
                ))
            }
            "error" => {
                return Err(self.error(
                    start,
                    "unknown statement `error`",
                    "write `return (synth(status, \"reason\"));`",
                ))
            }
            "esi" => {
                return Err(self.error(
                    start,
                    "unknown statement `esi`",
                    "write `set beresp.do_esi = true;`",
                ))
            }
            "new" => {
                self.bump();
                let name = self.plain_name("an object name")?;
                self.expect(TokenKind::Assign, "expected `=` after the object name")?;
                let ctor = self.ident("a constructor such as `directors.round_robin`")?;
                if *self.peek() != TokenKind::LParen {
                    return Err(self.unexpected("`(`", "a constructor is called: `vmod.object(…)`"));
                }
                let (args, _) = self.call_args()?;
                self.semicolon()?;
                StmtKind::New { name, ctor, args }
            }
            _ => match self.nth(1) {
                TokenKind::LParen => {
                    let name = self.ident("a function")?;
                    let (args, _) = self.call_args()?;
                    self.semicolon()?;
                    StmtKind::CallFunction { name, args }
                }
                TokenKind::Assign => {
                    return Err(self.error(
                        start,
                        "expected a statement, found an assignment",
                        format!("write `set {word} = …;`"),
                    ))
                }
                _ => return Err(self.unexpected(
                    "a statement",
                    "expected `set`, `unset`, `if`, `return`, `call`, `hash_data` or `synthetic`",
                )),
            },
        };
        Ok(Some(Stmt {
            kind,
            span: start.to(Span::new(self.prev_end(), self.prev_end())),
        }))
    }

    fn condition(&mut self) -> PResult<Expr> {
        if *self.peek() != TokenKind::LParen {
            return Err(self.unexpected("`(`", "conditions are written in parentheses: `if (…)`"));
        }
        self.bump();
        let e = self.expr()?;
        self.expect(TokenKind::RParen, "expected `)` to end the condition")?;
        Ok(e)
    }

    fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let mut branches = vec![(self.condition()?, self.block()?)];
        let mut otherwise = None;
        loop {
            if self.is_ident("elseif") || self.is_ident("elsif") {
                self.bump();
            } else if self.is_ident("else") {
                if matches!(self.nth(1), TokenKind::Ident(w) if w == "if") {
                    self.bump();
                    self.bump();
                } else {
                    self.bump();
                    if *self.peek() == TokenKind::LParen {
                        return Err(
                            self.unexpected("`{`", "write `else if (…)` to test a condition")
                        );
                    }
                    otherwise = Some(self.block()?);
                    break;
                }
            } else {
                break;
            }
            branches.push((self.condition()?, self.block()?));
        }
        Ok(StmtKind::If {
            branches,
            otherwise,
        })
    }

    // ----- expressions -----

    /// `( a, b, … )`: the arguments and the span of `)`.
    fn args(&mut self) -> PResult<(Vec<Expr>, Span)> {
        let open = self.expect(TokenKind::LParen, "")?;
        self.enter(open)?;
        let mut args = Vec::new();
        if *self.peek() == TokenKind::RParen {
            self.leave();
            return Ok((args, self.bump().span));
        }
        loop {
            args.push(self.expr()?);
            match self.peek() {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RParen => {
                    self.leave();
                    return Ok((args, self.bump().span));
                }
                _ => return Err(self.unexpected("`,` or `)`", "")),
            }
        }
    }

    /// A function's `( a, name = b, … )`: the arguments and the span of
    /// `)`. Named arguments come after the positional ones.
    fn call_args(&mut self) -> PResult<(Vec<Arg>, Span)> {
        let open = self.expect(TokenKind::LParen, "")?;
        self.enter(open)?;
        let mut args: Vec<Arg> = Vec::new();
        if *self.peek() == TokenKind::RParen {
            self.leave();
            return Ok((args, self.bump().span));
        }
        loop {
            let named = match (self.peek(), self.nth(1)) {
                (TokenKind::Ident(n), TokenKind::Assign) if !n.contains('.') => {
                    let name = self.ident("a parameter name")?;
                    self.bump();
                    Some(name)
                }
                _ => None,
            };
            let value = self.expr()?;
            if named.is_none() {
                if let Some(prev) = args.iter().rev().find_map(|a| a.name.as_ref()) {
                    return Err(self
                        .error(
                            value.span,
                            "positional argument after a named one",
                            format!("name it, or move it before `{}`", prev.name),
                        )
                        .note("as in Varnish: `f(a, b, name = c)`"));
                }
            }
            args.push(Arg { name: named, value });
            match self.peek() {
                TokenKind::Comma => {
                    self.bump();
                }
                TokenKind::RParen => {
                    self.leave();
                    return Ok((args, self.bump().span));
                }
                _ => return Err(self.unexpected("`,` or `)`", "")),
            }
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        let span = self.tok().span;
        self.enter(span)?;
        let e = self.or()?;
        self.leave();
        Ok(e)
    }

    fn or(&mut self) -> PResult<Expr> {
        let first = self.and()?;
        if *self.peek() != TokenKind::Or {
            return Ok(first);
        }
        let mut items = vec![first];
        while *self.peek() == TokenKind::Or {
            self.bump();
            items.push(self.and()?);
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        Ok(Expr {
            kind: ExprKind::Or(items),
            span,
        })
    }

    fn and(&mut self) -> PResult<Expr> {
        let first = self.not()?;
        if *self.peek() != TokenKind::And {
            return Ok(first);
        }
        let mut items = vec![first];
        while *self.peek() == TokenKind::And {
            self.bump();
            items.push(self.not()?);
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        Ok(Expr {
            kind: ExprKind::And(items),
            span,
        })
    }

    fn not(&mut self) -> PResult<Expr> {
        if *self.peek() == TokenKind::Not {
            let bang = self.bump().span;
            self.enter(bang)?;
            let inner = self.not()?;
            self.leave();
            let span = bang.to(inner.span);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.cmp()
    }

    fn cmp_op(&self) -> Option<CmpOp> {
        Some(match self.peek() {
            TokenKind::Eq => CmpOp::Eq,
            TokenKind::Ne => CmpOp::Ne,
            TokenKind::Lt => CmpOp::Lt,
            TokenKind::Gt => CmpOp::Gt,
            TokenKind::Le => CmpOp::Le,
            TokenKind::Ge => CmpOp::Ge,
            TokenKind::Match => CmpOp::Match,
            TokenKind::NoMatch => CmpOp::NoMatch,
            _ => return None,
        })
    }

    fn cmp(&mut self) -> PResult<Expr> {
        let lhs = self.sum()?;
        let Some(op) = self.cmp_op() else {
            if *self.peek() == TokenKind::Assign {
                return Err(self.error(
                    self.tok().span,
                    "unexpected `=` in an expression",
                    "did you mean `==`?",
                ));
            }
            return Ok(lhs);
        };
        let op_span = self.bump().span;
        let rhs = self.sum()?;
        if self.cmp_op().is_some() {
            return Err(self.error(
                self.tok().span,
                "comparisons cannot be chained",
                "use `&&` to combine comparisons",
            ));
        }
        let span = lhs.span.to(rhs.span);
        Ok(Expr {
            kind: ExprKind::Cmp {
                op,
                op_span,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        })
    }

    fn sum(&mut self) -> PResult<Expr> {
        let first = self.product()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                TokenKind::Plus => AddOp::Add,
                TokenKind::Minus => AddOp::Sub,
                _ => break,
            };
            let op_span = self.bump().span;
            rest.push((op, op_span, self.product()?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let span = first.span.to(rest[rest.len() - 1].2.span);
        Ok(Expr {
            kind: ExprKind::Arith(Box::new(first), rest),
            span,
        })
    }

    /// `a * b / c`
    fn product(&mut self) -> PResult<Expr> {
        let first = self.unary()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                TokenKind::Star => AddOp::Mul,
                TokenKind::Slash => AddOp::Div,
                _ => break,
            };
            let op_span = self.bump().span;
            rest.push((op, op_span, self.unary()?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let span = first.span.to(rest[rest.len() - 1].2.span);
        Ok(Expr {
            kind: ExprKind::Arith(Box::new(first), rest),
            span,
        })
    }

    fn unary(&mut self) -> PResult<Expr> {
        if *self.peek() == TokenKind::Minus {
            let minus = self.bump().span;
            self.enter(minus)?;
            let inner = self.unary()?;
            self.leave();
            let span = minus.to(inner.span);
            let kind = match inner.kind {
                ExprKind::Int(i) => ExprKind::Int(i.wrapping_neg()),
                ExprKind::Duration(d) => ExprKind::Duration(-d),
                ExprKind::Real(r) => ExprKind::Real(-r),
                ExprKind::Bytes(b) => ExprKind::Bytes(b.wrapping_neg()),
                other => ExprKind::Neg(Box::new(Expr {
                    kind: other,
                    span: inner.span,
                })),
            };
            return Ok(Expr { kind, span });
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.tok().clone();
        let kind = match t.kind {
            TokenKind::Str(s) => {
                self.bump();
                ExprKind::Str(s)
            }
            TokenKind::Int(i) => {
                self.bump();
                ExprKind::Int(i)
            }
            TokenKind::Duration(d) => {
                self.bump();
                ExprKind::Duration(d)
            }
            TokenKind::Real(r) => {
                self.bump();
                ExprKind::Real(r)
            }
            TokenKind::Bytes(b) => {
                self.bump();
                ExprKind::Bytes(b)
            }
            TokenKind::Ident(name) => {
                self.bump();
                match name.as_str() {
                    "true" => ExprKind::Bool(true),
                    "false" => ExprKind::Bool(false),
                    _ if *self.peek() == TokenKind::LParen => {
                        let (args, close) = self.call_args()?;
                        return Ok(Expr {
                            kind: ExprKind::Call {
                                name: Ident { name, span: t.span },
                                args,
                            },
                            span: t.span.to(close),
                        });
                    }
                    _ => ExprKind::Name(Ident { name, span: t.span }),
                }
            }
            TokenKind::LParen => {
                self.bump();
                let inner = self.expr()?;
                let close = self.expect(TokenKind::RParen, "expected `)` to close `(`")?;
                return Ok(Expr {
                    kind: inner.kind,
                    span: t.span.to(close),
                });
            }
            _ => return Err(self.unexpected("an expression", "")),
        };
        Ok(Expr { kind, span: t.span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Policy {
        match parse(src, "t.vcl") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(src: &str) -> Error {
        parse(src, "t.vcl").unwrap_err()
    }

    fn first_stmt(src: &str) -> StmtKind {
        let p = parse_ok(&format!("sub vcl_recv {{ {src} }}"));
        match &p.items[0] {
            Item::Sub(s) => s.body.stmts[0].kind.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn expr(src: &str) -> ExprKind {
        match first_stmt(&format!("set req.http.x = {src};")) {
            StmtKind::Set { value, .. } => value.kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_and_items() {
        let p = parse_ok(
            "vcl 4.1;\nimport std;\nacl purge { \"127.0.0.1\"; !\"10.0.0.1\"; \"10.0.0.0\"/8; }\nsub vcl_recv { }\nsub custom { }",
        );
        assert_eq!(p.version.as_ref().map(|v| v.0.as_str()), Some("4.1"));
        assert_eq!(p.items.len(), 4);
        match &p.items[1] {
            Item::Acl(acl) => {
                assert_eq!(acl.name.name, "purge");
                assert_eq!(acl.entries.len(), 3);
                assert!(acl.entries[1].negated);
                assert_eq!(acl.entries[2].prefix.map(|p| p.0), Some(8));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("vcl 3.0;", "t").is_err());
        assert_eq!(
            parse_err("vcl").message(),
            "expected a version such as `4.1`, found end of file"
        );
        assert_eq!(parse_err("vcl 4.1").message(), "missing `;`");
        assert!(parse("sub a {} vcl 4.1;", "t").is_err());
    }

    #[test]
    fn if_chains() {
        for kw in ["elseif", "elsif", "else if"] {
            let s = first_stmt(&format!(
                "if (req.url) {{ }} {kw} (req.method) {{ call x; }} else {{ return (pass); }}"
            ));
            match s {
                StmtKind::If {
                    branches,
                    otherwise,
                } => {
                    assert_eq!(branches.len(), 2);
                    assert_eq!(otherwise.map(|b| b.stmts.len()), Some(1));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn statements() {
        assert!(
            matches!(first_stmt("unset req.http.Cookie;"), StmtKind::Unset(i) if i.name == "req.http.Cookie")
        );
        assert!(matches!(first_stmt("call foo;"), StmtKind::Call(i) if i.name == "foo"));
        assert!(matches!(
            first_stmt("hash_data(req.url);"),
            StmtKind::HashData(_)
        ));
        assert!(matches!(
            first_stmt("synthetic(\"x\");"),
            StmtKind::Synthetic(_)
        ));
        match first_stmt("return (synth(404, \"Not found\"));") {
            StmtKind::Return(a) => {
                assert_eq!(a.name.name, "synth");
                assert_eq!(a.args.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(first_stmt("return (pass);"), StmtKind::Return(a) if a.args.is_empty()));
        assert!(matches!(
            first_stmt("std.tolower(\"a\");"),
            StmtKind::CallFunction { .. }
        ));
    }

    #[test]
    fn precedence() {
        // `!` binds looser than comparisons, `&&` tighter than `||`.
        match expr("!req.url ~ \"a\" || a && b") {
            ExprKind::Or(items) => {
                assert!(
                    matches!(&items[0].kind, ExprKind::Not(inner) if matches!(inner.kind, ExprKind::Cmp { op: CmpOp::Match, .. }))
                );
                assert!(matches!(&items[1].kind, ExprKind::And(v) if v.len() == 2));
            }
            other => panic!("{other:?}"),
        }
        match expr("\"a\" + req.url + \"b\" == \"x\"") {
            ExprKind::Cmp {
                lhs, op: CmpOp::Eq, ..
            } => {
                assert!(matches!(&lhs.kind, ExprKind::Arith(_, rest) if rest.len() == 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(expr("-10s"), ExprKind::Duration(-10.0));
        assert_eq!(expr("(-(3))"), ExprKind::Int(-3));
        assert!(
            matches!(expr("regsub(req.url, \"a\", \"b\")"), ExprKind::Call { args, .. } if args.len() == 3)
        );
    }

    #[test]
    fn long_chains_stay_flat() {
        let alternatives: Vec<String> = (0..5000).map(|i| format!("req.url ~ \"{i}\"")).collect();
        match expr(&alternatives.join(" || ")) {
            ExprKind::Or(items) => assert_eq!(items.len(), 5000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_err("sub vcl_recv { set req.url = \"a\" }").message(),
            "missing `;`"
        );
        assert_eq!(parse_err("sub vcl_recv {").message(), "unclosed `{`");
        assert_eq!(parse_err("}").message(), "unexpected `}`");
        assert_eq!(
            parse_err("sub vcl_recv { if req.url { } }").message(),
            "expected `(`, found `req.url`"
        );
        assert_eq!(
            parse_err("sub vcl_recv { return pass; }").label(),
            "write `return (pass);`"
        );
        assert_eq!(
            parse_err("sub vcl_recv { x = 1; }").label(),
            "write `set x = …;`"
        );
        assert_eq!(
            parse_err("sub vcl_recv { if (a == b == c) {} }").message(),
            "comparisons cannot be chained"
        );
        assert_eq!(
            parse_err("backend default { host = \"a\"; }").message(),
            "expected a field such as `.host`, found `host`"
        );
        assert_eq!(
            parse_err("sub a { else { } }").message(),
            "`else` without `if`"
        );
        assert_eq!(
            parse_err("sub a { set x = f(a = 1, 2); }").message(),
            "positional argument after a named one"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "sub a {{ set x = {}1{}; }}",
            "(".repeat(100),
            ")".repeat(100)
        );
        assert_eq!(parse_err(&deep).message(), "nesting too deep");
        let deep = format!("sub a {{ {} }}", "if (x) {".repeat(100));
        assert_eq!(parse_err(&deep).message(), "nesting too deep");
        let bangs = format!("sub a {{ if ({}x) {{}} }}", "!".repeat(10_000));
        assert_eq!(parse_err(&bangs).message(), "nesting too deep");
        let minus = format!("sub a {{ set x = {}1; }}", "-".repeat(10_000));
        assert_eq!(parse_err(&minus).message(), "nesting too deep");
    }

    #[test]
    fn missing_brace_hint() {
        let src = "sub vcl_recv {\n    if (a) {\n        return (pass);\n}\n";
        let err = parse_err(src);
        assert_eq!(err.message(), "unclosed `{`");
        assert_eq!(err.line(), 1);
        assert!(err.notes()[0].contains("line 4"), "{err}");
    }
}
