//! Turning a template into parts: bytes ready at once, includes found in
//! the source's cache, includes started as tasks.

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::HeaderMap;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::budget::Turn;
use super::fetch::{fetch_fragment, FragmentResult};
use super::{Cached, Event, FragmentRequest, FragmentSource, Shared};
use crate::esi::chain::IncludeChain;
use crate::esi::parse::{Include, Segment};
use crate::esi::src_url::{resolve, Target};
use crate::esi::vars::{render, render_url, RequestView, VarPart};
use crate::http::conditional::CONDITIONAL_AND_RANGE;

/// A page being assembled (the client's, or a stored ESI fragment planned
/// in place), as its fragments need it.
pub(super) struct Page {
    pub(super) host: String,
    pub(super) url: String,
    /// The client's headers for fragment requests: conditionals, ranges and
    /// `Accept-Encoding` removed (fragments are inserted as identity bytes).
    headers: HeaderMap,
    /// The pages above this one, and this one.
    pub(super) chain: Arc<IncludeChain>,
    /// Includes of this page being fetched at once.
    pub(super) permits: Arc<Semaphore>,
}

impl Page {
    pub(super) fn new(
        host: String,
        url: String,
        mut headers: HeaderMap,
        above: Option<&IncludeChain>,
        concurrency: usize,
    ) -> Page {
        for name in CONDITIONAL_AND_RANGE {
            headers.remove(name);
        }
        for name in [ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE] {
            headers.remove(name);
        }
        Page {
            chain: IncludeChain::child(above, &host, &url),
            host,
            url,
            headers,
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// The request for one fragment of this page.
    pub(super) fn request(&self, target: &Target) -> FragmentRequest {
        let mut headers = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&target.host) {
            headers.insert(HOST, v);
        }
        FragmentRequest {
            host: target.host.clone(),
            url: target.url.clone(),
            headers,
            chain: self.chain.clone(),
        }
    }
}

impl RequestView for Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self) -> Option<&str> {
        self.url.split_once('?').map(|(_, q)| q)
    }
}

/// A piece of the page being assembled.
pub(super) enum Part {
    /// Bytes to send.
    Ready(Bytes),
    /// An include being fetched (or decoded).
    Fragment {
        task: JoinHandle<FragmentResult>,
        continue_on_error: bool,
        /// Started when the output reaches it.
        turn: Arc<Turn>,
    },
    /// An include that failed before any fetch (its `src` was refused and
    /// it has no `alt`): an empty error body.
    Failed { continue_on_error: bool },
    /// An `esi:try`: `attempt` unless one of its includes fails.
    Try {
        attempt: Vec<Part>,
        except: Vec<Segment>,
        page: Arc<Page>,
    },
}

fn push_ready(out: &mut Vec<Part>, b: Bytes) {
    if !b.is_empty() {
        out.push(Part::Ready(b));
    }
}

/// Whether every part is ready (nothing to wait for).
pub(super) fn is_ready(parts: &[Part]) -> bool {
    parts.iter().all(|p| match p {
        Part::Ready(_) => true,
        Part::Fragment { .. } => false,
        Part::Failed { continue_on_error } => *continue_on_error,
        Part::Try { attempt, .. } => is_ready(attempt),
    })
}

/// The bytes of parts that are all ready (see [`is_ready`]).
pub(super) fn flatten_ready(parts: Vec<Part>, out: &mut VecDeque<Bytes>) {
    for p in parts {
        match p {
            Part::Ready(b) => out.push_back(b),
            Part::Try { attempt, .. } => flatten_ready(attempt, out),
            Part::Fragment { .. } | Part::Failed { .. } => {}
        }
    }
}

/// How an include's `src` is first tried.
pub(super) enum First<S> {
    /// Fetched from the source.
    Fetch,
    /// By decoding the stored gzip'd fragment (from `src`).
    Decode(S, String),
    /// Not at all: it failed already (refused, or does not decode).
    Failed,
}

/// Turns segments into parts: ready bytes, fragments started, chosen
/// branches (see the module docs).
pub(super) fn plan<S: FragmentSource>(
    shared: &Arc<Shared<S>>,
    page: &Arc<Page>,
    segments: &[Segment],
    out: &mut Vec<Part>,
) {
    for seg in segments {
        match seg {
            Segment::Literal(b) => push_ready(out, b.clone()),
            Segment::Vars(v) => push_ready(out, Bytes::from(render(v, &**page))),
            Segment::Choose { whens, otherwise } => {
                let branch = whens
                    .iter()
                    .find(|(test, _)| test.eval(&**page))
                    .map_or(otherwise, |(_, body)| body);
                plan(shared, page, branch, out);
            }
            Segment::Try { attempt, except } => {
                let mut a = Vec::new();
                plan(shared, page, attempt, &mut a);
                out.push(Part::Try {
                    attempt: a,
                    except: except.clone(),
                    page: page.clone(),
                });
            }
            Segment::Include(inc) => plan_include(shared, page, inc, out),
        }
    }
}

/// One include: from the cache when it is there, else a task.
fn plan_include<S: FragmentSource>(
    shared: &Arc<Shared<S>>,
    page: &Arc<Page>,
    inc: &Include,
    out: &mut Vec<Part>,
) {
    shared.source.event(Event::Include);
    if !include_allowed_here(shared, page) {
        return;
    }
    let first = match target(shared, page, &inc.src) {
        Ok(target) => {
            if page.chain.contains(&target.host, &target.url) {
                refuse_loop(shared, page, &target);
                return;
            }
            match plan_cached(shared, page, target, out) {
                None => return,
                Some(first) => first,
            }
        }
        Err(()) => First::Failed,
    };
    if matches!(first, First::Failed) && inc.alt.is_none() {
        out.push(Part::Failed {
            continue_on_error: inc.continue_on_error,
        });
        return;
    }
    let turn = Arc::new(Turn::default());
    let task = tokio::spawn(fetch_fragment(
        shared.clone(),
        page.clone(),
        inc.clone(),
        first,
        turn.clone(),
    ));
    out.push(Part::Fragment {
        task,
        continue_on_error: inc.continue_on_error,
        turn,
    });
}

/// Inserts a fragment the source has stored (`None`), or says how to get
/// it.
fn plan_cached<S: FragmentSource>(
    shared: &Arc<Shared<S>>,
    page: &Arc<Page>,
    target: Target,
    out: &mut Vec<Part>,
) -> Option<First<S::Stored>> {
    match shared.source.cached(page.request(&target)) {
        Cached::Miss => Some(First::Fetch),
        Cached::Body(b) => {
            push_ready(out, b);
            None
        }
        Cached::Page {
            template,
            host,
            url,
            headers,
        } => {
            let child = Arc::new(Page::new(
                host,
                url,
                headers,
                Some(&page.chain),
                shared.settings.concurrency,
            ));
            plan(shared, &child, &template.segments, out);
            None
        }
        Cached::Decoded(Some(b)) if b.len() as u64 <= shared.settings.max_fragment_size => {
            push_ready(out, b);
            None
        }
        Cached::Decoded(_) => {
            shared.source.event(Event::TooLarge {
                page: &page.url,
                src: &target.url,
            });
            Some(First::Failed)
        }
        Cached::Coded(stored) => Some(First::Decode(stored, target.url)),
    }
}

/// False (reported) when includes of `page` would be deeper than the
/// limit.
fn include_allowed_here<S: FragmentSource>(shared: &Shared<S>, page: &Page) -> bool {
    let level = page.chain.level();
    let max = shared.settings.max_depth;
    if level > max as usize {
        shared.source.event(Event::TooDeep {
            page: &page.url,
            level,
            max,
        });
        return false;
    }
    true
}

pub(super) fn refuse_loop<S: FragmentSource>(shared: &Shared<S>, page: &Page, target: &Target) {
    shared.source.event(Event::Loop {
        page: &page.url,
        src: &target.url,
    });
}

/// Where an include's `src` (or `alt`) points.
pub(super) fn target<S: FragmentSource>(
    shared: &Shared<S>,
    page: &Page,
    src: &[VarPart],
) -> Result<Target, ()> {
    let src = render_url(src, page);
    resolve(&src, &page.host, &page.url, shared.source.allowed_hosts()).map_err(|error| {
        shared.source.event(Event::Refused {
            page: &page.url,
            error: &error,
        });
    })
}
