//! Resolving an include's `src` against the page it appears in.
//!
//! `src` may be absolute-path (`/frag`), relative (`frag`, `../frag`),
//! protocol-relative (`//host/frag`) or absolute (`http://host/frag`,
//! `https://…`). Whatever the scheme, the fragment is fetched through the
//! cache from the configured backends with the resolved `Host`, as Varnish
//! does; a host other than the page's must be listed in `esi.allowed_hosts`,
//! so a page cannot make the cache fetch from anywhere (no open proxy).

use crate::http::headers::normalize_host;

/// Where a fragment is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `Host` of the fragment request (in the form of
    /// [`normalize_host`]).
    pub host: String,
    /// Path and query, starting with `/`.
    pub url: String,
}

/// Why a `src` is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrcError {
    /// Empty, or with bytes a request target cannot carry.
    #[error("include src {0:?} is not a valid URL")]
    Invalid(String),
    /// An absolute URL to a host not in `esi.allowed_hosts`.
    #[error("include src names host {0:?}, which esi.allowed_hosts does not list")]
    HostNotAllowed(String),
    /// A scheme other than http and https.
    #[error("include src {0:?}: only http and https URLs can be included")]
    Scheme(String),
}

/// Resolves `src` for a page at `page_url` (path and query) on `page_host`.
pub fn resolve(
    src: &str,
    page_host: &str,
    page_url: &str,
    allowed_hosts: &[String],
) -> Result<Target, SrcError> {
    let src = src.trim();
    if src.is_empty() || !src.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SrcError::Invalid(src.to_string()));
    }
    // The default port of the scheme, for the host's normal form.
    let mut default_port = 80;
    let (authority, rest) = if let Some(after) = src.strip_prefix("//") {
        split_authority(after)
    } else if let Some((scheme, after)) = src.split_once("://").filter(|(s, _)| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    }) {
        if scheme.eq_ignore_ascii_case("https") {
            default_port = 443;
        } else if !scheme.eq_ignore_ascii_case("http") {
            return Err(SrcError::Scheme(src.to_string()));
        }
        split_authority(after)
    } else {
        (None, src)
    };
    let host = match authority {
        Some(a) => {
            // As a client's Host is keyed (lowercase, no default port);
            // userinfo is refused.
            let a =
                normalize_host(a, default_port).map_err(|_| SrcError::Invalid(src.to_string()))?;
            let allowed = a.eq_ignore_ascii_case(page_host)
                || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&a));
            if !allowed {
                return Err(SrcError::HostNotAllowed(a));
            }
            a
        }
        None => page_host.to_string(),
    };
    // Fragment identifiers never reach the server.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let url = if authority.is_some() || rest.starts_with('/') {
        if rest.is_empty() {
            "/".to_string()
        } else {
            normalize(rest)
        }
    } else {
        let page_path = page_url.split_once('?').map_or(page_url, |(p, _)| p);
        let base = match page_path.rfind('/') {
            Some(i) => &page_path[..=i],
            None => "/",
        };
        if rest.is_empty() || rest.starts_with('?') {
            format!("{page_path}{rest}")
        } else {
            normalize(&format!("{base}{rest}"))
        }
    };
    if url.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(SrcError::Invalid(src.to_string()));
    }
    Ok(Target { host, url })
}

/// `host[:port]` and what follows it (`/path?query`, or empty).
fn split_authority(s: &str) -> (Option<&str>, &str) {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    (Some(&s[..end]), &s[end..])
}

/// Removes `.` and `..` segments (RFC 3986 §5.2.4) from an absolute path;
/// the query is kept as it is.
fn normalize(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path_and_query.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(src: &str) -> Result<Target, SrcError> {
        resolve(src, "shop.test", "/a/b/page.html?x=1", &["cdn.test".into()])
    }

    fn ok(src: &str) -> (String, String) {
        let t = r(src).expect(src);
        (t.host, t.url)
    }

    #[test]
    fn absolute_path_keeps_the_page_host() {
        assert_eq!(ok("/frag?a=1"), ("shop.test".into(), "/frag?a=1".into()));
    }

    #[test]
    fn relative_paths_resolve_against_the_page_directory() {
        assert_eq!(ok("frag").1, "/a/b/frag");
        assert_eq!(ok("./frag").1, "/a/b/frag");
        assert_eq!(ok("../frag").1, "/a/frag");
        assert_eq!(ok("../../../../frag").1, "/frag");
        assert_eq!(ok("c/../d?q").1, "/a/b/d?q");
        assert_eq!(ok("?y=2").1, "/a/b/page.html?y=2");
    }

    #[test]
    fn absolute_urls_need_an_allowed_host() {
        assert_eq!(ok("http://CDN.test/x"), ("cdn.test".into(), "/x".into()));
        assert_eq!(ok("https://shop.test"), ("shop.test".into(), "/".into()));
        assert_eq!(ok("//cdn.test/y#frag"), ("cdn.test".into(), "/y".into()));
        assert_eq!(
            ok("http://SHOP.test:80/x"),
            ("shop.test".into(), "/x".into())
        );
        assert_eq!(ok("https://cdn.test:443/"), ("cdn.test".into(), "/".into()));
        assert_eq!(
            r("http://evil.test/x"),
            Err(SrcError::HostNotAllowed("evil.test".into()))
        );
        assert_eq!(
            r("http://user@shop.test/x"),
            Err(SrcError::Invalid("http://user@shop.test/x".into()))
        );
        assert!(matches!(r("ftp://shop.test/x"), Err(SrcError::Scheme(_))));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(r(""), Err(SrcError::Invalid(_))));
        assert!(matches!(r("/a b"), Err(SrcError::Invalid(_))));
        assert!(matches!(r("/a\u{e9}"), Err(SrcError::Invalid(_))));
    }
}
