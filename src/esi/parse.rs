//! Parsing a stored page body into an ESI [`Template`], once, at store time.
//!
//! The scanner looks for `<esi:`, `</esi:`, `<!--esi` (and, inside an
//! `<!--esi` block, its closing `-->`), and for the HTML comments and CDATA
//! sections it skips, anywhere in the bytes; everything else
//! is kept as [`Segment::Literal`] slices of the original buffer (no copy, bytes
//! preserved exactly, whatever the encoding). A tag's attributes are read by
//! quick-xml's HTML-mode attribute iterator: values quoted with `"` or `'` (or
//! unquoted), entities such as `&amp;` unescaped, unknown entities and bare
//! `&` kept as written.
//!
//! # Malformed input
//!
//! The body is untrusted. [`parse`] never panics, never recurses on the
//! input's structure, and its work grows linearly with the body (each tag is
//! scanned once and at most 8 KiB far; the search for `</esi:remove>` and for
//! the end of a comment or CDATA section covers bytes that are then skipped;
//! open elements are bounded by [`Limits::max_nesting`]).
//! Diagnostics are capped at 256 per page, plus one entry counting the rest.
//! Whatever cannot be understood is dropped from the output and reported as a
//! [`Diagnostic`]; the page around it is kept:
//!
//! * a tag without its closing `>`: the tag's bytes are dropped (up to the
//!   first `>` or `<` after the tag's name, or the end of the body);
//! * a container (`esi:try`, `esi:choose`, `esi:vars`, `<!--esi`, …) that is
//!   never closed, an `esi:try` without `esi:attempt`, an unknown `<esi:foo>`,
//!   an `esi:attempt`/`esi:except` outside `esi:try`, an
//!   `esi:when`/`esi:otherwise` outside `esi:choose`: its tags are dropped and
//!   its content is kept in place, in source order (all branches of a broken
//!   `esi:try`/`esi:choose`);
//! * a closing tag that closes an outer container first closes the inner ones
//!   as above (unterminated); one that closes nothing is dropped;
//! * an `esi:remove` without `</esi:remove>`: everything from it to the end
//!   of the body is removed (as Varnish does);
//! * an `esi:include` without a usable `src`, with more than one `src`
//!   attribute (as Varnish), or beyond [`Limits::max_includes`]: dropped;
//! * text directly inside `esi:try` or `esi:choose` (outside a branch) is
//!   dropped; whitespace silently, anything else with a diagnostic;
//! * an `esi:when` whose `test` is missing or does not parse: the branch is
//!   kept with the test [`Expr::Bool`]`(false)`;
//! * `esi:try`/`esi:choose` nested more than [`Limits::max_nesting`] deep:
//!   treated like a broken container (tags dropped, content kept), so the
//!   segment tree is never deeper than that.
//!
//! Closing tags may carry junk before `>`; tag names are case-sensitive (ESI
//! is XML). A non-self-closed `<esi:include …>` or `<esi:comment …>` is taken
//! as an empty element; a `</esi:include>` / `</esi:comment>` right after it
//! (whitespace between allowed) is consumed.
//!
//! # HTML comments and CDATA
//!
//! As in Varnish, an ordinary HTML comment `<!-- … -->` (one that does not
//! start `<!--esi`) and a CDATA section `<![CDATA[ … ]]>` are opaque: kept
//! byte for byte, ESI markup and variables in them untouched. One that is
//! never closed runs to the end of the body. They are opaque inside
//! `<!--esi … -->` too (the comment's `-->` does not end the `<!--esi`
//! block; Varnish ends the block there and delivers the block's own `-->`),
//! and while looking for the `</esi:remove>` that ends an `esi:remove` (a
//! `</esi:remove>` inside them does not end it).
//!
//! Variables are substituted in text only inside `esi:vars` (at any depth
//! below it), and always in `esi:include`'s `src` and `alt`.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use quick_xml::events::attributes::Attributes;

pub use super::vars::VarPart;
use super::vars::{parse_expr, parse_vars, Expr};

/// The tree never gets deeper than this, whatever `max_nesting` says, so
/// that recursive consumers (and `Drop`) stay within a thread's stack.
const NESTING_CAP: usize = 256;
/// A tag longer than this (from its name to `>`) is malformed.
const MAX_TAG_LEN: usize = 8 * 1024;
/// Diagnostics kept per page; further ones are counted in a final entry.
const MAX_DIAGNOSTICS: usize = 256;

/// Bounds applied while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of `esi:try` / `esi:choose` (each with its branches
    /// counts one level); deeper ones are removed. Values above 256 act as 256.
    pub max_nesting: usize,
    /// Most `esi:include`s kept in one page; later ones are removed.
    pub max_includes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nesting: 32,
            max_includes: 1024,
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Bytes sent as they are: a slice of the original body (`Bytes::slice`).
    Literal(Bytes),
    /// Fetch and insert a fragment.
    Include(Include),
    /// Deliver `attempt`; if an include in it fails (without
    /// `onerror="continue"`), deliver `except` instead.
    Try {
        /// `esi:attempt`'s content.
        attempt: Vec<Segment>,
        /// `esi:except`'s content.
        except: Vec<Segment>,
    },
    /// The body of the first `when` whose test is true, else `otherwise`.
    Choose {
        /// Each `esi:when`: its test and its content, in document order.
        whens: Vec<(Expr, Vec<Segment>)>,
        /// `esi:otherwise`'s content (empty when absent).
        otherwise: Vec<Segment>,
    },
    /// Text inside `esi:vars` that contains variables.
    Vars(Vec<VarPart>),
}

/// An `<esi:include>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The URL to fetch (never empty).
    pub src: Vec<VarPart>,
    /// Fetched when `src` fails (`None` when absent or empty).
    pub alt: Option<Vec<VarPart>>,
    /// `onerror="continue"`: on failure insert nothing instead of failing.
    pub continue_on_error: bool,
}

/// A parsed page.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The page, in order.
    pub segments: Vec<Segment>,
    /// Number of [`Include`]s in the tree (all branches counted).
    pub includes: usize,
    /// What was malformed and dropped.
    pub diagnostics: Vec<Diagnostic>,
}

/// A problem found while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte offset in the body where the offending construct starts.
    pub offset: usize,
    /// What was wrong and what was done about it.
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.reason)
    }
}

impl Template {
    /// True when delivery needs no assembly: the template is at most one
    /// [`Segment::Literal`] (which, when the page had no ESI markup at all,
    /// is the whole body). An empty body is static.
    pub fn is_static(&self) -> bool {
        matches!(self.segments.as_slice(), [] | [Segment::Literal(_)])
    }
}

/// Parses `body` into a template. Never fails: see the module docs for how
/// malformed ESI is handled.
pub fn parse(body: &Bytes, limits: &Limits) -> Template {
    let mut p = Parser::new(body, limits);
    p.run();
    p.finish()
}

// ---------------------------------------------------------------------------
// Parser state

/// A branch of a try or choose, once closed.
enum Branch {
    Attempt,
    Except,
    When(Expr),
    Otherwise,
}

enum Item {
    Seg(Segment),
    Branch(Branch, Vec<Segment>),
}

enum Kind {
    Try,
    Attempt,
    Except,
    Choose,
    When(Expr),
    Otherwise,
    Vars,
    /// `<!--esi … -->`.
    Comment,
    /// A container whose tags are dropped and content kept: an unknown or
    /// misplaced element, or one nested too deep. `container` is true when
    /// it stands for a try/choose, whose branches are then dropped quietly.
    Flatten {
        container: bool,
    },
}

/// What a branch element finds itself in.
enum Parent {
    Try,
    Choose,
    /// A try/choose nested too deep: its branches are flattened quietly.
    Flattened,
    Other,
}

struct Frame {
    kind: Kind,
    /// The element name its closing tag must carry (`None` for `<!--esi`).
    name: Option<Bytes>,
    /// Where the opening tag starts.
    offset: usize,
    items: Vec<Item>,
    /// Some item is an [`Item::Branch`].
    has_branch: bool,
}

impl Frame {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("<esi:{}>", String::from_utf8_lossy(n)),
            None => "<!--esi".to_owned(),
        }
    }
}

struct Parser<'a> {
    body: &'a Bytes,
    src: &'a [u8],
    limits: &'a Limits,
    max_nesting: usize,
    max_frames: usize,
    root: Vec<Item>,
    stack: Vec<Frame>,
    /// Real (not flattened) try/choose frames on the stack.
    nesting: usize,
    /// Vars frames on the stack.
    vars_depth: usize,
    /// A `<!--esi` frame is on the stack.
    in_comment: bool,
    /// How many frames on the stack carry each element name, so that a
    /// closing tag that matches nothing is known without a stack walk.
    open_names: HashMap<Bytes, usize>,
    includes: usize,
    diagnostics: Vec<Diagnostic>,
    suppressed: usize,
}

/// How a tag ended.
struct TagEnd {
    /// Position just after the tag.
    end: usize,
    /// Whether a `>` closed it properly.
    closed: bool,
    /// Ended in `/>`.
    self_closing: bool,
    /// End of the attribute bytes (before `/>` or `>`).
    attrs_end: usize,
}

impl<'a> Parser<'a> {
    fn new(body: &'a Bytes, limits: &'a Limits) -> Self {
        let max_nesting = limits.max_nesting.min(NESTING_CAP);
        Parser {
            body,
            src: body.as_ref(),
            limits,
            max_nesting,
            // try+attempt per level, plus room for vars, comments and
            // unknown elements; beyond this, opening tags are dropped.
            max_frames: max_nesting * 4 + 64,
            root: Vec::new(),
            stack: Vec::new(),
            nesting: 0,
            vars_depth: 0,
            in_comment: false,
            open_names: HashMap::new(),
            includes: 0,
            diagnostics: Vec::new(),
            suppressed: 0,
        }
    }

    fn diag(&mut self, offset: usize, reason: String) {
        if self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.diagnostics.push(Diagnostic { offset, reason });
        } else {
            self.suppressed += 1;
        }
    }

    fn name_at(&self, from: usize) -> (Bytes, usize) {
        let len = self.src[from..]
            .iter()
            .take_while(|b| !is_name_end(**b))
            .count();
        (self.body.slice(from..from + len), from + len)
    }

    fn run(&mut self) {
        let src = self.src;
        let len = src.len();
        let mut pos = 0;
        let mut text_start = 0;
        while pos < len {
            let found = if self.in_comment {
                find_either(src, pos, b'<', b'-')
            } else {
                find_either(src, pos, b'<', b'<')
            };
            let Some(i) = found else { break };
            let rest = &src[i..];
            let next = if rest.starts_with(b"-->") {
                if self.in_comment {
                    self.text(text_start, i);
                    self.close_comment(i);
                    i + 3
                } else {
                    pos = i + 1;
                    continue;
                }
            } else if rest.starts_with(b"<esi:") {
                self.text(text_start, i);
                self.open_tag(i)
            } else if rest.starts_with(b"</esi:") {
                self.text(text_start, i);
                self.close_tag(i)
            } else if rest.starts_with(b"<!--esi") {
                self.text(text_start, i);
                self.open_comment(i)
            } else if let Some(end) = opaque_end(src, i) {
                // An HTML comment or CDATA section: kept as it is, ESI
                // markup in it untouched. Part of the surrounding text,
                // except inside esi:vars, where it must not be substituted.
                if self.vars_depth > 0 {
                    self.text(text_start, i);
                    self.literal(i, end);
                    text_start = end;
                }
                pos = end;
                continue;
            } else {
                pos = i + 1;
                continue;
            };
            // Every handler consumes at least one byte.
            pos = next.max(i + 1);
            text_start = pos;
        }
        self.text(text_start, len);
    }

    fn finish(mut self) -> Template {
        let len = self.src.len();
        while let Some(frame) = self.pop() {
            self.unterminated(frame, len);
        }
        if self.suppressed > 0 {
            self.diagnostics.push(Diagnostic {
                offset: len,
                reason: format!("{} further diagnostics suppressed", self.suppressed),
            });
        }
        let segments = flatten_items(std::mem::take(&mut self.root));
        let includes = count_includes(&segments);
        Template {
            segments,
            includes,
            diagnostics: self.diagnostics,
        }
    }

    // -- output ------------------------------------------------------------

    fn items(&mut self) -> &mut Vec<Item> {
        match self.stack.last_mut() {
            Some(f) => &mut f.items,
            None => &mut self.root,
        }
    }

    fn emit(&mut self, seg: Segment) {
        self.items().push(Item::Seg(seg));
    }

    fn literal(&mut self, start: usize, end: usize) {
        if start < end {
            let seg = Segment::Literal(self.body.slice(start..end));
            self.emit(seg);
        }
    }

    /// Emits the text `[start, end)`: as literal, or inside `esi:vars` with
    /// variables split out. Invalid UTF-8 always stays literal.
    fn text(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let bytes = &self.src[start..end];
        if self.vars_depth == 0 || !bytes.windows(2).any(|w| w == b"$(") {
            self.literal(start, end);
            return;
        }
        let mut lit_start = start;
        let mut off = start;
        for chunk in bytes.utf8_chunks() {
            let valid = chunk.valid();
            if valid.contains("$(") {
                let parts = parse_vars(valid);
                if parts.iter().any(|p| matches!(p, VarPart::Var(_))) {
                    self.literal(lit_start, off);
                    self.emit(Segment::Vars(parts));
                    lit_start = off + valid.len();
                }
            }
            off += valid.len() + chunk.invalid().len();
        }
        self.literal(lit_start, end);
    }

    // -- frames ------------------------------------------------------------

    fn push(&mut self, kind: Kind, name: Option<Bytes>, offset: usize) {
        match kind {
            Kind::Try | Kind::Choose => self.nesting += 1,
            Kind::Vars => self.vars_depth += 1,
            Kind::Comment => self.in_comment = true,
            _ => {}
        }
        if let Some(n) = &name {
            *self.open_names.entry(n.clone()).or_insert(0) += 1;
        }
        self.stack.push(Frame {
            kind,
            name,
            offset,
            items: Vec::new(),
            has_branch: false,
        });
    }

    fn pop(&mut self) -> Option<Frame> {
        let f = self.stack.pop()?;
        match f.kind {
            Kind::Try | Kind::Choose => self.nesting -= 1,
            Kind::Vars => self.vars_depth -= 1,
            Kind::Comment => self.in_comment = false,
            _ => {}
        }
        if let Some(n) = &f.name {
            if let Some(count) = self.open_names.get_mut(n) {
                *count -= 1;
                if *count == 0 {
                    self.open_names.remove(n);
                }
            }
        }
        Some(f)
    }

    /// Room for another frame? If not, the tag is dropped with a diagnostic.
    fn room(&mut self, offset: usize, label: &str) -> bool {
        if self.stack.len() < self.max_frames {
            return true;
        }
        self.diag(
            offset,
            format!("{label}: elements nested too deeply; tag removed"),
        );
        false
    }

    /// Drops a frame's tags and puts its content, in order, into the parent.
    fn splice(&mut self, mut frame: Frame) {
        if !frame.has_branch {
            let items = self.items();
            if items.is_empty() {
                *items = frame.items;
            } else {
                items.append(&mut frame.items);
            }
            return;
        }
        for item in frame.items {
            match item {
                Item::Seg(s) => self.emit(s),
                Item::Branch(_, segs) => {
                    for s in segs {
                        self.emit(s);
                    }
                }
            }
        }
    }

    fn unterminated(&mut self, frame: Frame, at: usize) {
        let reason = if at >= self.src.len() {
            format!("unterminated {}: tags removed, content kept", frame.label())
        } else {
            format!(
                "unterminated {} (closed by an outer element at byte {at}): tags removed, content kept",
                frame.label()
            )
        };
        self.diag(frame.offset, reason);
        self.splice(frame);
    }

    /// A frame closed by its own closing tag.
    fn close(&mut self, frame: Frame) {
        let branch = match frame.kind {
            Kind::Try => return self.finish_try(frame),
            Kind::Choose => return self.finish_choose(frame),
            Kind::Vars | Kind::Comment | Kind::Flatten { .. } => return self.splice(frame),
            Kind::Attempt => Branch::Attempt,
            Kind::Except => Branch::Except,
            Kind::When(e) => Branch::When(e),
            Kind::Otherwise => Branch::Otherwise,
        };
        let segs = flatten_items(frame.items);
        match self.stack.last_mut() {
            Some(parent) if matches!(parent.kind, Kind::Try | Kind::Choose) => {
                parent.has_branch = true;
                parent.items.push(Item::Branch(branch, segs));
            }
            _ => {
                // Not reachable (branches are only opened inside their
                // container), but never lose content.
                for s in segs {
                    self.emit(s);
                }
            }
        }
    }

    fn finish_try(&mut self, frame: Frame) {
        let has_attempt = frame
            .items
            .iter()
            .any(|i| matches!(i, Item::Branch(Branch::Attempt, _)));
        if !has_attempt {
            self.diag(
                frame.offset,
                "<esi:try> without <esi:attempt>: tags removed, content kept".to_owned(),
            );
            return self.splice(frame);
        }
        let (mut attempt, mut except) = (None, None);
        let (mut loose, mut duplicate) = (false, false);
        for item in frame.items {
            match item {
                Item::Branch(Branch::Attempt, s) if attempt.is_none() => attempt = Some(s),
                Item::Branch(Branch::Except, s) if except.is_none() => except = Some(s),
                Item::Branch(..) => duplicate = true,
                Item::Seg(s) => loose |= !is_blank(&s),
            }
        }
        self.loose_and_duplicates(frame.offset, "<esi:try>", loose, duplicate);
        self.emit(Segment::Try {
            attempt: attempt.unwrap_or_default(),
            except: except.unwrap_or_default(),
        });
    }

    fn finish_choose(&mut self, frame: Frame) {
        let mut whens = Vec::new();
        let mut otherwise = None;
        let (mut loose, mut duplicate) = (false, false);
        for item in frame.items {
            match item {
                Item::Branch(Branch::When(e), s) => whens.push((e, s)),
                Item::Branch(Branch::Otherwise, s) if otherwise.is_none() => otherwise = Some(s),
                Item::Branch(..) => duplicate = true,
                Item::Seg(s) => loose |= !is_blank(&s),
            }
        }
        self.loose_and_duplicates(frame.offset, "<esi:choose>", loose, duplicate);
        if whens.is_empty() {
            self.diag(frame.offset, "<esi:choose> without <esi:when>".to_owned());
            if otherwise.is_none() {
                return;
            }
        }
        self.emit(Segment::Choose {
            whens,
            otherwise: otherwise.unwrap_or_default(),
        });
    }

    fn loose_and_duplicates(&mut self, offset: usize, label: &str, loose: bool, dup: bool) {
        if loose {
            self.diag(offset, format!("content directly inside {label} removed"));
        }
        if dup {
            self.diag(offset, format!("repeated branch in {label} removed"));
        }
    }

    // -- tags --------------------------------------------------------------

    /// `<esi:NAME …>` at `i`; returns where scanning resumes.
    fn open_tag(&mut self, i: usize) -> usize {
        let (name, name_end) = self.name_at(i + 5);
        let tag = scan_tag(self.src, name_end);
        let label = format!("<esi:{}>", String::from_utf8_lossy(&name));
        if !tag.closed {
            self.diag(i, format!("unterminated {label} tag removed"));
            return tag.end;
        }
        let attrs = name_end..tag.attrs_end;
        let resume = match name.as_ref() {
            b"include" => return self.include(i, attrs, &tag),
            b"remove" => return self.remove(i, &tag),
            b"comment" => {
                return if tag.self_closing {
                    tag.end
                } else {
                    consume_close(self.src, tag.end, b"comment").unwrap_or(tag.end)
                };
            }
            b"try" | b"choose" => {
                if !self.room(i, &label) {
                    return tag.end;
                }
                let is_try = name.as_ref() == b"try";
                if self.nesting >= self.max_nesting {
                    self.diag(
                        i,
                        format!(
                            "{label} nested deeper than {}: tags removed, content kept",
                            self.max_nesting
                        ),
                    );
                    self.push(Kind::Flatten { container: true }, Some(name), i);
                } else {
                    let kind = if is_try { Kind::Try } else { Kind::Choose };
                    self.push(kind, Some(name), i);
                }
                tag.end
            }
            b"attempt" | b"except" | b"when" | b"otherwise" => {
                if !self.room(i, &label) {
                    return tag.end;
                }
                let in_try = matches!(name.as_ref(), b"attempt" | b"except");
                let parent = match self.stack.last().map(|f| &f.kind) {
                    Some(Kind::Try) => Parent::Try,
                    Some(Kind::Choose) => Parent::Choose,
                    Some(Kind::Flatten { container: true }) => Parent::Flattened,
                    _ => Parent::Other,
                };
                let kind = match parent {
                    Parent::Try if in_try => match name.as_ref() {
                        b"attempt" => Kind::Attempt,
                        _ => Kind::Except,
                    },
                    Parent::Choose if !in_try => match name.as_ref() {
                        b"when" => Kind::When(self.when_test(i, attrs)),
                        _ => Kind::Otherwise,
                    },
                    Parent::Flattened => Kind::Flatten { container: false },
                    _ => {
                        let outer = if in_try { "<esi:try>" } else { "<esi:choose>" };
                        self.diag(
                            i,
                            format!("{label} outside {outer}: tags removed, content kept"),
                        );
                        Kind::Flatten { container: false }
                    }
                };
                self.push(kind, Some(name), i);
                tag.end
            }
            b"vars" => {
                if !self.room(i, &label) {
                    return tag.end;
                }
                self.push(Kind::Vars, Some(name), i);
                tag.end
            }
            _ => {
                if tag.self_closing {
                    self.diag(i, format!("unsupported {label} removed"));
                    return tag.end;
                }
                if !self.room(i, &label) {
                    return tag.end;
                }
                self.diag(
                    i,
                    format!("unsupported {label}: tags removed, content kept"),
                );
                self.push(Kind::Flatten { container: false }, Some(name), i);
                tag.end
            }
        };
        if tag.self_closing {
            if let Some(frame) = self.pop() {
                self.close(frame);
            }
        }
        resume
    }

    /// `</esi:NAME>` at `i`.
    fn close_tag(&mut self, i: usize) -> usize {
        let (name, name_end) = self.name_at(i + 6);
        let tag = scan_tag(self.src, name_end);
        let label = format!("</esi:{}>", String::from_utf8_lossy(&name));
        if !tag.closed {
            self.diag(i, format!("unterminated {label} tag removed"));
            return tag.end;
        }
        let target = if self.open_names.contains_key(&name) {
            self.stack
                .iter()
                .rposition(|f| f.name.as_ref().is_some_and(|n| n == &name))
        } else {
            None
        };
        let Some(k) = target else {
            self.diag(i, format!("stray {label} removed"));
            return tag.end;
        };
        self.close_down_to(k, i);
        tag.end
    }

    /// Closes every frame above index `k` as unterminated, then `k` properly.
    fn close_down_to(&mut self, k: usize, at: usize) {
        while self.stack.len() > k + 1 {
            if let Some(f) = self.pop() {
                self.unterminated(f, at);
            }
        }
        if let Some(f) = self.pop() {
            self.close(f);
        }
    }

    fn open_comment(&mut self, i: usize) -> usize {
        if self.in_comment {
            self.diag(i, "<!--esi inside <!--esi removed".to_owned());
        } else if self.room(i, "<!--esi") {
            self.push(Kind::Comment, None, i);
        }
        i + 7
    }

    fn close_comment(&mut self, i: usize) {
        if let Some(k) = self
            .stack
            .iter()
            .rposition(|f| matches!(f.kind, Kind::Comment))
        {
            self.close_down_to(k, i);
        }
    }

    fn include(&mut self, i: usize, attrs: std::ops::Range<usize>, tag: &TagEnd) -> usize {
        let resume = if tag.self_closing {
            tag.end
        } else {
            consume_close(self.src, tag.end, b"include").unwrap_or(tag.end)
        };
        let (mut src, mut alt, mut onerror) = (None, None, None);
        let mut srcs = 0;
        for (key, value) in self.attributes(i, attrs) {
            let slot = match key.to_ascii_lowercase().as_str() {
                "src" => {
                    srcs += 1;
                    &mut src
                }
                "alt" => &mut alt,
                "onerror" => &mut onerror,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        if srcs > 1 {
            // As Varnish: which one was meant is unknown, so neither.
            self.diag(i, "<esi:include> with more than one src removed".to_owned());
            return resume;
        }
        let src = match src {
            Some(s) if !s.trim().is_empty() => s,
            _ => {
                self.diag(i, "<esi:include> without src removed".to_owned());
                return resume;
            }
        };
        if self.includes >= self.limits.max_includes {
            self.diag(
                i,
                format!(
                    "more than {} includes: <esi:include> removed",
                    self.limits.max_includes
                ),
            );
            return resume;
        }
        self.includes += 1;
        let alt = alt.filter(|a| !a.trim().is_empty());
        self.emit(Segment::Include(Include {
            src: parse_vars(src.trim()),
            alt: alt.map(|a| parse_vars(a.trim())),
            continue_on_error: onerror.is_some_and(|o| o.trim().eq_ignore_ascii_case("continue")),
        }));
        resume
    }

    fn remove(&mut self, i: usize, tag: &TagEnd) -> usize {
        if tag.self_closing {
            return tag.end;
        }
        match find_remove_close(self.src, tag.end) {
            Some(end) => end,
            None => {
                self.diag(
                    i,
                    "unterminated <esi:remove>: the rest of the page removed".to_owned(),
                );
                self.src.len()
            }
        }
    }

    fn when_test(&mut self, i: usize, attrs: std::ops::Range<usize>) -> Expr {
        let test = self
            .attributes(i, attrs)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("test"))
            .map(|(_, v)| v);
        match test.as_deref().map(parse_expr) {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                self.diag(
                    i,
                    format!("invalid test in <esi:when> ({e}): branch is false"),
                );
                Expr::Bool(false)
            }
            None => {
                self.diag(i, "<esi:when> without test: branch is false".to_owned());
                Expr::Bool(false)
            }
        }
    }

    /// The attributes in `src[range]`: (name, unescaped value), in order.
    fn attributes(&mut self, i: usize, range: std::ops::Range<usize>) -> Vec<(String, String)> {
        let src = self.src;
        let text = String::from_utf8_lossy(&src[range]);
        let mut out = Vec::new();
        let mut attrs = Attributes::html(&text, 0);
        attrs.with_checks(false);
        let mut error = None;
        for attr in attrs.take(text.len() + 1) {
            match attr {
                Ok(a) => {
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let value = match a.unescape_value() {
                        Ok(v) => v.into_owned(),
                        Err(_) => lenient_unescape(&String::from_utf8_lossy(&a.value)),
                    };
                    out.push((key, value));
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            self.diag(i, format!("malformed attributes ({e}); the rest ignored"));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'/' | b'>' | b'<')
}

/// Finds where a tag that continues at `from` (after its name) ends: the
/// first `>` outside quotes. A `<` outside quotes, a tag longer than
/// `MAX_TAG_LEN`, or the end of input means it is unterminated; it then ends
/// at the first `>` (inclusive) or `<` (exclusive) regardless of quotes.
fn scan_tag(src: &[u8], from: usize) -> TagEnd {
    let limit = src.len().min(from.saturating_add(MAX_TAG_LEN));
    let mut quote = None;
    for (j, &c) in src.iter().enumerate().take(limit).skip(from) {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'"' | b'\'' => quote = Some(c),
                b'>' => {
                    let self_closing = j > from && src[j - 1] == b'/';
                    return TagEnd {
                        end: j + 1,
                        closed: true,
                        self_closing,
                        attrs_end: if self_closing { j - 1 } else { j },
                    };
                }
                b'<' => return broken(j),
                _ => {}
            },
        }
    }
    match src[from..].iter().position(|&c| c == b'>' || c == b'<') {
        Some(k) if src[from + k] == b'>' => broken(from + k + 1),
        Some(k) => broken(from + k),
        None => broken(src.len()),
    }
}

fn broken(end: usize) -> TagEnd {
    TagEnd {
        end,
        closed: false,
        self_closing: false,
        attrs_end: end,
    }
}

/// The end of the first `</esi:remove>` at or after `from`, skipping HTML
/// comments and CDATA sections (a closing tag inside them does not count)
/// and ESI tags (a `<!--` in a quoted attribute value starts no comment).
/// `None` when there is none, or when a comment or CDATA section in the way
/// is never closed. Each byte is looked at about once.
fn find_remove_close(src: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    loop {
        let k = find_either(src, pos, b'<', b'<')?;
        if let Some(end) = consume_close(src, k, b"remove") {
            return Some(end);
        }
        let rest = &src[k..];
        pos = if rest.starts_with(b"<esi:") {
            scan_tag(src, k + 5).end.max(k + 1)
        } else if let Some((open, close)) = opaque_kind(rest) {
            find_after(src, k + open, close)?
        } else {
            k + 1
        };
    }
}

/// If `rest` starts with an HTML comment (`<!--` not followed by `esi`) or
/// a CDATA section (`<![CDATA[`): the length of its opening and its closing
/// delimiter.
fn opaque_kind(rest: &[u8]) -> Option<(usize, &'static [u8])> {
    if rest.starts_with(b"<!--") && !rest.starts_with(b"<!--esi") {
        Some((4, b"-->"))
    } else if rest.starts_with(b"<![CDATA[") {
        Some((9, b"]]>"))
    } else {
        None
    }
}

/// If an HTML comment or CDATA section starts at `at`: where it ends, just
/// after its closing delimiter, or the end of `src` when it is never closed
/// (as in Varnish, it then runs to the end of the body).
fn opaque_end(src: &[u8], at: usize) -> Option<usize> {
    let (open, close) = opaque_kind(src.get(at..)?)?;
    Some(find_after(src, at + open, close).unwrap_or(src.len()))
}

/// The position just after the first `needle` (non-empty) at or after
/// `from`.
fn find_after(src: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut pos = from;
    loop {
        let k = find_either(src, pos, first, first)?;
        if src[k..].starts_with(needle) {
            return Some(k + needle.len());
        }
        pos = k + 1;
    }
}

/// If `src[from..]` is optional whitespace then `</esi:NAME` + optional
/// whitespace + `>`, returns the position after the `>`.
fn consume_close(src: &[u8], from: usize, name: &[u8]) -> Option<usize> {
    let mut p = from
        + src
            .get(from..)?
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    let rest = src.get(p..)?;
    let after = rest.strip_prefix(b"</esi:")?.strip_prefix(name)?;
    p += 6 + name.len();
    let ws = after.iter().take_while(|b| b.is_ascii_whitespace()).count();
    (after.get(ws) == Some(&b'>')).then_some(p + ws + 1)
}

/// Position of the first `a` or `b` at or after `from`, eight bytes at a time.
fn find_either(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has = |w: u64, c: u8| {
        let x = w ^ (LO * u64::from(c));
        x.wrapping_sub(LO) & !x & HI != 0
    };
    let mut i = from;
    while let Some(chunk) = hay.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        if has(w, a) || has(w, b) {
            break;
        }
        i += 8;
    }
    hay.get(i..)?
        .iter()
        .position(|&c| c == a || c == b)
        .map(|k| i + k)
}

fn is_blank(seg: &Segment) -> bool {
    matches!(seg, Segment::Literal(b) if b.iter().all(u8::is_ascii_whitespace))
}

fn flatten_items(items: Vec<Item>) -> Vec<Segment> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Seg(s) => out.push(s),
            Item::Branch(_, segs) => out.extend(segs),
        }
    }
    out
}

fn count_includes(segments: &[Segment]) -> usize {
    let mut n = 0;
    let mut todo: Vec<&[Segment]> = vec![segments];
    while let Some(list) = todo.pop() {
        for seg in list {
            match seg {
                Segment::Include(_) => n += 1,
                Segment::Try { attempt, except } => {
                    todo.push(attempt);
                    todo.push(except);
                }
                Segment::Choose { whens, otherwise } => {
                    todo.extend(whens.iter().map(|(_, s)| s.as_slice()));
                    todo.push(otherwise);
                }
                Segment::Literal(_) | Segment::Vars(_) => {}
            }
        }
    }
    n
}

/// Unescapes what can be unescaped (`&amp;`, `&lt;`, `&gt;`, `&quot;`,
/// `&apos;`, `&#N;`, `&#xH;`) and keeps everything else as written, for
/// values quick-xml refuses (a bare `&` in a URL, an HTML-only entity).
fn lenient_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest.get(1..).and_then(|r| {
            let e = r.bytes().take(11).position(|b| b == b';')?;
            r.get(..e)
        });
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let num = e.strip_prefix('#')?;
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => num.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esi::vars::{CmpOp, Operand, Variable};

    fn p(s: &str) -> Template {
        parse(&Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
    }

    fn lit(s: &str) -> Segment {
        Segment::Literal(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn text(s: &str) -> VarPart {
        VarPart::Text(s.to_owned())
    }

    fn inc(src: &str) -> Segment {
        Segment::Include(Include {
            src: vec![text(src)],
            alt: None,
            continue_on_error: false,
        })
    }

    /// Literal segments, depth first.
    fn literals(segs: &[Segment], out: &mut Vec<Bytes>) {
        for s in segs {
            match s {
                Segment::Literal(b) => out.push(b.clone()),
                Segment::Try { attempt, except } => {
                    literals(attempt, out);
                    literals(except, out);
                }
                Segment::Choose { whens, otherwise } => {
                    for (_, w) in whens {
                        literals(w, out);
                    }
                    literals(otherwise, out);
                }
                Segment::Include(_) | Segment::Vars(_) => {}
            }
        }
    }

    fn depth(segs: &[Segment]) -> usize {
        segs.iter()
            .map(|s| match s {
                Segment::Try { attempt, except } => 1 + depth(attempt).max(depth(except)),
                Segment::Choose { whens, otherwise } => {
                    1 + whens
                        .iter()
                        .map(|(_, w)| depth(w))
                        .max()
                        .unwrap_or(0)
                        .max(depth(otherwise))
                }
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Every literal is a slice of `body` (zero copy), and no two overlap:
    /// together they are a subsequence of the body.
    fn check_literals(body: &Bytes, t: &Template) {
        let mut lits = Vec::new();
        literals(&t.segments, &mut lits);
        let base = body.as_ptr() as usize;
        let mut ranges: Vec<(usize, usize)> = lits
            .iter()
            .map(|l| {
                let start = (l.as_ptr() as usize).wrapping_sub(base);
                assert!(!l.is_empty(), "empty literal");
                assert!(start + l.len() <= body.len(), "literal outside the body");
                assert_eq!(&body[start..start + l.len()], l.as_ref());
                (start, start + l.len())
            })
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping literals {:?}", w);
        }
    }

    fn reasons(t: &Template) -> String {
        t.diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn plain_page_is_one_zero_copy_literal() {
        let body = Bytes::from_static(
            b"<html><body><p>Hello &amp; <b>world</b></p><!-- x --></body></html>",
        );
        let t = parse(&body, &Limits::default());
        assert!(t.is_static());
        assert_eq!(t.includes, 0);
        assert!(t.diagnostics.is_empty());
        let [Segment::Literal(l)] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(l.as_ptr(), body.as_ptr());
        assert_eq!(l.len(), body.len());
        check_literals(&body, &t);
    }

    #[test]
    fn empty_body_is_static() {
        let t = p("");
        assert!(t.is_static());
        assert!(t.segments.is_empty());
    }

    #[test]
    fn near_misses_are_literal() {
        for s in [
            "<es",
            "<esi",
            "<esi-include src=x/>",
            "<ESI:include src=x/>",
            "a < b",
            "<!-- esi x -->",
            "<!--es",
            "--> stray",
            "x-->",
            "$(HTTP_HOST)",
            "</esi",
            "<",
            "<<<<",
        ] {
            let t = p(s);
            assert!(t.is_static(), "{s:?}: {:?}", t.segments);
            assert_eq!(t.segments, vec![lit(s)], "{s:?}");
            assert!(t.diagnostics.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn include_self_closed() {
        let t = p(r#"a<esi:include src="/frag"/>b"#);
        assert_eq!(t.segments, vec![lit("a"), inc("/frag"), lit("b")]);
        assert_eq!(t.includes, 1);
        assert!(t.diagnostics.is_empty());
        assert!(!t.is_static());
    }

    #[test]
    fn include_not_self_closed() {
        let t = p(r#"a<esi:include src="/frag"></esi:include>b"#);
        assert_eq!(t.segments, vec![lit("a"), inc("/frag"), lit("b")]);
        let t = p("a<esi:include src=\"/frag\">\n  </esi:include >b");
        assert_eq!(t.segments, vec![lit("a"), inc("/frag"), lit("b")]);
        assert!(t.diagnostics.is_empty());
        // Without a close, it is an empty element and what follows is page.
        let t = p(r#"a<esi:include src="/frag">b"#);
        assert_eq!(t.segments, vec![lit("a"), inc("/frag"), lit("b")]);
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn include_all_attributes() {
        let t = p(r#"<esi:include src="/a" alt='/b' onerror="continue" />"#);
        assert_eq!(
            t.segments,
            vec![Segment::Include(Include {
                src: vec![text("/a")],
                alt: Some(vec![text("/b")]),
                continue_on_error: true,
            })]
        );
        let t = p(r#"<esi:include src="/a" onerror="abort" alt=""/>"#);
        assert_eq!(t.segments, vec![inc("/a")]);
    }

    #[test]
    fn attribute_quotes_and_entities() {
        let t = p(r#"<esi:include src='/q?a=1&amp;b="2"&#x41;&#66;'/>"#);
        assert_eq!(t.segments, vec![inc(r#"/q?a=1&b="2"AB"#)]);
        let t = p(r#"<esi:include src="/q?a=1&b=2&nbsp;&lt;"/>"#);
        assert_eq!(t.segments, vec![inc("/q?a=1&b=2&nbsp;<")]);
        let t = p(r#"<esi:include   SRC = "/sp"  />"#);
        assert_eq!(t.segments, vec![inc("/sp")]);
        let t = p("<esi:include src=/unquoted />");
        assert_eq!(t.segments, vec![inc("/unquoted")]);
        let t = p("<esi:include src=/unquoted/>");
        assert_eq!(t.segments, vec![inc("/unquoted")]);
        let t = p(r#"<esi:include src="/a>b" alt='<x>'/>"#);
        let [Segment::Include(i)] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(i.src, vec![text("/a>b")]);
        assert_eq!(i.alt, Some(vec![text("<x>")]));
        // The first of repeated attributes wins (but two src: see
        // include_with_two_src_is_dropped).
        let t = p(r#"<esi:include src="/1" alt="/a" alt="/b"/>"#);
        let [Segment::Include(i)] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(i.alt, Some(vec![text("/a")]));
    }

    #[test]
    fn variables_in_src_and_alt() {
        let t = p(
            r#"<esi:include src="http://$(HTTP_HOST)/u/$(HTTP_COOKIE{id})?q=$(QUERY_STRING{q})" alt="/alt/$(HTTP_REFERER)"/>"#,
        );
        let [Segment::Include(i)] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(
            i.src,
            vec![
                text("http://"),
                VarPart::Var(Variable::HttpHost),
                text("/u/"),
                VarPart::Var(Variable::HttpCookie(Some("id".into()))),
                text("?q="),
                VarPart::Var(Variable::QueryString(Some("q".into()))),
            ]
        );
        assert_eq!(
            i.alt,
            Some(vec![text("/alt/"), VarPart::Var(Variable::HttpReferer)])
        );
    }

    #[test]
    fn include_without_src() {
        for s in [
            "a<esi:include/>b",
            "a<esi:include alt=\"/x\"/>b",
            "a<esi:include src=\"\"/>b",
            "a<esi:include src=\"  \"/>b",
        ] {
            let t = p(s);
            assert_eq!(t.segments, vec![lit("a"), lit("b")], "{s}");
            assert_eq!(t.includes, 0);
            assert_eq!(t.diagnostics.len(), 1, "{s}");
            assert_eq!(t.diagnostics[0].offset, 1);
            assert!(
                t.diagnostics[0].reason.contains("without src"),
                "{}",
                reasons(&t)
            );
        }
    }

    #[test]
    fn max_includes() {
        let body = "<esi:include src=\"/x\"/>".repeat(5);
        let t = parse(
            &Bytes::from(body),
            &Limits {
                max_nesting: 32,
                max_includes: 3,
            },
        );
        assert_eq!(t.includes, 3);
        assert_eq!(t.segments.len(), 3);
        assert_eq!(t.diagnostics.len(), 2);
        assert_eq!(t.diagnostics[0].offset, 3 * 23);
    }

    #[test]
    fn remove_drops_content() {
        let t = p("a<esi:remove><a href=\"/x\">no ESI</a><esi:include src=\"/y\"/></esi:remove>b");
        assert_eq!(t.segments, vec![lit("a"), lit("b")]);
        assert_eq!(t.includes, 0);
        assert!(t.diagnostics.is_empty());
        let t = p("a<esi:remove/>b<esi:remove></esi:remove >c");
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("c")]);
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn unterminated_remove_removes_the_rest() {
        let t = p("a<esi:remove>b<esi:include src=\"/x\"/>c");
        assert_eq!(t.segments, vec![lit("a")]);
        assert_eq!(t.includes, 0);
        assert_eq!(t.diagnostics.len(), 1);
        assert_eq!(t.diagnostics[0].offset, 1);
        assert!(t.diagnostics[0]
            .reason
            .contains("unterminated <esi:remove>"));
        // Inside an element: the element is unterminated too.
        let t = p("<esi:vars>a<esi:remove>b");
        assert_eq!(t.segments, vec![lit("a")]);
        assert_eq!(t.diagnostics.len(), 2);
    }

    #[test]
    fn many_removes_are_linear() {
        let body = Bytes::from("<esi:remove>x".repeat(50_000));
        let t = parse(&body, &Limits::default());
        check_literals(&body, &t);
        assert!(t.segments.is_empty());
        assert_eq!(t.diagnostics.len(), 1);
        let body = Bytes::from("<esi:remove><!--</esi:remove>".repeat(50_000));
        let t = parse(&body, &Limits::default());
        assert!(t.segments.is_empty());
        let body = Bytes::from("<esi:remove>x</esi:remove>y".repeat(50_000));
        let t = parse(&body, &Limits::default());
        assert_eq!(t.segments.len(), 50_000);
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn html_comments_and_cdata_are_opaque() {
        let t = p("a<!-- <esi:include src=\"/x\"/> -->b<esi:include src=\"/y\"/>");
        assert_eq!(
            t.segments,
            vec![lit("a<!-- <esi:include src=\"/x\"/> -->b"), inc("/y")]
        );
        assert!(t.diagnostics.is_empty());
        let t = p("a<![CDATA[<esi:remove>x</esi:remove>]]>b");
        assert_eq!(
            t.segments,
            vec![lit("a<![CDATA[<esi:remove>x</esi:remove>]]>b")]
        );
        assert!(t.is_static());
        // Never closed: to the end of the body.
        let t = p("a<!-- <esi:include src=\"/x\"/>");
        assert_eq!(t.segments, vec![lit("a<!-- <esi:include src=\"/x\"/>")]);
        assert!(t.diagnostics.is_empty());
        let t = p("a<![CDATA[ <esi:include src=\"/x\"/> ]>");
        assert_eq!(t.includes, 0);
        // Variables in a comment inside esi:vars stay as written.
        let t = p("<esi:vars><!-- $(HTTP_HOST) --></esi:vars>");
        assert_eq!(t.segments, vec![lit("<!-- $(HTTP_HOST) -->")]);
        // `<!---->` is a comment; `<!--esi` is not.
        let t = p("<!---->x<!--esi y-->");
        assert_eq!(t.segments, vec![lit("<!---->x"), lit(" y")]);
        // Inside esi:vars, kept apart from the substituted text.
        let t = p("<esi:vars>$(HTTP_HOST)<!-- $(HTTP_HOST) --></esi:vars>");
        assert_eq!(
            t.segments,
            vec![
                Segment::Vars(vec![VarPart::Var(Variable::HttpHost)]),
                lit("<!-- $(HTTP_HOST) -->")
            ]
        );
    }

    #[test]
    fn remove_ignores_its_close_inside_comments_and_cdata() {
        let t = p("a<esi:remove>b<![CDATA[</esi:remove>]]>c</esi:remove>d");
        assert_eq!(t.segments, vec![lit("a"), lit("d")]);
        assert!(t.diagnostics.is_empty());
        let t = p("a<esi:remove>b<!-- </esi:remove> -->c</esi:remove>d");
        assert_eq!(t.segments, vec![lit("a"), lit("d")]);
        // A comment in the remove that is never closed: all removed.
        let t = p("a<esi:remove>b<!-- </esi:remove>c");
        assert_eq!(t.segments, vec![lit("a")]);
        assert_eq!(t.diagnostics.len(), 1);
        // An <!--esi block is not opaque.
        let t = p("a<esi:remove><!--esi </esi:remove>b");
        assert_eq!(t.segments, vec![lit("a"), lit("b")]);
        // A `<!--` in an attribute value of a removed tag is no comment.
        let t = p("a<esi:remove><esi:include src=\"<!--\"/></esi:remove>b");
        assert_eq!(t.segments, vec![lit("a"), lit("b")]);
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn include_with_two_src_is_dropped() {
        let t = p("a<esi:include src=\"/x\" src=\"/y\"/>b<esi:include SRC=\"/x\" src=\"/x\"/>c");
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("c")]);
        assert_eq!(t.includes, 0);
        assert_eq!(t.diagnostics.len(), 2);
        assert!(t.diagnostics[0].reason.contains("more than one src"));
    }

    #[test]
    fn comment_dropped() {
        let t = p(r#"a<esi:comment text="note"/>b<esi:comment text='x'></esi:comment>c"#);
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("c")]);
        assert!(t.diagnostics.is_empty());
        assert!(!t.is_static());
    }

    #[test]
    fn esi_comment_wrapper() {
        let t = p("a<!--esi <p>x</p><esi:include src=\"/f\"/> -->b");
        assert_eq!(
            t.segments,
            vec![lit("a"), lit(" <p>x</p>"), inc("/f"), lit(" "), lit("b")]
        );
        assert!(t.diagnostics.is_empty());
        let t = p("a<!--esi-->b<!--esi\n-->c");
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("\n"), lit("c")]);
        // A plain comment inside the wrapper is kept whole; its `-->` does
        // not end the wrapper.
        let t = p("<!--esi x <!-- y --> z -->");
        assert_eq!(t.segments, vec![lit(" x <!-- y --> z ")]);
    }

    #[test]
    fn esi_comment_unterminated_and_nested() {
        let t = p("a<!--esi b<esi:include src=\"/f\"/>c");
        assert_eq!(t.segments, vec![lit("a"), lit(" b"), inc("/f"), lit("c")]);
        assert_eq!(t.diagnostics.len(), 1);
        assert_eq!(t.diagnostics[0].offset, 1);
        assert!(t.diagnostics[0].reason.contains("unterminated <!--esi"));
        let t = p("<!--esi a<!--esi b-->c-->");
        assert_eq!(t.segments, vec![lit(" a"), lit(" b"), lit("c-->")]);
        assert_eq!(t.diagnostics.len(), 1);
        assert_eq!(t.diagnostics[0].offset, 9);
    }

    #[test]
    fn try_attempt_except() {
        let t = p("<esi:try>\n <esi:attempt>A<esi:include src=\"/a\"/></esi:attempt>\n <esi:except>E</esi:except>\n</esi:try>");
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![lit("A"), inc("/a")],
                except: vec![lit("E")]
            }]
        );
        assert_eq!(t.includes, 1);
        assert!(t.diagnostics.is_empty(), "{}", reasons(&t));
    }

    #[test]
    fn try_without_except_and_self_closed_branches() {
        let t = p("<esi:try><esi:attempt>A</esi:attempt></esi:try>");
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![lit("A")],
                except: vec![]
            }]
        );
        assert!(t.diagnostics.is_empty());
        let t = p("<esi:try><esi:attempt/><esi:except>E</esi:except></esi:try>");
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![],
                except: vec![lit("E")]
            }]
        );
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn try_problems() {
        // No attempt: tags removed, content kept.
        let t = p("<esi:try><esi:except>E</esi:except></esi:try>");
        assert_eq!(t.segments, vec![lit("E")]);
        assert_eq!(t.diagnostics.len(), 1);
        // Loose text and a repeated attempt are dropped.
        let t = p("<esi:try>x<esi:attempt>A</esi:attempt><esi:attempt>B</esi:attempt></esi:try>");
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![lit("A")],
                except: vec![]
            }]
        );
        assert_eq!(t.diagnostics.len(), 2, "{}", reasons(&t));
        // An attempt left open when the try closes.
        let t = p("<esi:try><esi:attempt>A</esi:try>z");
        assert_eq!(t.segments, vec![lit("A"), lit("z")]);
        assert_eq!(t.diagnostics.len(), 2, "{}", reasons(&t));
        assert_eq!(t.diagnostics[0].offset, 9);
        // A try never closed.
        let t = p("a<esi:try><esi:attempt>A</esi:attempt><esi:except>E</esi:except>rest");
        assert_eq!(t.segments, vec![lit("a"), lit("A"), lit("E"), lit("rest")]);
        assert_eq!(t.diagnostics.len(), 1);
        assert_eq!(t.diagnostics[0].offset, 1);
    }

    #[test]
    fn stray_closing_tags() {
        let t = p("a</esi:try>b</esi:attempt >c</esi:include>d");
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("c"), lit("d")]);
        assert_eq!(t.diagnostics.len(), 3);
        assert_eq!(t.diagnostics[0].offset, 1);
        assert!(t.diagnostics[0].reason.contains("stray </esi:try>"));
    }

    #[test]
    fn attempt_outside_try() {
        let t = p("a<esi:attempt>A</esi:attempt>b<esi:except>E</esi:except><esi:when test=\"1==1\">W</esi:when>");
        assert_eq!(
            t.segments,
            vec![lit("a"), lit("A"), lit("b"), lit("E"), lit("W")]
        );
        assert_eq!(t.diagnostics.len(), 3);
        assert!(t.diagnostics[0].reason.contains("outside <esi:try>"));
        assert!(t.diagnostics[2].reason.contains("outside <esi:choose>"));
        // A when directly in a try is misplaced too.
        let t = p(
            "<esi:try><esi:when test=\"1==1\">W</esi:when><esi:attempt>A</esi:attempt></esi:try>",
        );
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![lit("A")],
                except: vec![]
            }]
        );
        assert_eq!(t.diagnostics.len(), 2, "{}", reasons(&t));
    }

    #[test]
    fn unknown_element() {
        let t = p("a<esi:foo x=\"1\">b<esi:include src=\"/i\"/></esi:foo>c<esi:bar/>d<esi:inline name=\"x\">e");
        assert_eq!(
            t.segments,
            vec![lit("a"), lit("b"), inc("/i"), lit("c"), lit("d"), lit("e")]
        );
        assert_eq!(t.diagnostics.len(), 4, "{}", reasons(&t));
        assert!(t.diagnostics[0].reason.contains("unsupported <esi:foo>"));
        assert_eq!(t.diagnostics[1].offset, 51);
        let t = p("<esi:>x</esi:>");
        assert_eq!(t.segments, vec![lit("x")]);
    }

    #[test]
    fn choose_when_otherwise() {
        let t = p(concat!(
            "<esi:choose>\n",
            "  <esi:when test=\"$(HTTP_COOKIE{group})=='admin'\">A</esi:when>\n",
            "  <esi:when test=\"$(QUERY_STRING{n}) > 5 &amp; !($(HTTP_HOST)=='x')\">B</esi:when>\n",
            "  <esi:otherwise>O</esi:otherwise>\n",
            "</esi:choose>"
        ));
        assert!(t.diagnostics.is_empty(), "{}", reasons(&t));
        let [Segment::Choose { whens, otherwise }] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(otherwise, &vec![lit("O")]);
        assert_eq!(whens.len(), 2);
        assert_eq!(
            whens[0].0,
            Expr::Cmp(
                Operand::Var(Variable::HttpCookie(Some("group".into()))),
                CmpOp::Eq,
                Operand::Str("admin".into())
            )
        );
        assert_eq!(whens[0].1, vec![lit("A")]);
        assert!(matches!(&whens[1].0, Expr::And(v) if v.len() == 2));
        assert_eq!(whens[1].1, vec![lit("B")]);
    }

    #[test]
    fn when_test_with_raw_operators() {
        // Unescaped `<`, `>` and `&` inside the quoted test are fine.
        let t = p("<esi:choose><esi:when test=\"1 < 2 & 3 > 2\">Y</esi:when></esi:choose>");
        assert!(t.diagnostics.is_empty(), "{}", reasons(&t));
        let [Segment::Choose { whens, .. }] = t.segments.as_slice() else {
            panic!()
        };
        assert!(matches!(&whens[0].0, Expr::And(v) if v.len() == 2));
    }

    #[test]
    fn invalid_or_missing_test_is_false() {
        let t = p("<esi:choose><esi:when test=\"$(HTTP_HOST) = 'x'\">A</esi:when><esi:when>B</esi:when><esi:otherwise>O</esi:otherwise></esi:choose>");
        let [Segment::Choose { whens, otherwise }] = t.segments.as_slice() else {
            panic!()
        };
        assert_eq!(
            whens,
            &vec![
                (Expr::Bool(false), vec![lit("A")]),
                (Expr::Bool(false), vec![lit("B")])
            ]
        );
        assert_eq!(otherwise, &vec![lit("O")]);
        assert_eq!(t.diagnostics.len(), 2);
        assert_eq!(t.diagnostics[0].offset, 12);
        assert!(t.diagnostics[0].reason.contains("invalid test"));
        assert!(t.diagnostics[1].reason.contains("without test"));
    }

    #[test]
    fn choose_problems() {
        let t = p("<esi:choose><esi:otherwise>O</esi:otherwise></esi:choose>");
        assert_eq!(
            t.segments,
            vec![Segment::Choose {
                whens: vec![],
                otherwise: vec![lit("O")]
            }]
        );
        assert_eq!(t.diagnostics.len(), 1);
        let t = p("a<esi:choose> </esi:choose>b");
        assert_eq!(t.segments, vec![lit("a"), lit("b")]);
        assert_eq!(t.diagnostics.len(), 1);
        let t = p("<esi:choose>junk<esi:when test=\"1==1\">W</esi:when><esi:otherwise>1</esi:otherwise><esi:otherwise>2</esi:otherwise></esi:choose>");
        let [Segment::Choose { whens, otherwise }] = t.segments.as_slice() else {
            panic!()
        };
        assert_eq!(whens.len(), 1);
        assert_eq!(otherwise, &vec![lit("1")]);
        assert_eq!(t.diagnostics.len(), 2, "{}", reasons(&t));
    }

    #[test]
    fn vars_substitutes_text() {
        let t = p("a $(HTTP_HOST) <esi:vars>Hi $(HTTP_COOKIE{name}) at $(HTTP_HOST)!</esi:vars> b");
        assert_eq!(
            t.segments,
            vec![
                lit("a $(HTTP_HOST) "),
                Segment::Vars(vec![
                    text("Hi "),
                    VarPart::Var(Variable::HttpCookie(Some("name".into()))),
                    text(" at "),
                    VarPart::Var(Variable::HttpHost),
                    text("!"),
                ]),
                lit(" b"),
            ]
        );
        // Text without variables stays a zero-copy literal; unknown ones stay text.
        let t = p("<esi:vars>plain $(FOO)</esi:vars>");
        assert_eq!(t.segments, vec![lit("plain $(FOO)")]);
        assert!(t.diagnostics.is_empty());
    }

    #[test]
    fn vars_with_invalid_utf8_keeps_bytes() {
        let mut body = b"<esi:vars>\xff\xfe$(HTTP_HOST)\xc3</esi:vars>".to_vec();
        body.extend_from_slice(b"\x80");
        let body = Bytes::from(body);
        let t = parse(&body, &Limits::default());
        assert_eq!(
            t.segments,
            vec![
                Segment::Literal(Bytes::from_static(b"\xff\xfe")),
                Segment::Vars(vec![VarPart::Var(Variable::HttpHost)]),
                Segment::Literal(Bytes::from_static(b"\xc3")),
                Segment::Literal(Bytes::from_static(b"\x80")),
            ]
        );
        check_literals(&body, &t);
    }

    #[test]
    fn invalid_utf8_literals_preserved() {
        let body = Bytes::from_static(
            b"\xff\x00\xc3(<esi:include src=\"/\xe9\"/>\xfe\xfd<esi:remove>\xff</esi:remove>\x80",
        );
        let t = parse(&body, &Limits::default());
        let [Segment::Literal(a), Segment::Include(i), Segment::Literal(b), Segment::Literal(c)] =
            t.segments.as_slice()
        else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(a.as_ref(), b"\xff\x00\xc3(");
        assert_eq!(b.as_ref(), b"\xfe\xfd");
        assert_eq!(c.as_ref(), b"\x80");
        assert_eq!(i.src, vec![text("/\u{FFFD}")]);
        check_literals(&body, &t);
    }

    #[test]
    fn nesting_try_in_choose_in_vars() {
        let t = p(concat!(
            "<esi:vars>[$(HTTP_HOST)]",
            "<esi:choose><esi:when test=\"$(HTTP_COOKIE{g})=='a'\">",
            "<esi:try><esi:attempt><esi:include src=\"/u/$(HTTP_COOKIE{id})\"/>$(HTTP_REFERER)</esi:attempt>",
            "<esi:except>down</esi:except></esi:try>",
            "</esi:when></esi:choose>",
            "</esi:vars>"
        ));
        assert!(t.diagnostics.is_empty(), "{}", reasons(&t));
        assert_eq!(t.includes, 1);
        let [Segment::Vars(v), Segment::Choose { whens, otherwise }] = t.segments.as_slice() else {
            panic!("{:?}", t.segments)
        };
        assert_eq!(
            v,
            &vec![text("["), VarPart::Var(Variable::HttpHost), text("]")]
        );
        assert!(otherwise.is_empty());
        let [Segment::Try { attempt, except }] = whens[0].1.as_slice() else {
            panic!()
        };
        assert_eq!(except, &vec![lit("down")]);
        assert_eq!(
            attempt,
            &vec![
                Segment::Include(Include {
                    src: vec![
                        text("/u/"),
                        VarPart::Var(Variable::HttpCookie(Some("id".into())))
                    ],
                    alt: None,
                    continue_on_error: false,
                }),
                Segment::Vars(vec![VarPart::Var(Variable::HttpReferer)]),
            ]
        );
    }

    #[test]
    fn unterminated_include_tag_at_eof() {
        let t = p("page<esi:include src=\"/x\"");
        assert_eq!(t.segments, vec![lit("page")]);
        assert_eq!(t.diagnostics.len(), 1);
        assert_eq!(t.diagnostics[0].offset, 4);
        assert!(t.diagnostics[0]
            .reason
            .contains("unterminated <esi:include> tag"));
        let t = p("page<esi:include src=\"/x");
        assert_eq!(t.segments, vec![lit("page")]);
        // A broken tag stops at the next `<`; the rest of the page stays.
        let t = p("a<esi:include src=\"/x\" <p>b</p>");
        assert_eq!(t.segments, vec![lit("a"), lit("<p>b</p>")]);
        assert_eq!(t.diagnostics.len(), 1);
        // An unbalanced quote: the tag ends at the first `>`.
        let t = p("a<esi:include src=\"/x/> b");
        assert_eq!(t.segments, vec![lit("a"), lit(" b")]);
        assert_eq!(t.diagnostics.len(), 1);
        let t = p("a</esi:try");
        assert_eq!(t.segments, vec![lit("a")]);
        assert_eq!(t.diagnostics.len(), 1);
    }

    #[test]
    fn overlong_tag_is_malformed() {
        let body = format!("a<esi:include src=\"{}\"/>b", "x".repeat(MAX_TAG_LEN));
        let t = p(&body);
        assert_eq!(t.segments, vec![lit("a"), lit("b")]);
        assert_eq!(t.diagnostics.len(), 1);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let n = 10_000;
        let body = format!(
            "{}x{}",
            "<esi:try><esi:attempt>".repeat(n),
            "</esi:attempt><esi:except>e</esi:except></esi:try>".repeat(n)
        );
        let body = Bytes::from(body);
        let limits = Limits::default();
        let t = parse(&body, &limits);
        assert!(depth(&t.segments) <= limits.max_nesting);
        assert!(!t.diagnostics.is_empty());
        assert!(t.diagnostics.len() <= MAX_DIAGNOSTICS + 1);
        check_literals(&body, &t);
        let mut lits = Vec::new();
        literals(&t.segments, &mut lits);
        assert!(lits.iter().any(|l| l.as_ref() == b"x"));
        // Nothing but the excess was touched: the outer 32 levels are intact.
        let mut segs = &t.segments;
        for _ in 0..limits.max_nesting {
            let Some(Segment::Try { attempt, .. }) = segs.first() else {
                panic!()
            };
            segs = attempt;
        }
        // Unclosed deep nesting, and other deep elements.
        for body in [
            "<esi:try><esi:attempt>".repeat(n),
            "<esi:choose><esi:when test=\"1==1\">".repeat(n),
            "<esi:vars>".repeat(n),
            "<esi:foo>".repeat(n) + &"</esi:foo>".repeat(n),
            "<!--esi <esi:vars>".repeat(n),
        ] {
            let body = Bytes::from(body);
            let t = parse(&body, &limits);
            assert!(depth(&t.segments) <= limits.max_nesting);
            check_literals(&body, &t);
        }
    }

    #[test]
    fn nesting_limit_flattens_excess() {
        let limits = Limits {
            max_nesting: 1,
            max_includes: 10,
        };
        let body = Bytes::from_static(
            b"<esi:try><esi:attempt>a<esi:try><esi:attempt>b</esi:attempt><esi:except>c</esi:except></esi:try></esi:attempt></esi:try>",
        );
        let t = parse(&body, &limits);
        assert_eq!(
            t.segments,
            vec![Segment::Try {
                attempt: vec![lit("a"), lit("b"), lit("c")],
                except: vec![]
            }]
        );
        assert_eq!(t.diagnostics.len(), 1, "{}", reasons(&t));
        assert_eq!(t.diagnostics[0].offset, 23);
        let t = parse(
            &body,
            &Limits {
                max_nesting: 0,
                max_includes: 10,
            },
        );
        assert_eq!(t.segments, vec![lit("a"), lit("b"), lit("c")]);
    }

    #[test]
    fn mismatched_close_closes_inner_elements() {
        let t = p("<esi:vars><esi:foo>$(HTTP_HOST)</esi:vars>z");
        assert_eq!(
            t.segments,
            vec![
                Segment::Vars(vec![VarPart::Var(Variable::HttpHost)]),
                lit("z")
            ]
        );
        assert_eq!(t.diagnostics.len(), 2, "{}", reasons(&t));
    }

    #[test]
    fn diagnostics_have_offsets() {
        let t = p("0123<esi:foo/>");
        assert_eq!(
            t.diagnostics,
            vec![Diagnostic {
                offset: 4,
                reason: "unsupported <esi:foo> removed".into()
            }]
        );
        assert_eq!(
            t.diagnostics[0].to_string(),
            "byte 4: unsupported <esi:foo> removed"
        );
    }

    #[test]
    fn lenient_unescape_cases() {
        assert_eq!(lenient_unescape("a&b"), "a&b");
        assert_eq!(lenient_unescape("&amp;&lt;&gt;&quot;&apos;"), "&<>\"'");
        assert_eq!(
            lenient_unescape("&#65;&#x42;&#xZZ;&#1114112;"),
            "AB&#xZZ;&#1114112;"
        );
        assert_eq!(lenient_unescape("&nbsp;&"), "&nbsp;&");
        assert_eq!(
            lenient_unescape("&verylongentityname;"),
            "&verylongentityname;"
        );
        assert_eq!(lenient_unescape("é&amp;é"), "é&é");
    }

    #[test]
    fn find_either_matches_naive() {
        let hay: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for from in 0..hay.len() {
            for (a, b) in [(b'<', b'<'), (b'<', b'-'), (0u8, 250u8), (255, 255)] {
                let naive = hay[from..]
                    .iter()
                    .position(|&c| c == a || c == b)
                    .map(|k| k + from);
                assert_eq!(find_either(&hay, from, a, b), naive);
            }
        }
        assert_eq!(find_either(b"abc", 3, b'a', b'a'), None);
        assert_eq!(find_either(b"abc", 5, b'a', b'a'), None);
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        let n = 100_000;
        let bodies = [
            "<esi:a \"".repeat(n),
            "<esi:a \"<esi:b '".repeat(n),
            "<esi:include src=\"".repeat(n),
            "<esi:remove>".repeat(n),
            "<esi:remove><!--".repeat(n),
            "<esi:remove><esi:a \"".repeat(n),
            "<!--".repeat(n),
            "<![CDATA[".repeat(n) + &"<esi:remove>]]>".repeat(n),
            "<!--esi<!--".repeat(n),
            "<!--esi".repeat(n),
            "<esi:try>".repeat(n) + &"</esi:foo>".repeat(n),
            "<esi:vars>".repeat(200) + &"<esi:comment/>x".repeat(n),
            "<esi:vars>".to_owned() + &"$(HTTP_COOKIE{".repeat(n),
            format!("<esi:include src=\"{}\"/>", "&".repeat(MAX_TAG_LEN - 20)).repeat(50),
            "<esi:choose><esi:when test=\"".to_owned() + &"(".repeat(n),
        ];
        for body in bodies {
            let start = std::time::Instant::now();
            let body = Bytes::from(body);
            let t = parse(&body, &Limits::default());
            check_literals(&body, &t);
            assert!(start.elapsed() < std::time::Duration::from_secs(20));
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_garbage_bytes() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2_000 {
            let len = rng.below(300);
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let body = Bytes::from(body);
            let t = parse(&body, &Limits::default());
            check_literals(&body, &t);
        }
    }

    #[test]
    fn fuzz_like_fragments() {
        const FRAGMENTS: &[&str] = &[
            "<esi:include src=\"/a\"/>",
            "<esi:include src='/$(HTTP_HOST)' alt=\"/b\" onerror=\"continue\">",
            "</esi:include>",
            "<esi:include",
            " src=\"",
            "\"",
            "'",
            "/>",
            ">",
            "<",
            "-->",
            "<!--esi",
            "<!--",
            "<![CDATA[",
            "]]>",
            "<esi:remove>",
            "</esi:remove>",
            "<esi:comment text=\"c\"/>",
            "<esi:try>",
            "</esi:try>",
            "<esi:attempt>",
            "</esi:attempt>",
            "<esi:except>",
            "</esi:except>",
            "<esi:choose>",
            "</esi:choose>",
            "<esi:when test=\"$(HTTP_COOKIE{a})=='b'\">",
            "<esi:when test=\"((\">",
            "</esi:when>",
            "<esi:otherwise>",
            "</esi:otherwise>",
            "<esi:vars>",
            "</esi:vars>",
            "$(HTTP_COOKIE{x})",
            "$(QUERY_STRING",
            "$(",
            "<esi:foo>",
            "</esi:foo>",
            "<esi:",
            "</esi:",
            "text ",
            "\n",
            "&amp;",
            "&",
            "\u{e9}",
            "\u{1F600}",
            "<p class=\"x\">",
            "</p>",
            "<esi:try/>",
        ];
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let limits = Limits {
            max_nesting: 4,
            max_includes: 8,
        };
        for round in 0..20_000 {
            let mut body = Vec::new();
            for _ in 0..rng.below(40) {
                if rng.below(10) == 0 {
                    body.push(rng.next() as u8);
                } else {
                    body.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes());
                }
            }
            // Sometimes cut mid-way, to end inside a construct.
            if !body.is_empty() && rng.below(4) == 0 {
                body.truncate(rng.below(body.len()));
            }
            let body = Bytes::from(body);
            let l = if round % 2 == 0 {
                &limits
            } else {
                &Limits::default()
            };
            let t = parse(&body, l);
            check_literals(&body, &t);
            assert!(depth(&t.segments) <= l.max_nesting);
            assert!(t.includes <= l.max_includes);
            assert_eq!(t.includes, count_includes(&t.segments));
            assert!(t.diagnostics.iter().all(|d| d.offset <= body.len()));
        }
    }
}
