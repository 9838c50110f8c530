//! Speed and ratio of the encoders lacquer stores bodies with
//! (`lacquer::http::coding::Encoder`: gzip, brotli, zstd), on a 16 KiB
//! and a 1 MiB text body: `cargo bench --bench compression`.
//!
//! The input is HTML-like text generated here (words of a small
//! vocabulary in paragraphs and links, the same bytes on every run), or
//! the first 16 KiB / 1 MiB of the file `LACQUER_BENCH_TEXT` names (at
//! least 1 MiB long). Each case is compressed once first: its size and
//! ratio are printed, and it must decode back to the input.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lacquer::http::coding::{decode, Encoder};

/// HTML-like text of `n` bytes: words picked by a xorshift PRNG, in
/// paragraphs, divs and list items with links.
fn generated(n: usize) -> Vec<u8> {
    use std::fmt::Write;
    const WORDS: &[&str] = &[
        "the", "cache", "of", "and", "response", "origin", "request", "header", "to", "a", "in",
        "is", "body", "client", "stored", "object", "fresh", "stale", "grace", "page", "include",
        "fragment", "content", "encoding", "with", "for", "that", "on", "as", "it", "be", "by",
        "this", "from", "at", "or", "not", "are", "time", "product", "price", "cart", "news",
        "article", "author", "today", "weather", "sport", "market", "city", "report", "update",
        "video", "photo", "comment", "share", "more",
    ];
    let mut x = 0x2545_f491_u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = String::with_capacity(n + 512);
    let mut i = 0;
    while out.len() < n {
        i += 1;
        let _ = match next() % 3 {
            0 => write!(out, "<li><a href=\"/item/{}\">", next() % 100_000),
            1 => write!(out, "<p class=\"p{}\">", next() % 7),
            _ => write!(out, "<div>"),
        };
        for _ in 0..5 + next() % 30 {
            out.push_str(WORDS[next() as usize % WORDS.len()]);
            out.push(' ');
        }
        let _ = writeln!(out, "{i}</p>");
    }
    out.truncate(n);
    out.into_bytes()
}

fn input(n: usize) -> Vec<u8> {
    match std::env::var_os("LACQUER_BENCH_TEXT") {
        Some(path) => {
            let all = std::fs::read(&path).expect("LACQUER_BENCH_TEXT is readable");
            assert!(all.len() >= n, "LACQUER_BENCH_TEXT: at least {n} bytes");
            all[..n].to_vec()
        }
        None => generated(n),
    }
}

fn bench_encoders(c: &mut Criterion) {
    let encoders = [
        ("gzip-1", Encoder::Gzip(1)),
        ("gzip-6", Encoder::Gzip(6)),
        ("br-4", Encoder::Br(4)),
        ("br-5", Encoder::Br(5)),
        ("br-6", Encoder::Br(6)),
        ("zstd", Encoder::Zstd),
    ];
    for (size, n) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let body = input(n);
        let mut group = c.benchmark_group(format!("encode-{size}"));
        group.throughput(Throughput::Bytes(n as u64));
        if n > 1 << 16 {
            group.sample_size(10);
        }
        for (name, enc) in encoders {
            let coded = enc.encode(&body).expect("encodes");
            let back = decode(enc.coding(), &coded, n as u64).expect("decodes");
            assert_eq!(&back[..], &body[..], "{name}: round trip");
            println!(
                "{size} {name}: {} bytes, ratio {:.2}",
                coded.len(),
                n as f64 / coded.len() as f64
            );
            group.bench_function(name, |b| b.iter(|| enc.encode(black_box(&body))));
        }
        group.finish();
    }
}

criterion_group!(benches, bench_encoders);
criterion_main!(benches);
