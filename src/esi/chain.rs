//! The include chain of a fragment request: which pages it was included
//! from, for loop detection and the depth limit.

use std::sync::Arc;

/// The pages above a request, outermost first, each as `host` + URL. A
/// client's own request has none (level 0).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IncludeChain {
    pages: Vec<(Box<str>, Box<str>)>,
}

impl IncludeChain {
    /// The chain of a fragment of the page `host` + `url` whose own chain is
    /// `parent` (`None` for a client request).
    pub fn child(parent: Option<&IncludeChain>, host: &str, url: &str) -> Arc<IncludeChain> {
        let mut pages = parent.map(|p| p.pages.clone()).unwrap_or_default();
        pages.push((host.into(), url.into()));
        Arc::new(IncludeChain { pages })
    }

    /// The ESI level of a request with this chain (the number of pages above
    /// it).
    pub fn level(&self) -> usize {
        self.pages.len()
    }

    /// Whether `host` + `url` is already on the chain (including it again
    /// would loop).
    pub fn contains(&self, host: &str, url: &str) -> bool {
        self.pages
            .iter()
            .any(|(h, u)| &**u == url && h.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_loops() {
        let top = IncludeChain::child(None, "a.test", "/page");
        assert_eq!(top.level(), 1);
        assert!(top.contains("a.test", "/page"));
        assert!(!top.contains("a.test", "/pag"));
        assert!(!top.contains("a.tes", "t/page"));
        let inner = IncludeChain::child(Some(&top), "a.test", "/frag");
        assert_eq!(inner.level(), 2);
        assert!(inner.contains("a.test", "/page") && inner.contains("a.test", "/frag"));
    }
}
