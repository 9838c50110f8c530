//! The engine without sockets: fragments from a map, with gates that hold
//! a fetch until the test releases it.

use super::*;
use crate::esi::parse::{parse, Limits};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, HOST};
use http::HeaderValue;
use http_body::Frame;
use std::collections::HashMap;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the map's cache holds a fragment.
#[derive(Clone, Copy, PartialEq)]
enum Stored {
    /// Not at all: it is fetched.
    No,
    /// As a body.
    Body,
    /// As an ESI page (planned in place).
    Page,
    /// As a gzip'd body not decoded yet.
    Gzip,
}

/// One fragment of the map.
#[derive(Clone)]
struct Frag {
    status: u16,
    chunks: Vec<Bytes>,
    gzip: bool,
    stored: Stored,
    /// The fetch waits for this before answering.
    gate: Option<Arc<Notify>>,
    /// The body fails after its chunks.
    cut: bool,
}

impl Frag {
    fn ok(body: &str) -> Frag {
        Frag {
            status: 200,
            chunks: vec![Bytes::copy_from_slice(body.as_bytes())],
            gzip: false,
            stored: Stored::No,
            gate: None,
            cut: false,
        }
    }

    fn status(mut self, s: u16) -> Frag {
        self.status = s;
        self
    }

    fn stored(mut self, s: Stored) -> Frag {
        self.stored = s;
        self
    }

    fn gated(mut self, gate: &Arc<Notify>) -> Frag {
        self.gate = Some(gate.clone());
        self
    }

    fn gzip(mut self) -> Frag {
        let body = self.body();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&body).unwrap();
        self.chunks = vec![Bytes::from(e.finish().unwrap())];
        self.gzip = true;
        self
    }

    fn body(&self) -> Bytes {
        self.chunks.concat().into()
    }
}

/// What the engine did, as the test sees it.
#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
    /// URLs whose fetch started.
    fetched: Mutex<Vec<String>>,
    /// URLs whose body was read to its end.
    done: Mutex<Vec<String>>,
    /// The last fragment request's headers.
    last_headers: Mutex<Option<HeaderMap>>,
    /// Body frames read, all fragments together.
    frames: AtomicUsize,
    /// The budget's gauge, and the most it was seen holding.
    gauge: Arc<AtomicU64>,
    max_gauge: AtomicU64,
}

impl Log {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn done(&self) -> Vec<String> {
        self.done.lock().unwrap().clone()
    }

    fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }
}

/// Fragments by URL (path), anything else a 404 "not found".
struct MapSource {
    frags: HashMap<String, Frag>,
    log: Arc<Log>,
}

struct TestBody {
    chunks: std::collections::VecDeque<Bytes>,
    cut: bool,
    url: String,
    log: Arc<Log>,
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = String;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        let this = self.get_mut();
        let held = this.log.gauge.load(Ordering::Relaxed);
        this.log.max_gauge.fetch_max(held, Ordering::Relaxed);
        Poll::Ready(match this.chunks.pop_front() {
            Some(b) => {
                this.log.frames.fetch_add(1, Ordering::Relaxed);
                Some(Ok(Frame::data(b)))
            }
            None if this.cut => {
                this.cut = false;
                Some(Err("connection reset".to_string()))
            }
            None => {
                this.log.done.lock().unwrap().push(this.url.clone());
                None
            }
        })
    }
}

impl FragmentSource for MapSource {
    type Body = TestBody;
    type Stored = Bytes;

    fn cached(&self, req: FragmentRequest) -> Cached<Bytes> {
        let Some(f) = self.frags.get(&req.url) else {
            return Cached::Miss;
        };
        match f.stored {
            Stored::No => Cached::Miss,
            Stored::Body => Cached::Body(f.body()),
            Stored::Gzip => Cached::Coded(f.body()),
            Stored::Page => Cached::Page {
                template: Arc::new(parse(&f.body(), &Limits::default())),
                host: req.host,
                url: req.url,
                headers: req.headers,
            },
        }
    }

    fn fetch(&self, req: FragmentRequest) -> impl Future<Output = Response<TestBody>> + Send {
        let f = self
            .frags
            .get(&req.url)
            .cloned()
            .unwrap_or_else(|| Frag::ok("not found").status(404));
        let log = self.log.clone();
        async move {
            if let Some(gate) = &f.gate {
                gate.notified().await;
            }
            log.fetched.lock().unwrap().push(req.url.clone());
            *log.last_headers.lock().unwrap() = Some(req.headers);
            let mut resp = Response::new(TestBody {
                chunks: f.chunks.into(),
                cut: f.cut,
                url: req.url,
                log: log.clone(),
            });
            *resp.status_mut() = http::StatusCode::from_u16(f.status).unwrap();
            if f.gzip {
                resp.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        }
    }

    async fn stored(&self, _req: FragmentRequest, _body: &[Piece]) -> Option<Bytes> {
        None
    }

    async fn decode(&self, stored: Bytes, limit: u64) -> Option<Bytes> {
        crate::http::gzip::gunzip(&stored, limit).ok()
    }

    fn allowed_hosts(&self) -> &[String] {
        &[]
    }

    fn event(&self, event: Event<'_>) {
        self.log.events.lock().unwrap().push(format!("{event:?}"));
    }
}

/// A page and its fragments.
struct Case {
    page: &'static str,
    frags: Vec<(&'static str, Frag)>,
    settings: Settings,
}

impl Case {
    fn new(page: &'static str) -> Case {
        Case {
            page,
            frags: Vec::new(),
            settings: Settings::default(),
        }
    }

    fn frag(mut self, url: &'static str, f: Frag) -> Case {
        self.frags.push((url, f));
        self
    }

    fn settings(mut self, f: impl FnOnce(&mut Settings)) -> Case {
        f(&mut self.settings);
        self
    }

    /// Assembles the page (at `/page` on `a.test`).
    fn assemble(self) -> (Assembled, Arc<Log>) {
        let log = Arc::new(Log::default());
        let source = MapSource {
            frags: self
                .frags
                .into_iter()
                .map(|(u, f)| (u.to_string(), f))
                .collect(),
            log: log.clone(),
        };
        let template = parse(
            &Bytes::from_static(self.page.as_bytes()),
            &Limits::default(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("a.test"));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert("cookie", HeaderValue::from_static("who=ann"));
        let page = PageRequest {
            host: "a.test",
            url: "/page",
            headers,
            above: None,
        };
        let out = assemble(source, self.settings, page, &template, log.gauge.clone());
        (out, log)
    }
}

/// The whole body, or what came before the error and the error.
async fn read(out: Assembled) -> Result<String, (String, String)> {
    let mut body = Vec::new();
    match out {
        Assembled::Ready(parts) => parts.iter().for_each(|p| body.extend_from_slice(p)),
        Assembled::Streaming(mut rx) => {
            while let Some(piece) = rx.recv().await {
                match piece {
                    Ok(p) => body.extend_from_slice(&p.bytes),
                    Err(e) => return Err((String::from_utf8(body).unwrap(), e.to_string())),
                }
            }
        }
    }
    Ok(String::from_utf8(body).unwrap())
}

/// Lets the engine's tasks run until `cond` holds (at most 5 s).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn fragments_leave_in_document_order_whatever_order_they_complete_in() {
    let gate = Arc::new(Notify::new());
    let (out, log) =
        Case::new("<a><esi:include src=\"/slow\"/><b><esi:include src=\"/quick\"/><c>")
            .frag("/slow", Frag::ok("SLOW").gated(&gate))
            .frag("/quick", Frag::ok("QUICK"))
            .assemble();
    let Assembled::Streaming(mut rx) = out else {
        panic!("fetched includes stream")
    };
    // What comes before the first pending include leaves at once.
    assert_eq!(&rx.recv().await.unwrap().unwrap().bytes[..], b"<a>");
    until("the quick fragment", || log.done() == ["/quick"]).await;
    assert!(rx.try_recv().is_err(), "nothing passes the pending include");
    gate.notify_one();
    let rest = read(Assembled::Streaming(rx)).await.unwrap();
    assert_eq!(rest, "SLOW<b>QUICK<c>");
    assert_eq!(log.done(), ["/quick", "/slow"]);
    // Fragment requests: the page's headers, Host set, no Accept-Encoding.
    let seen = log.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(seen.get(HOST).unwrap(), "a.test");
    assert_eq!(seen.get("cookie").unwrap(), "who=ann");
    assert!(seen.get(ACCEPT_ENCODING).is_none());
}

#[tokio::test]
async fn stored_fragments_make_a_ready_body() {
    let (out, log) = Case::new("<a><esi:include src=\"/s\"/><b>")
        .frag("/s", Frag::ok("S").stored(Stored::Body))
        .assemble();
    assert!(matches!(out, Assembled::Ready(_)));
    assert_eq!(read(out).await.unwrap(), "<a>S<b>");
    assert!(log.fetched().is_empty());
}

#[tokio::test]
async fn alt_is_fetched_when_src_fails() {
    let (out, log) = Case::new(
        "[<esi:include src=\"/broken\" alt=\"/alt\"/>|<esi:include src=\"http://elsewhere.test/x\" alt=\"/alt\"/>]",
    )
    .frag("/broken", Frag::ok("oops").status(500))
    .frag("/alt", Frag::ok("ALT"))
    .assemble();
    assert_eq!(read(out).await.unwrap(), "[ALT|ALT]");
    let events = log.events();
    assert!(events.iter().any(|e| e.starts_with("Status")), "{events:?}");
    assert!(
        events.iter().any(|e| e.starts_with("Refused")),
        "{events:?}"
    );
}

#[tokio::test]
async fn onerror_continue_drops_the_include() {
    let (out, _) =
        Case::new("<a><esi:include src=\"/missing\" onerror=\"continue\"/><b>").assemble();
    assert_eq!(read(out).await.unwrap(), "<a><b>");
}

#[tokio::test]
async fn a_failed_include_inserts_its_error_body_by_default() {
    let (out, _) = Case::new("<a><esi:include src=\"/missing\"/><b>").assemble();
    assert_eq!(read(out).await.unwrap(), "<a>not found<b>");
    // A body cut half-way inserts nothing of it.
    let mut cut = Frag::ok("half");
    cut.cut = true;
    let (out, log) = Case::new("<a><esi:include src=\"/cut\"/><b>")
        .frag("/cut", cut)
        .assemble();
    assert_eq!(read(out).await.unwrap(), "<a><b>");
    assert!(log.events().iter().any(|e| e.starts_with("Body")));
}

#[tokio::test]
async fn a_failed_include_aborts_the_page_when_set_to() {
    let (out, _) = Case::new("<a><esi:include src=\"/missing\"/><b>")
        .settings(|s| s.on_error = OnError::Abort)
        .assemble();
    let (before, error) = read(out).await.unwrap_err();
    assert_eq!(before, "<a>");
    assert_eq!(error, Aborted.to_string());
}

#[tokio::test]
async fn an_attempt_with_a_failed_include_is_replaced_by_except() {
    let page = "<a><esi:try><esi:attempt>[<esi:include src=\"/ok\"/><esi:include src=\"/missing\"/>]</esi:attempt><esi:except>EXCEPT<esi:include src=\"/ok\"/></esi:except></esi:try><b>";
    let (out, _) = Case::new(page).frag("/ok", Frag::ok("OK")).assemble();
    assert_eq!(read(out).await.unwrap(), "<a>EXCEPTOK<b>");
    // The same attempt when nothing fails, with onerror="continue" inside.
    let page = "<esi:try><esi:attempt>[<esi:include src=\"/ok\"/><esi:include src=\"/missing\" onerror=\"continue\"/>]</esi:attempt><esi:except>EXCEPT</esi:except></esi:try>";
    let (out, _) = Case::new(page).frag("/ok", Frag::ok("OK")).assemble();
    assert_eq!(read(out).await.unwrap(), "[OK]");
}

#[tokio::test]
async fn a_stored_esi_fragment_is_planned_in_place_with_its_own_includes() {
    let (out, log) = Case::new("<a><esi:include src=\"/box\"/><b>")
        .frag(
            "/box",
            Frag::ok("(<esi:include src=\"inner\"/><esi:vars>$(HTTP_COOKIE{who})</esi:vars>)")
                .stored(Stored::Page),
        )
        .frag("/inner", Frag::ok("INNER"))
        .assemble();
    // `inner` resolves against the fragment's URL; the cookie is the
    // client's.
    assert_eq!(read(out).await.unwrap(), "<a>(INNERann)<b>");
    assert_eq!(log.fetched(), ["/inner"]);
}

#[tokio::test]
async fn loops_are_refused_and_the_page_goes_on() {
    let (out, log) = Case::new("<a><esi:include src=\"/page\"/><esi:include src=\"/box\"/><b>")
        .frag(
            "/box",
            Frag::ok("[<esi:include src=\"/page\"/>]").stored(Stored::Page),
        )
        .assemble();
    assert_eq!(read(out).await.unwrap(), "<a>[]<b>");
    assert!(log.fetched().is_empty());
    let loops = log
        .events()
        .iter()
        .filter(|e| e.starts_with("Loop"))
        .count();
    assert_eq!(loops, 2, "{:?}", log.events());
}

#[tokio::test]
async fn includes_deeper_than_max_depth_are_not_fetched() {
    let (out, log) = Case::new("0<esi:include src=\"/1\"/>")
        .frag(
            "/1",
            Frag::ok("1<esi:include src=\"/2\"/>").stored(Stored::Page),
        )
        .frag(
            "/2",
            Frag::ok("2<esi:include src=\"/3\"/>").stored(Stored::Page),
        )
        .frag("/3", Frag::ok("3"))
        .settings(|s| s.max_depth = 1)
        .assemble();
    assert_eq!(read(out).await.unwrap(), "01");
    assert!(log.fetched().is_empty());
    assert!(log.events().iter().any(|e| e.starts_with("TooDeep")));
}

#[tokio::test]
async fn gzipped_fragments_are_inserted_decoded() {
    let (out, log) = Case::new("<esi:include src=\"/z\"/>|<esi:include src=\"/sz\"/>")
        .frag("/z", Frag::ok("fetched").gzip())
        .frag("/sz", Frag::ok("stored").gzip().stored(Stored::Gzip))
        .assemble();
    assert_eq!(read(out).await.unwrap(), "fetched|stored");
    assert_eq!(log.fetched(), ["/z"]);
    // Beyond max_fragment_size once decoded: the include fails.
    let (out, log) = Case::new("[<esi:include src=\"/z\"/>|<esi:include src=\"/sz\"/>]")
        .frag("/z", Frag::ok(&"x".repeat(100)).gzip())
        .frag(
            "/sz",
            Frag::ok(&"y".repeat(100)).gzip().stored(Stored::Gzip),
        )
        .settings(|s| s.max_fragment_size = 50)
        .assemble();
    assert_eq!(read(out).await.unwrap(), "[|]");
    let events = log.events();
    assert!(events.iter().any(|e| e.starts_with("Body")), "{events:?}");
    assert!(
        events.iter().any(|e| e.starts_with("TooLarge")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_at_most_max_buffered() {
    const CHUNK: usize = 1024;
    const CHUNKS: usize = 64;
    const BUDGET: u64 = 8 * CHUNK as u64;
    let big = |c: u8| Frag {
        chunks: vec![Bytes::from(vec![c; CHUNK]); CHUNKS],
        ..Frag::ok("")
    };
    let (out, log) = Case::new(
        "<esi:include src=\"/0\"/><esi:include src=\"/1\"/><esi:include src=\"/2\"/><esi:include src=\"/3\"/>",
    )
    .frag("/0", big(b'0'))
    .frag("/1", big(b'1'))
    .frag("/2", big(b'2'))
    .frag("/3", big(b'3'))
    .settings(|s| s.max_buffered = BUDGET)
    .assemble();
    // Nothing is read: the first include is the client's (its turn) and
    // fills the channel; the others read only as far as the budget lets
    // them, plus the one chunk each waits to charge.
    until("the budget to fill", || {
        log.gauge.load(Ordering::Relaxed) == BUDGET
    })
    .await;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    let frames = log.frames.load(Ordering::Relaxed);
    assert!(
        frames <= CHUNKS + 8 + 3,
        "read {frames} chunks for a client that reads nothing"
    );
    assert_eq!(log.gauge.load(Ordering::Relaxed), BUDGET);
    let body = read(out).await.unwrap();
    let expected: String = "0123"
        .chars()
        .map(|c| c.to_string().repeat(CHUNK * CHUNKS))
        .collect();
    assert!(body == expected, "the page arrives whole and in order");
    assert!(log.max_gauge.load(Ordering::Relaxed) <= BUDGET);
    until("the charges to be released", || {
        log.gauge.load(Ordering::Relaxed) == 0
    })
    .await;
}
