//! The cache directives that apply to this cache: RFC 9213 targeted fields
//! (`Lacquer-Cache-Control`, `CDN-Cache-Control`) first, else the ordinary
//! `Cache-Control` (RFC 9111 §5.2), parsed into [`CacheDirectives`].
//!
//! The headers are untrusted input: malformed values never panic; a broken
//! numeric directive counts as zero (stale), a broken targeted field is
//! ignored as if absent.

use std::borrow::Cow;
use std::time::Duration;

use ::http::header::{self, HeaderMap};

use crate::http::structured as sf;
use crate::http::syntax::{parse_delta_seconds, split_list, trim_ows};

/// Header names this cache removes before delivering (the targeted fields),
/// in order of precedence: the first one present and valid is used.
pub const TARGETED_FIELDS: [&str; 2] = ["lacquer-cache-control", "cdn-cache-control"];

/// [`TARGETED_FIELDS`] as header names, parsed once (every response is
/// looked at for them).
const TARGETED_NAMES: [header::HeaderName; 2] = [
    header::HeaderName::from_static(TARGETED_FIELDS[0]),
    header::HeaderName::from_static(TARGETED_FIELDS[1]),
];

/// Response fields meant for this cache alone and removed before delivery:
/// `Lacquer-Cache-Control` and `Surrogate-Control` (the ESI handshake; its
/// other directives are not used). `CDN-Cache-Control` is forwarded: RFC
/// 9213 targets it at every CDN cache, and one may sit in front of lacquer.
pub const NOT_DELIVERED: [http::HeaderName; 2] = [
    http::HeaderName::from_static("lacquer-cache-control"),
    http::HeaderName::from_static("surrogate-control"),
];

/// `Surrogate-Control` as a `static`, for lookups on every backend
/// response (a name given as text is parsed at each lookup, and a `const`
/// of a non-standard name is made anew at each use).
pub static SURROGATE_CONTROL: http::HeaderName = http::HeaderName::from_static("surrogate-control");

/// Which header field the effective cache directives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectiveSource {
    /// No cache-control field at all.
    #[default]
    None,
    /// The ordinary `Cache-Control` field.
    CacheControl,
    /// A targeted field (RFC 9213); holds its lowercase name, one of
    /// [`TARGETED_FIELDS`]. When a targeted field is used, `Cache-Control`
    /// and `Expires` are ignored.
    Targeted(&'static str),
}

/// The response cache directives that apply to this cache.
///
/// Numeric directives keep the first occurrence; a present directive with a
/// missing or invalid value (`max-age=abc`, `max-age=-1`, `max-age=1.5`) is
/// recorded as zero, so the response counts as stale (RFC 9111 §4.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    /// Field the directives were read from.
    pub source: DirectiveSource,
    /// `max-age`.
    pub max_age: Option<Duration>,
    /// `s-maxage`.
    pub s_maxage: Option<Duration>,
    /// `no-store`.
    pub no_store: bool,
    /// Unqualified `no-cache` (a malformed argument counts as unqualified).
    pub no_cache: bool,
    /// Field names of the qualified form `no-cache="a, b"` (lowercase).
    /// Recorded for information; this cache does not act on them.
    pub no_cache_fields: Vec<String>,
    /// `private`, unqualified *or qualified*: a shared cache could store a
    /// `private="x"` response without the listed fields, but this cache does
    /// not strip fields, so it conservatively treats both forms alike.
    pub private: bool,
    /// Field names of the qualified form `private="a, b"` (lowercase).
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861).
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` (RFC 5861).
    pub stale_if_error: Option<Duration>,
}

impl CacheDirectives {
    /// True when the directives came from a targeted field.
    pub fn is_targeted(&self) -> bool {
        matches!(self.source, DirectiveSource::Targeted(_))
    }
}

/// The cache-control directives that apply to this cache (RFC 9213 targeted
/// fields): `Lacquer-Cache-Control` if present and valid, else
/// `CDN-Cache-Control` if present and valid, else `Cache-Control`.
///
/// A targeted field fully replaces `Cache-Control`. Targeted fields are
/// Structured Field Dictionaries (RFC 8941): one that is empty or fails to
/// parse is ignored as if absent; within one, a repeated key keeps its last
/// value, as RFC 8941 requires. `Cache-Control` is parsed leniently:
/// case-insensitive names, token or quoted-string values, all field lines
/// combined, first occurrence of a numeric directive wins.
pub fn directives(resp_headers: &HeaderMap) -> CacheDirectives {
    // Targeted fields are rare: one look at the response's own names
    // before a lookup for each.
    if resp_headers.keys().any(|n| TARGETED_NAMES.contains(n)) {
        for (name, field) in TARGETED_FIELDS.into_iter().zip(&TARGETED_NAMES) {
            if let Some(raw) = targeted_directives(resp_headers, field) {
                return interpret(raw, DirectiveSource::Targeted(name));
            }
        }
    }
    let mut values = resp_headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .peekable();
    if values.peek().is_none() {
        return CacheDirectives::default();
    }
    // Read in place: names and values are borrowed from the field unless
    // they need lowercasing or unquoting (this runs for every response).
    let raw = values
        .flat_map(|value| split_list(value.as_bytes()).filter_map(parse_cache_control_member));
    interpret(raw, DirectiveSource::CacheControl)
}

/// A directive argument, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg<'a> {
    /// No `=value`.
    Absent,
    /// A token, a legacy quoted-string (unquoted), or an sf-integer.
    Value(Cow<'a, str>),
    /// An sf-string: valid for field lists, not for numeric directives.
    SfString(Cow<'a, str>),
    /// Present but unusable (unterminated quote, decimal, inner list...).
    Invalid,
}

/// One directive: which it is (`None`: one this cache does not know, or
/// may ignore), and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawDirective<'a> {
    name: Option<Directive>,
    arg: Arg<'a>,
}

/// The directives lacquer acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    MaxAge,
    SMaxage,
    StaleWhileRevalidate,
    StaleIfError,
    NoStore,
    NoCache,
    Private,
    Public,
    MustRevalidate,
    ProxyRevalidate,
    MustUnderstand,
    NoTransform,
    Immutable,
}

impl Directive {
    /// The directive named `name`, in any case (names are tokens: compared
    /// as bytes, with no text made of them; this runs for every response).
    fn named(name: &[u8]) -> Option<Directive> {
        const LONGEST: usize = "stale-while-revalidate".len();
        if name.len() > LONGEST {
            return None;
        }
        let mut lower = [0u8; LONGEST];
        let lower = &mut lower[..name.len()];
        for (l, b) in lower.iter_mut().zip(name) {
            *l = b.to_ascii_lowercase();
        }
        Some(match &*lower {
            b"max-age" => Directive::MaxAge,
            b"s-maxage" => Directive::SMaxage,
            b"stale-while-revalidate" => Directive::StaleWhileRevalidate,
            b"stale-if-error" => Directive::StaleIfError,
            b"no-store" => Directive::NoStore,
            b"no-cache" => Directive::NoCache,
            b"private" => Directive::Private,
            b"public" => Directive::Public,
            b"must-revalidate" => Directive::MustRevalidate,
            b"proxy-revalidate" => Directive::ProxyRevalidate,
            b"must-understand" => Directive::MustUnderstand,
            b"no-transform" => Directive::NoTransform,
            b"immutable" => Directive::Immutable,
            _ => return None,
        })
    }
}

/// Parse one `Cache-Control` list member: `token [ "=" ( token / quoted-string ) ]`.
fn parse_cache_control_member(member: &[u8]) -> Option<RawDirective<'_>> {
    let member = trim_ows(member);
    let (name, value) = match member.iter().position(|&b| b == b'=') {
        Some(eq) => (trim_ows(&member[..eq]), Some(trim_ows(&member[eq + 1..]))),
        None => (member, None),
    };
    if name.is_empty() {
        return None;
    }
    let name = Directive::named(name);
    let arg = match value {
        None => Arg::Absent,
        Some([]) => Arg::Invalid,
        Some([b'"', rest @ ..]) => match unquote(rest) {
            Some(s) => Arg::Value(Cow::Owned(s)),
            None => Arg::Invalid,
        },
        Some(v) => Arg::Value(String::from_utf8_lossy(v)),
    };
    Some(RawDirective { name, arg })
}

/// The content of a quoted-string whose opening quote was already consumed;
/// `None` if unterminated or followed by anything.
fn unquote(rest: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(rest.len());
    let mut iter = rest.iter().enumerate();
    while let Some((i, &b)) = iter.next() {
        match b {
            b'\\' => {
                let (_, &next) = iter.next()?;
                out.push(next);
            }
            b'"' => {
                return if trim_ows(&rest[i + 1..]).is_empty() {
                    Some(String::from_utf8_lossy(&out).into_owned())
                } else {
                    None
                };
            }
            _ => out.push(b),
        }
    }
    None
}

/// The directives of targeted field `name`, or `None` when it is absent,
/// empty or not a valid Structured Field Dictionary.
fn targeted_directives(
    headers: &HeaderMap,
    name: &header::HeaderName,
) -> Option<Vec<RawDirective<'static>>> {
    let mut combined: Vec<u8> = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(value.as_bytes());
    }
    let members = sf::parse_dictionary(&combined)?;
    let mut raw = Vec::with_capacity(members.len());
    for (key, value) in members {
        let arg = match value {
            sf::Value::Boolean(true) => Arg::Absent,
            // `?0`: the directive is explicitly off.
            sf::Value::Boolean(false) => continue,
            sf::Value::Integer(n) => Arg::Value(Cow::Owned(n.to_string())),
            sf::Value::Token(t) => Arg::Value(Cow::Owned(t)),
            sf::Value::String(s) => Arg::SfString(Cow::Owned(s)),
            sf::Value::Other => Arg::Invalid,
        };
        raw.push(RawDirective {
            name: Directive::named(key.as_bytes()),
            arg,
        });
    }
    Some(raw)
}

/// A numeric directive's value: invalid or missing values count as zero.
fn delta_arg(arg: &Arg) -> Duration {
    match arg {
        Arg::Value(v) => parse_delta_seconds(v.as_bytes()).unwrap_or(Duration::ZERO),
        Arg::Absent | Arg::SfString(_) | Arg::Invalid => Duration::ZERO,
    }
}

/// Lowercase field names of a qualified `no-cache` / `private` argument.
fn field_names(v: &str) -> Vec<String> {
    v.split(',')
        .map(|f| f.trim_matches([' ', '\t']).to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .collect()
}

fn set_first(slot: &mut Option<Duration>, arg: &Arg) {
    if slot.is_none() {
        *slot = Some(delta_arg(arg));
    }
}

fn interpret<'a>(
    raw: impl IntoIterator<Item = RawDirective<'a>>,
    source: DirectiveSource,
) -> CacheDirectives {
    let mut d = CacheDirectives {
        source,
        ..CacheDirectives::default()
    };
    for RawDirective { name, arg } in raw {
        let Some(name) = name else { continue };
        match name {
            Directive::MaxAge => set_first(&mut d.max_age, &arg),
            Directive::SMaxage => set_first(&mut d.s_maxage, &arg),
            Directive::StaleWhileRevalidate => set_first(&mut d.stale_while_revalidate, &arg),
            Directive::StaleIfError => set_first(&mut d.stale_if_error, &arg),
            Directive::NoStore => d.no_store = true,
            Directive::NoCache => match arg {
                Arg::Value(v) | Arg::SfString(v) => d.no_cache_fields.extend(field_names(&v)),
                // A broken argument is treated as the stricter, unqualified form.
                Arg::Absent | Arg::Invalid => d.no_cache = true,
            },
            Directive::Private => {
                d.private = true;
                if let Arg::Value(v) | Arg::SfString(v) = arg {
                    d.private_fields.extend(field_names(&v));
                }
            }
            Directive::Public => d.public = true,
            Directive::MustRevalidate => d.must_revalidate = true,
            Directive::ProxyRevalidate => d.proxy_revalidate = true,
            Directive::MustUnderstand => d.must_understand = true,
            Directive::NoTransform => d.no_transform = true,
            Directive::Immutable => d.immutable = true,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_support::*;
    use ::http::header::HeaderValue;
    use ::http::{Method, StatusCode};

    use crate::cache::freshness::{evaluate, FreshnessPolicy};
    use crate::cache::storable::NoCacheReason;
    use crate::http::syntax::MAX_DELTA_SECONDS;

    // ---- directive parsing ------------------------------------------

    #[test]
    fn malformed_numeric_directives_mean_stale() {
        for cc in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age=",
            "max-age=\"60",
            "max-age=60 s",
        ] {
            assert_eq!(ttl(200, &[("cache-control", cc)]), Duration::ZERO, "{cc}");
        }
        // An invalid max-age still overrides Expires.
        assert_eq!(
            ttl(
                200,
                &[("cache-control", "max-age=x"), ("expires", &date(T0 + 60))]
            ),
            Duration::ZERO
        );
    }

    #[test]
    fn quoted_values_case_and_whitespace() {
        assert_eq!(ttl(200, &[("cache-control", "max-age=\"60\"")]), secs(60));
        assert_eq!(ttl(200, &[("cache-control", "MAX-AGE=60")]), secs(60));
        assert_eq!(ttl(200, &[("cache-control", "  max-age = 60 ,")]), secs(60));
    }

    #[test]
    fn duplicates_use_the_first() {
        assert_eq!(
            ttl(200, &[("cache-control", "max-age=10, max-age=20")]),
            secs(10)
        );
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("cache-control", "max-age=20")
                ]
            ),
            secs(10)
        );
    }

    #[test]
    fn multiple_lines_combine() {
        let d = directives(&headers(&[
            ("cache-control", "public"),
            ("cache-control", "max-age=60, must-revalidate"),
        ]));
        assert!(d.public && d.must_revalidate);
        assert_eq!(d.max_age, Some(secs(60)));
        assert_eq!(d.source, DirectiveSource::CacheControl);
    }

    #[test]
    fn huge_values_are_clamped() {
        assert_eq!(
            ttl(
                200,
                &[("cache-control", "max-age=99999999999999999999999999")]
            ),
            secs(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn no_cache_qualified_vs_unqualified() {
        let d = directives(&headers(&[(
            "cache-control",
            "no-cache=\"set-cookie, x-a\", max-age=5",
        )]));
        assert!(!d.no_cache);
        assert_eq!(d.no_cache_fields, vec!["set-cookie", "x-a"]);
        assert_eq!(d.max_age, Some(secs(5)));
        // The comma inside the quotes did not split the list.
        let d = directives(&headers(&[("cache-control", "no-cache=\"a,b\", no-cache")]));
        assert!(d.no_cache);
        let d = directives(&headers(&[("cache-control", "no-cache=\"unterminated")]));
        assert!(d.no_cache);
    }

    #[test]
    fn other_directives_parsed() {
        let d = directives(&headers(&[(
            "cache-control",
            "public, proxy-revalidate, no-transform, immutable, stale-while-revalidate=30, stale-if-error=600, x-ext=\"q,\\\"z\"",
        )]));
        assert!(d.public && d.proxy_revalidate && d.no_transform && d.immutable);
        assert_eq!(d.stale_while_revalidate, Some(secs(30)));
        assert_eq!(d.stale_if_error, Some(secs(600)));
        assert_eq!(directives(&HeaderMap::new()), CacheDirectives::default());
    }

    #[test]
    fn non_utf8_headers_do_not_panic() {
        let mut map = HeaderMap::new();
        map.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=\xff\xfe, \xffprivate").unwrap(),
        );
        map.insert(header::DATE, HeaderValue::from_bytes(b"\xff\xff").unwrap());
        map.insert(header::AGE, HeaderValue::from_bytes(b"\xff").unwrap());
        let f = evaluate(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &map,
            at(T0),
            at(T0),
            &FreshnessPolicy::default(),
        )
        .unwrap();
        assert_eq!(f.ttl, Duration::ZERO);
    }

    // ---- targeted fields -----------------------------------------------

    #[test]
    fn targeted_precedence() {
        let all = [
            ("cache-control", "max-age=10"),
            ("cdn-cache-control", "max-age=20"),
            ("lacquer-cache-control", "max-age=30"),
        ];
        assert_eq!(ttl(200, &all), secs(30));
        assert_eq!(
            directives(&headers(&all)).source,
            DirectiveSource::Targeted("lacquer-cache-control")
        );
        assert_eq!(ttl(200, &all[..2]), secs(20));
        assert_eq!(ttl(200, &all[..1]), secs(10));
    }

    #[test]
    fn targeted_field_replaces_cache_control_and_expires() {
        // no-store in Cache-Control does not apply.
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60")
                ]
            ),
            secs(60)
        );
        // ...and the reverse: the targeted field forbids storage.
        assert_eq!(
            eval(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("lacquer-cache-control", "no-store")
                ]
            ),
            Err(NoCacheReason::NoStore)
        );
        // Expires is ignored when a targeted field is in use.
        assert_eq!(
            eval(
                200,
                &[("expires", &date(T0 + 60)), ("cdn-cache-control", "public")]
            ),
            Err(NoCacheReason::NoFreshness)
        );
        // A field with no known directive still counts (RFC 9213 "none").
        assert_eq!(
            eval(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "none")
                ]
            ),
            Err(NoCacheReason::NoFreshness)
        );
    }

    #[test]
    fn invalid_targeted_field_is_ignored() {
        for bad in [
            "",
            "Max-Age=30",
            "max-age=30,",
            "max-age=\"30",
            "max-age=30 junk",
            "max-age==1",
        ] {
            assert_eq!(
                ttl(
                    200,
                    &[
                        ("cache-control", "max-age=10"),
                        ("lacquer-cache-control", bad)
                    ]
                ),
                secs(10),
                "{bad:?}"
            );
        }
        // Lacquer invalid -> falls to CDN.
        assert_eq!(
            ttl(
                200,
                &[
                    ("cache-control", "max-age=10"),
                    ("cdn-cache-control", "max-age=20"),
                    ("lacquer-cache-control", "MAX-AGE=30")
                ]
            ),
            secs(20)
        );
    }

    #[test]
    fn targeted_field_values() {
        let d = directives(&headers(&[(
            "cdn-cache-control",
            "max-age=60;foo=bar, no-cache=\"set-cookie\", must-revalidate, no-store=?0, stale-if-error=1.5",
        )]));
        assert_eq!(d.max_age, Some(secs(60)));
        assert!(!d.no_cache);
        assert_eq!(d.no_cache_fields, vec!["set-cookie"]);
        assert!(d.must_revalidate);
        assert!(!d.no_store);
        assert_eq!(d.stale_if_error, Some(Duration::ZERO));
        // Duplicate keys: last wins (RFC 8941). Strings are not integers.
        let d = directives(&headers(&[(
            "cdn-cache-control",
            "max-age=1, max-age=2, s-maxage=\"5\"",
        )]));
        assert_eq!(d.max_age, Some(secs(2)));
        assert_eq!(d.s_maxage, Some(Duration::ZERO));
        // Several lines combine.
        let d = directives(&headers(&[
            ("cdn-cache-control", "max-age=5"),
            ("cdn-cache-control", "public"),
        ]));
        assert_eq!(d.max_age, Some(secs(5)));
        assert!(d.public);
        // Other SF types parse.
        let d = directives(&headers(&[(
            "lacquer-cache-control",
            "a=(1 2 \"x\");p, b=:aGk=:, c=@1700000000, d=%\"caf%c3%a9\", e=*tok/x, max-age=-3",
        )]));
        assert_eq!(d.source, DirectiveSource::Targeted("lacquer-cache-control"));
        assert_eq!(d.max_age, Some(Duration::ZERO));
    }
}
