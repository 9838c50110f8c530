//! Compile errors (with a source snippet and a caret) and run-time errors.

use std::fmt;

/// A byte range in the policy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Line and column (both 1-based; the column counts characters) of a byte
/// offset, with the text of its line and the byte offset where it starts.
pub(crate) fn locate(src: &str, offset: usize) -> (usize, usize, usize, &str) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line_no = src[..offset].bytes().filter(|&b| b == b'\n').count() + 1;
    let column = src[line_start..offset].chars().count() + 1;
    let text = src[line_start..line_end].trim_end_matches('\r');
    (line_no, column, line_start, text)
}

/// Line starts of a source, for cheap line look-ups on big inputs.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { src, starts }
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }

    /// Leading whitespace of the line holding `offset` (counted up to 256).
    pub(crate) fn indent(&self, offset: usize) -> usize {
        let line = self.line(offset);
        let start = self
            .starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        self.src.as_bytes()[start.min(self.src.len())..]
            .iter()
            .take(256)
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count()
    }
}

/// A syntax, name or type error in a policy, pointing at where it is.
///
/// Its `Display` form is the full message, e.g.
///
/// ```text
/// error: unknown variable `req.uri`
///   --> policy.vcl:3:9
///    |
///  3 |     if (req.uri ~ "^/admin") {
///    |         ^^^^^^^ did you mean `req.url`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    message: String,
    file: String,
    line: usize,
    column: usize,
    source_line: String,
    caret_len: usize,
    label: String,
    notes: Vec<String>,
    /// Where, in the text that was compiled (kept to map it back to the
    /// file it came from when includes were expanded).
    span: Span,
}

impl Error {
    pub(crate) fn new(
        src: &str,
        file: &str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Error {
        let (line, column, line_start, text) = locate(src, span.start);
        // Within the line's text (a span may start on its `\r`, or past it
        // at the end of the input).
        let start_in_line = (span.start.min(src.len()))
            .saturating_sub(line_start)
            .min(text.len());
        let end_in_line = span
            .end
            .saturating_sub(line_start)
            .clamp(start_in_line, text.len());
        let caret_len = text
            .get(start_in_line.min(text.len())..end_in_line)
            .map_or(0, |s| s.chars().count())
            .max(1);
        Error(Box::new(Inner {
            message: message.into(),
            file: file.to_string(),
            line,
            column,
            source_line: text.to_string(),
            caret_len,
            label: label.into(),
            notes: Vec::new(),
            span,
        }))
    }

    /// Adds a `= note:` line.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Error {
        self.0.notes.push(note.into());
        self
    }

    /// What went wrong, in one line (`unknown variable `req.uri``).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The text under the caret (`did you mean `req.url`?`).
    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// The file name given to [`crate::compile`].
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// 1-based line.
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.0.column
    }

    /// Where it is in the compiled text (for ordering errors).
    pub(crate) fn offset(&self) -> usize {
        self.0.span.start
    }

    /// Extra notes.
    pub fn notes(&self) -> &[String] {
        &self.0.notes
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        let width = e.line.to_string().len();
        let gutter = " ".repeat(width + 2);
        writeln!(f, "error: {}", e.message)?;
        writeln!(
            f,
            "{}--> {}:{}:{}",
            " ".repeat(width + 1),
            e.file,
            e.line,
            e.column
        )?;
        writeln!(f, "{gutter}|")?;
        writeln!(f, " {:>width$} | {}", e.line, e.source_line)?;
        let pad: String = e
            .source_line
            .chars()
            .take(e.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{gutter}| {pad}{}", "^".repeat(e.caret_len))?;
        if !e.label.is_empty() {
            write!(f, " {}", e.label)?;
        }
        for note in &e.notes {
            write!(f, "\n{gutter}= note: {note}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Several compile errors, in file order (at most [`MAX_ERRORS`]). Its
/// `Display` form is each message, separated by a blank line, then a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<Error>);

/// The most errors one compile reports.
pub const MAX_ERRORS: usize = 20;

impl Errors {
    /// The first error.
    pub fn first(&self) -> Option<&Error> {
        self.0.first()
    }

    /// All of them, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never, for an `Errors` returned by a compile).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Error> for Errors {
    fn from(e: Error) -> Errors {
        Errors(vec![e])
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > 1 {
            let more = if self.0.len() >= MAX_ERRORS {
                " (stopped there)"
            } else {
                ""
            };
            write!(f, "\n\n{} errors{more}", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Where each part of a compiled text comes from, when `include`s were
/// expanded into it: errors and run-time locations name the file the text
/// was written in.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    /// Each file's name and text.
    files: Vec<(String, String)>,
    /// Pieces of the compiled text, by start.
    segs: Vec<Seg>,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    /// Where the piece starts in the compiled text.
    start: usize,
    /// Which file it comes from.
    file: usize,
    /// Where it starts in that file.
    offset: usize,
}

impl SourceMap {
    /// A single file compiled as it is.
    pub(crate) fn single(name: &str, text: &str) -> SourceMap {
        let mut map = SourceMap::default();
        let file = map.add_file(name, text);
        map.piece(0, file, 0);
        map
    }

    /// Registers a file; its index.
    pub(crate) fn add_file(&mut self, name: &str, text: &str) -> usize {
        self.files.push((name.to_string(), text.to_string()));
        self.files.len() - 1
    }

    /// From `start` in the compiled text on, the text is `file`'s from
    /// `offset` on.
    pub(crate) fn piece(&mut self, start: usize, file: usize, offset: usize) {
        self.segs.push(Seg {
            start,
            file,
            offset,
        });
    }

    fn resolve(&self, pos: usize) -> Option<(&str, &str, usize, usize)> {
        let i = self
            .segs
            .partition_point(|s| s.start <= pos)
            .checked_sub(1)?;
        let seg = self.segs[i];
        let (name, text) = self.files.get(seg.file)?;
        let local = (pos - seg.start + seg.offset).min(text.len());
        // A piece ends where the next begins (or in its file's text).
        let limit = self.segs.get(i + 1).map_or(text.len(), |n| {
            (n.start - seg.start + seg.offset).min(text.len())
        });
        Some((name, text, local, limit))
    }

    /// File name, line and column of a position in the compiled text.
    pub(crate) fn locate(&self, pos: usize) -> (&str, usize, usize) {
        match self.resolve(pos) {
            Some((name, text, local, _)) => {
                let (line, column, _, _) = locate(text, local);
                (name, line, column)
            }
            None => ("", 1, 1),
        }
    }

    /// "line 5" (one file) or "line 5 of inc/acl.vcl" (includes), for
    /// notes that point elsewhere.
    pub(crate) fn line_ref(&self, pos: usize) -> String {
        let (name, line, _) = self.locate(pos);
        if self.files.len() > 1 {
            format!("line {line} of {name}")
        } else {
            format!("line {line}")
        }
    }

    /// The error, pointing into the file its span was written in.
    pub(crate) fn relocate(&self, err: Error) -> Error {
        let span = err.0.span;
        let Some((name, text, start, limit)) = self.resolve(span.start) else {
            return err;
        };
        let end = (span.end - span.start + start).min(limit.max(start));
        let inner = *err.0;
        let mut out = Error::new(
            text,
            name,
            Span::new(start, end),
            inner.message,
            inner.label,
        );
        out.0.notes = inner.notes;
        out
    }
}

/// Where a statement is, for run-time errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// An error while running a compiled policy (a value the host refused, a
/// `synth` status out of range, …). The request fails, as a VCL failure
/// does in Varnish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError {
    /// What went wrong.
    pub message: String,
    /// The policy's file name.
    pub file: String,
    /// The statement that failed.
    pub location: Location,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at {}:{}:{})",
            self.message, self.file, self.location.line, self.location.column
        )
    }
}

impl std::error::Error for RuntimeError {}
