//! The two regular-expression engines on typical VCL patterns:
//! `cargo bench -p vcl-lite --bench regex`.
//!
//! vcl-lite compiles a pattern with `regex` (linear time) and falls back to
//! `fancy-regex` (backtracking) only when the pattern needs PCRE-only
//! syntax. This measures what that choice costs: compile and match time of
//! both engines on patterns both accept, and of `fancy-regex` on the
//! PCRE-only ones real policies use.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

/// Patterns both engines accept, with a subject each.
const PLAIN: &[(&str, &str, &str)] = &[
    (
        "static_ext",
        r"(?i)\.(jpg|jpeg|png|gif|ico|css|js|woff2?)(\?.*)?$",
        "/wp-content/themes/x/style.min.css?ver=6.4.2",
    ),
    ("strip_slash", r"^/(.*?)/?$", "/blog/2024/05/hello-world/"),
    (
        "tracking_cookies",
        r"(^|;\s*)(_ga|_gid|_gat|__utm[a-z]+|_fbp)=[^;]*",
        "_ga=GA1.2.3; session=abc; _gid=GA1.2.4; __utmz=1.2; theme=dark",
    ),
];

/// Patterns only the backtracking engine accepts.
const PCRE: &[(&str, &str, &str)] = &[
    (
        "wordpress_look_ahead",
        "wordpress_(?!test_cookie)[a-zA-Z0-9_]+|wp-postpass_[a-zA-Z0-9_]+",
        "wordpress_logged_in_abc=1; wordpress_test_cookie=WP; wp-postpass_x=2; other=3",
    ),
    (
        "back_reference",
        r"/(\w+)/\1(/|$)",
        "/api/api/v2/users/1234/orders",
    ),
    (
        "look_behind",
        r"(?<=/)v\d+/",
        "/service/v2/users/1234/orders",
    ),
];

fn engines(c: &mut Criterion) {
    for (name, pattern, subject) in PLAIN {
        c.bench_function(&format!("compile/{name}/regex"), |b| {
            b.iter(|| regex::Regex::new(black_box(pattern)).expect("valid"))
        });
        c.bench_function(&format!("compile/{name}/fancy"), |b| {
            b.iter(|| fancy_regex::Regex::new(black_box(pattern)).expect("valid"))
        });
        let linear = regex::Regex::new(pattern).expect("valid");
        let fancy = fancy_regex::Regex::new(pattern).expect("valid");
        c.bench_function(&format!("replace_all/{name}/regex"), |b| {
            b.iter(|| linear.replace_all(black_box(subject), "").len())
        });
        c.bench_function(&format!("replace_all/{name}/fancy"), |b| {
            b.iter(|| fancy.replace_all(black_box(subject), "").len())
        });
    }
    for (name, pattern, subject) in PCRE {
        assert!(regex::Regex::new(pattern).is_err(), "{name}");
        c.bench_function(&format!("compile/{name}/fancy"), |b| {
            b.iter(|| fancy_regex::Regex::new(black_box(pattern)).expect("valid"))
        });
        let fancy = fancy_regex::Regex::new(pattern).expect("valid");
        c.bench_function(&format!("replace_all/{name}/fancy"), |b| {
            b.iter(|| fancy.replace_all(black_box(subject), "").len())
        });
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
