//! Throughput of the ESI parser (`lacquer::esi::parse::parse`), which runs
//! once per stored ESI body: `cargo bench --bench esi_parse`.
//!
//! Two inputs of about 100 KiB, generated here (no files, same bytes on
//! every run):
//!
//! * `page-50-tags`: an HTML page with 50 ESI tags: 28 plain
//!   `<esi:include src="/frag/N"/>`, 4 `<esi:vars>` with `$(HTTP_COOKIE{id})`,
//!   3 `<esi:remove>`, 3 `<!--esi … -->` blocks (2 holding an include), one
//!   `<esi:try>` (attempt + except, an include in each) and one `<esi:choose>`
//!   (`test="$(HTTP_HOST)=='x'"` + otherwise, an include in each): 34 includes;
//! * `plain-html`: the same kind of HTML with no ESI at all.
//!
//! Criterion reports the time per parse and the throughput in MiB/s.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lacquer::esi::parse::{parse, Limits, Template};

/// Size of both inputs, give or take one filler block.
const TARGET: usize = 100 * 1024;
/// ESI tags (opening tags and `<!--esi`, not closing tags) in the page.
const ESI_TAGS: usize = 50;
/// `<esi:include>`s in the page, in every branch.
const INCLUDES: usize = 34;

/// One block of ordinary markup, varied by `i`: a product card, an article
/// paragraph, a link list or a comment, as found on a shop or news page.
fn filler_block(i: usize, out: &mut String) {
    use std::fmt::Write;
    let _ = match i % 4 {
        0 => writeln!(
            out,
            "<div class=\"card card-{i}\" data-id=\"{i}\">\n  <a href=\"/product/{i}?ref=home\">\
             <img src=\"/img/p{i}.jpg\" alt=\"Product {i}\" width=\"240\" height=\"180\" loading=\"lazy\"></a>\n  \
             <h3 class=\"title\">Product number {i}</h3>\n  <p class=\"price\">&euro; {}.{:02}</p>\n  \
             <button type=\"button\" class=\"btn add\" data-sku=\"SKU-{i:05}\">Add to cart</button>\n</div>",
            i % 97 + 3,
            i % 100
        ),
        1 => writeln!(
            out,
            "<p>Lorem ipsum dolor sit amet, <em>consectetur</em> adipiscing elit, sed do eiusmod \
             tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
             nostrud exercitation <a href=\"/article/{i}\">ullamco laboris</a> nisi ut aliquip ex ea \
             commodo consequat &amp; duis aute irure dolor in reprehenderit (section {i}).</p>"
        ),
        2 => writeln!(
            out,
            "<ul class=\"links\">\n  <li><a href=\"/c/{i}/a\">Category {i} A</a></li>\n  \
             <li><a href=\"/c/{i}/b\">Category {i} B</a></li>\n  <li><a href=\"/c/{i}/c\">Category \
             {i} C</a></li>\n</ul>\n<script>window.dataLayer&&dataLayer.push({{slot:{i},t:\"view\"}});</script>"
        ),
        _ => writeln!(
            out,
            "<!-- block {i}: rendered by the CMS, cache 300 s -->\n<section id=\"s{i}\" \
             class=\"row\"><span class=\"badge\">New</span> <strong>Offer {i}</strong> &mdash; \
             <time datetime=\"2024-05-{:02}\">May {}</time></section>",
            i % 28 + 1,
            i % 28 + 1
        ),
    };
}

/// The `n`th ESI construct of the page (0 ≤ n < 40 constructs, 50 tags).
fn esi_construct(n: usize, out: &mut String) {
    let s = match n {
        // One try with an include in each branch: 5 tags, 2 includes.
        5 => "<esi:try>\n  <esi:attempt><esi:include src=\"/frag/recommendations\" \
              alt=\"/frag/recommendations-lite\"/></esi:attempt>\n  <esi:except>\
              <esi:include src=\"/frag/recommendations-static\" onerror=\"continue\"/>\
              </esi:except>\n</esi:try>\n"
            .to_owned(),
        // One choose on the host: 5 tags, 2 includes.
        20 => "<esi:choose>\n  <esi:when test=\"$(HTTP_HOST)=='x'\">\
               <esi:include src=\"/frag/banner-x\"/></esi:when>\n  <esi:otherwise>\
               <esi:include src=\"/frag/banner\"/></esi:otherwise>\n</esi:choose>\n"
            .to_owned(),
        // Fallback markup for clients without ESI: 3 tags.
        2 | 17 | 31 => format!(
            "<esi:remove><a href=\"/frag/{n}\">Open block {n}</a> (shown without ESI)</esi:remove>\n"
        ),
        // Hidden-from-browsers ESI: two with an include (2 tags each), one without.
        9 | 26 => format!(
            "<!--esi\n<div class=\"personal\"><esi:include src=\"/frag/personal/{n}\"/></div>\n-->\n"
        ),
        35 => "<!--esi <p class=\"esi-on\">Assembled by the edge.</p> -->\n".to_owned(),
        // Variables in text: 4 tags.
        12 | 23 | 30 | 38 => format!(
            "<esi:vars><span class=\"user\" data-slot=\"{n}\">Hello, user $(HTTP_COOKIE{{id}})\
             </span></esi:vars>\n"
        ),
        // The rest: plain includes, 28 tags.
        _ => format!("<esi:include src=\"/frag/{n}\"/>\n"),
    };
    out.push_str(&s);
}

/// Ordinary HTML up to at least `len` bytes, blocks numbered from `*block`.
fn filler(out: &mut String, len: usize, block: &mut usize) {
    let end = out.len() + len;
    while out.len() < end {
        filler_block(*block, out);
        *block += 1;
    }
}

fn head(out: &mut String) {
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Shop &ndash; Home</title>\n<link rel=\"stylesheet\" href=\"/assets/app.css?v=3\">\n\
         <script src=\"/assets/app.js?v=3\" defer></script>\n</head>\n<body>\n",
    );
}

/// The page with 50 ESI tags spread evenly through ~100 KiB of HTML.
fn esi_page() -> String {
    const CONSTRUCTS: usize = 40;
    let mut out = String::with_capacity(TARGET + 4096);
    head(&mut out);
    let mut block = 0;
    // 40 constructs take about 4 KiB; the filler makes up the rest.
    let gap = (TARGET - 4 * 1024) / (CONSTRUCTS + 1);
    for n in 0..CONSTRUCTS {
        filler(&mut out, gap, &mut block);
        esi_construct(n, &mut out);
    }
    let rest = TARGET.saturating_sub(out.len() + 16);
    filler(&mut out, rest, &mut block);
    out.push_str("</body>\n</html>\n");
    out
}

/// ~100 KiB of the same HTML, no ESI.
fn plain_page() -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    head(&mut out);
    let mut block = 0;
    let rest = TARGET.saturating_sub(out.len() + 16);
    filler(&mut out, rest, &mut block);
    out.push_str("</body>\n</html>\n");
    out
}

/// Checks, once and untimed, that the parser sees what the page holds, so
/// that the bench cannot quietly measure a page the parser rejects.
fn check(name: &str, body: &Bytes, t: &Template, includes: usize) {
    assert!(
        t.diagnostics.is_empty(),
        "{name}: unexpected diagnostics: {:?}",
        t.diagnostics
    );
    assert_eq!(t.includes, includes, "{name}: includes in the template");
    if includes == 0 {
        assert!(t.is_static(), "{name}: a page with no ESI must be static");
    } else {
        let text = std::str::from_utf8(body).expect("generated pages are UTF-8");
        let tags = text.matches("<esi:").count() + text.matches("<!--esi").count();
        assert_eq!(tags, ESI_TAGS, "{name}: ESI tags generated");
        assert!(!t.is_static(), "{name}: ESI page parsed as static");
    }
}

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let inputs = [
        ("page-50-tags", Bytes::from(esi_page()), INCLUDES),
        ("plain-html", Bytes::from(plain_page()), 0),
    ];
    let mut group = c.benchmark_group("esi_parse");
    for (name, body, includes) in &inputs {
        check(name, body, &parse(body, &limits), *includes);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| parse(black_box(body), black_box(&limits)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
