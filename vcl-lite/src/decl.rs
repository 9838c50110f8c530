//! `backend` and `probe` declarations: checked, and handed to the host as
//! data ([`crate::Program::backends`]). vcl-lite does not connect to them.

use std::collections::HashMap;

use crate::ast::{self, Field, FieldValue, Ident, Item};
use crate::error::{Error, SourceMap, Span};
use crate::vars::closest;

/// A `backend` declaration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Backend {
    /// Its name.
    pub name: String,
    /// `backend name none;`: declared as no backend (Varnish 6.4+); every
    /// other field is empty.
    pub none: bool,
    /// `.host`: a host name or address.
    pub host: Option<String>,
    /// `.port`: a port number or service name, as written.
    pub port: Option<String>,
    /// `.path`: a Unix domain socket (instead of `.host`).
    pub path: Option<String>,
    /// `.host_header`: the `Host` sent when the request has none.
    pub host_header: Option<String>,
    /// `.connect_timeout`, in seconds.
    pub connect_timeout: Option<f64>,
    /// `.first_byte_timeout`, in seconds.
    pub first_byte_timeout: Option<f64>,
    /// `.between_bytes_timeout`, in seconds.
    pub between_bytes_timeout: Option<f64>,
    /// `.max_connections`.
    pub max_connections: Option<i64>,
    /// `.proxy_header` (1 or 2: send a PROXY protocol header).
    pub proxy_header: Option<i64>,
    /// `.probe`: named or inline.
    pub probe: Option<Probe>,
}

/// A health probe: a `probe` declaration, or inline in a backend. Fields
/// not written have Varnish's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Its name; `None` inline.
    pub name: Option<String>,
    /// `.url` (default `/`), unless `.request` is given.
    pub url: String,
    /// `.request`: the whole request, its strings joined with `\r\n`.
    pub request: Option<String>,
    /// `.interval`, seconds (default 5).
    pub interval: f64,
    /// `.timeout`, seconds (default 2).
    pub timeout: f64,
    /// `.window`: how many of the last probes count (default 8, at most 64).
    pub window: i64,
    /// `.threshold`: how many of them must succeed (default 3).
    pub threshold: i64,
    /// `.initial`: how many count as good at start (default threshold − 1).
    pub initial: i64,
    /// `.expected_response` (default 200).
    pub expected_response: i64,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            name: None,
            url: "/".into(),
            request: None,
            interval: 5.0,
            timeout: 2.0,
            window: 8,
            threshold: 3,
            initial: 2,
            expected_response: 200,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    /// One or more strings.
    Strs,
    /// A string, or an integer (a port).
    StrOrInt,
    Int,
    Duration,
    /// A probe's name or an inline probe.
    Probe,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Strs => "one or more strings",
            Kind::StrOrInt => "a string such as \"8080\"",
            Kind::Int => "an integer",
            Kind::Duration => "a duration such as `5s`",
            Kind::Probe => "a probe's name or `{ … }`",
        }
    }
}

const BACKEND_FIELDS: &[(&str, Kind)] = &[
    ("host", Kind::Str),
    ("port", Kind::StrOrInt),
    ("path", Kind::Str),
    ("host_header", Kind::Str),
    ("connect_timeout", Kind::Duration),
    ("first_byte_timeout", Kind::Duration),
    ("between_bytes_timeout", Kind::Duration),
    ("max_connections", Kind::Int),
    ("proxy_header", Kind::Int),
    ("probe", Kind::Probe),
];

const PROBE_FIELDS: &[(&str, Kind)] = &[
    ("url", Kind::Str),
    ("request", Kind::Strs),
    ("interval", Kind::Duration),
    ("timeout", Kind::Duration),
    ("window", Kind::Int),
    ("threshold", Kind::Int),
    ("initial", Kind::Int),
    ("expected_response", Kind::Int),
];

/// Checks a policy's backends and probes. Errors go to `errors`; the
/// backends and named probes that could be read are returned, in
/// declaration order.
pub(crate) fn check(
    policy: &ast::Policy,
    src: &str,
    file: &str,
    map: &SourceMap,
    errors: &mut Vec<Error>,
) -> (Vec<Backend>, Vec<Probe>) {
    let c = Decls { src, file, map };
    let mut probes: HashMap<&str, (&ast::ProbeDef, Probe)> = HashMap::new();
    let mut seen_probes: HashMap<&str, Span> = HashMap::new();
    for item in &policy.items {
        if let Item::Probe(def) = item {
            if let Some(first) = seen_probes.get(def.name.name.as_str()) {
                errors.push(c.duplicate("probe", &def.name, *first));
                continue;
            }
            seen_probes.insert(&def.name.name, def.name.span);
            match c.probe(&def.fields, Some(&def.name.name), errors) {
                Some(p) => {
                    probes.insert(&def.name.name, (def, p));
                }
                None => continue,
            }
        }
    }
    let mut backends = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for item in &policy.items {
        let Item::Backend(def) = item else { continue };
        if let Some(first) = seen.get(def.name.name.as_str()) {
            errors.push(c.duplicate("backend", &def.name, *first));
            continue;
        }
        seen.insert(&def.name.name, def.name.span);
        let mut b = Backend {
            name: def.name.name.clone(),
            ..Backend::default()
        };
        let Some(fields) = &def.fields else {
            b.none = true;
            backends.push(b);
            continue;
        };
        let before = errors.len();
        for (field, kind) in c.fields(fields, BACKEND_FIELDS, "backend", errors) {
            match (field.name.name.as_str(), &field.value) {
                ("probe", FieldValue::Name(n)) => match probes.get(n.name.as_str()) {
                    Some((_, p)) => b.probe = Some(p.clone()),
                    None if seen_probes.contains_key(n.name.as_str()) => {}
                    None => {
                        let names = seen_probes.keys().copied();
                        let label = match closest(&n.name, names) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "no `probe` with this name is declared".into(),
                        };
                        errors.push(c.error(n.span, format!("unknown probe `{}`", n.name), label));
                    }
                },
                ("probe", FieldValue::Probe(inner, _)) => {
                    b.probe = c.probe(inner, None, errors);
                }
                (name, value) => {
                    let _ = kind;
                    match name {
                        "host" => b.host = text(value),
                        "port" => {
                            b.port = match value {
                                FieldValue::Int(i, _) => Some(i.to_string()),
                                v => text(v),
                            }
                        }
                        "path" => b.path = text(value),
                        "host_header" => b.host_header = text(value),
                        "connect_timeout" => b.connect_timeout = secs(value),
                        "first_byte_timeout" => b.first_byte_timeout = secs(value),
                        "between_bytes_timeout" => b.between_bytes_timeout = secs(value),
                        "max_connections" => b.max_connections = int(value),
                        "proxy_header" => b.proxy_header = int(value),
                        _ => {}
                    }
                }
            }
        }
        if errors.len() == before {
            if b.host.is_some() == b.path.is_some() {
                let label = if b.host.is_some() {
                    "give `.host` or `.path`, not both"
                } else {
                    "add `.host = \"…\";` (or `.path` for a Unix socket)"
                };
                errors.push(c.error(
                    def.name.span,
                    format!("backend `{}` needs an address", b.name),
                    label,
                ));
            }
            if let (Some(v), Some(f)) = (b.proxy_header, field_span(fields, "proxy_header")) {
                if v != 1 && v != 2 {
                    errors.push(c.error(f, "`.proxy_header` must be 1 or 2", ""));
                }
            }
        }
        backends.push(b);
    }
    let named = policy
        .items
        .iter()
        .filter_map(|i| match i {
            // The first declaration of each name (a duplicate is an error).
            Item::Probe(d) => probes
                .get(d.name.name.as_str())
                .filter(|(first, _)| std::ptr::eq(*first, d)),
            _ => None,
        })
        .map(|(_, p)| p.clone())
        .collect();
    (backends, named)
}

fn field_span(fields: &[Field], name: &str) -> Option<Span> {
    fields
        .iter()
        .find(|f| f.name.name == name)
        .map(|f| f.value.span())
}

fn text(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::Str(parts, _) => Some(parts.concat()),
        _ => None,
    }
}

fn secs(v: &FieldValue) -> Option<f64> {
    match v {
        FieldValue::Duration(d, _) => Some(*d),
        _ => None,
    }
}

fn int(v: &FieldValue) -> Option<i64> {
    match v {
        FieldValue::Int(i, _) => Some(*i),
        _ => None,
    }
}

struct Decls<'a> {
    src: &'a str,
    file: &'a str,
    map: &'a SourceMap,
}

impl Decls<'_> {
    fn error(&self, span: Span, message: impl Into<String>, label: impl Into<String>) -> Error {
        Error::new(self.src, self.file, span, message, label)
    }

    fn duplicate(&self, what: &str, name: &Ident, first: Span) -> Error {
        let line = self.map.line_ref(first.start);
        self.error(
            name.span,
            format!("duplicate {what} `{}`", name.name),
            "declared again here",
        )
        .note(format!("`{}` is first declared on {line}", name.name))
    }

    /// The fields that are known, unique and of the right type.
    fn fields<'f>(
        &self,
        fields: &'f [Field],
        table: &[(&'static str, Kind)],
        what: &str,
        errors: &mut Vec<Error>,
    ) -> Vec<(&'f Field, Kind)> {
        let mut out: Vec<(&Field, Kind)> = Vec::new();
        for field in fields {
            let name = field.name.name.as_str();
            let Some(&(_, kind)) = table.iter().find(|(n, _)| *n == name) else {
                let label = match closest(name, table.iter().map(|(n, _)| *n)) {
                    Some(s) => format!("did you mean `.{s}`?"),
                    None => {
                        let all: Vec<String> =
                            table.iter().map(|(n, _)| format!("`.{n}`")).collect();
                        format!("a {what} has {}", all.join(", "))
                    }
                };
                errors.push(self.error(
                    field.name.span,
                    format!("unknown {what} field `.{name}`"),
                    label,
                ));
                continue;
            };
            if let Some((first, _)) = out.iter().find(|(f, _)| f.name.name == name) {
                let line = self.map.line_ref(first.name.span.start);
                errors.push(
                    self.error(
                        field.name.span,
                        format!("`.{name}` is given twice"),
                        "given again here",
                    )
                    .note(format!("first on {line}")),
                );
                continue;
            }
            let fits = matches!(
                (kind, &field.value),
                (Kind::Str, FieldValue::Str(p, _)) if p.len() == 1
            ) || matches!(
                (kind, &field.value),
                (Kind::Strs, FieldValue::Str(..))
                    | (Kind::StrOrInt, FieldValue::Str(..) | FieldValue::Int(..))
                    | (Kind::Int, FieldValue::Int(..))
                    | (Kind::Duration, FieldValue::Duration(..))
                    | (Kind::Probe, FieldValue::Name(_) | FieldValue::Probe(..))
            );
            if !fits {
                let hint = match (kind, &field.value) {
                    (Kind::Duration, FieldValue::Int(i, _)) => format!("write `{i}s`"),
                    (Kind::StrOrInt, _) | (Kind::Str, _)
                        if matches!(field.value, FieldValue::Str(..)) =>
                    {
                        "write one string".into()
                    }
                    _ => format!("expected {}", kind.describe()),
                };
                errors.push(self.error(
                    field.value.span(),
                    format!("`.{name}` takes {}", kind.describe()),
                    hint,
                ));
                continue;
            }
            out.push((field, kind));
        }
        out
    }

    fn probe(
        &self,
        fields: &[Field],
        name: Option<&str>,
        errors: &mut Vec<Error>,
    ) -> Option<Probe> {
        let before = errors.len();
        let mut p = Probe {
            name: name.map(str::to_string),
            ..Probe::default()
        };
        let mut initial = None;
        for (field, _) in self.fields(fields, PROBE_FIELDS, "probe", errors) {
            let v = &field.value;
            match field.name.name.as_str() {
                "url" => p.url = text(v).unwrap_or_default(),
                "request" => {
                    if let FieldValue::Str(parts, _) = v {
                        let mut r = parts.join("\r\n");
                        r.push_str("\r\n\r\n");
                        p.request = Some(r);
                    }
                }
                "interval" => p.interval = secs(v).unwrap_or(p.interval),
                "timeout" => p.timeout = secs(v).unwrap_or(p.timeout),
                "window" => p.window = int(v).unwrap_or(p.window),
                "threshold" => p.threshold = int(v).unwrap_or(p.threshold),
                "initial" => initial = int(v),
                "expected_response" => p.expected_response = int(v).unwrap_or(200),
                _ => {}
            }
        }
        p.initial = initial.unwrap_or(p.threshold - 1).max(0);
        let at = |n: &str| field_span(fields, n).unwrap_or_default();
        if field_span(fields, "url").is_some() && p.request.is_some() {
            errors.push(self.error(
                at("request"),
                "a probe takes `.url` or `.request`, not both",
                "",
            ));
        }
        if !(1..=64).contains(&p.window) {
            errors.push(self.error(at("window"), "`.window` must be between 1 and 64", ""));
        } else if p.threshold < 1 || p.threshold > p.window {
            errors.push(self.error(
                at("threshold"),
                "`.threshold` must be between 1 and `.window`",
                format!("the window is {}", p.window),
            ));
        } else if p.initial > p.threshold {
            errors.push(self.error(at("initial"), "`.initial` must not exceed `.threshold`", ""));
        }
        if !(100..=999).contains(&p.expected_response) {
            errors.push(self.error(
                at("expected_response"),
                "`.expected_response` must be a status (100–999)",
                "",
            ));
        }
        (errors.len() == before).then_some(p)
    }
}
