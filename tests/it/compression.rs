//! Content codings: `Accept-Encoding` normalised so `Vary: Accept-Encoding`
//! does not split the cache, one stored copy for every client (decoded for
//! those that do not accept its coding), ranges on the delivered bytes,
//! compression on store, and `compression.enabled = false`.

use crate::common::*;

/// Text that compresses well, `n` bytes.
fn text(n: usize) -> Vec<u8> {
    let line = b"lacquer compresses text once, when it stores it; hits cost nothing.\n";
    line.iter().copied().cycle().take(n).collect()
}

/// An origin route that gzips when asked (as nginx with `gzip on`),
/// with `Vary: Accept-Encoding` and a strong `ETag`.
fn gzipping_origin(origin: &Origin, path: &str, body: Vec<u8>) {
    let zipped = gzip(&body);
    origin.route(path, move |seen, _| {
        let r = Reply::new(200)
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .header("vary", "Accept-Encoding")
            .header("etag", "\"v1\"");
        if seen.header_or_none("accept-encoding").contains("gzip") {
            r.header("content-encoding", "gzip").body(zipped.clone())
        } else {
            r.body(body.clone())
        }
    });
}

#[tokio::test]
async fn one_origin_fetch_serves_gzip_and_identity_clients() {
    let origin = Origin::start().await;
    let body = text(20_000);
    gzipping_origin(&origin, "/t", body.clone());
    let lq = lacquer_for(&origin).await;

    // An identity client's miss: the origin was asked for gzip (one copy
    // for everybody), the client gets it decoded as it streams.
    let first = get(lq.addr(), "/t").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, body);
    assert_eq!(first.header("content-encoding"), None);
    assert_eq!(first.header("etag"), Some("W/\"v1\""));
    assert_eq!(
        origin.last("/t").unwrap().header_or_none("accept-encoding"),
        "gzip"
    );
    wait_stored(&lq, "/t").await;

    for ae in ["gzip", "GZIP;q=0.5, deflate", "br, gzip", "*", "x-gzip"] {
        let g = get_with(lq.addr(), "/t", &[("accept-encoding", ae)]).await;
        assert!(is_hit(&g), "{ae}: {}", g.x_cache());
        assert_eq!(g.header("content-encoding"), Some("gzip"), "{ae}");
        assert_eq!(gunzip(&g.body), body, "{ae}");
        assert_eq!(g.header("content-length"), Some(&*g.body.len().to_string()));
        assert_eq!(g.header("etag"), Some("\"v1\""), "the origin's own coding");
        assert!(g.header("vary").unwrap().contains("Accept-Encoding"));
    }
    for ae in [
        None,
        Some("br"),
        Some("gzip;q=0"),
        Some("identity"),
        Some("*, gzip;q=0"),
    ] {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
        let g = get_with(lq.addr(), "/t", &headers).await;
        assert!(is_hit(&g), "{ae:?}: {}", g.x_cache());
        assert_eq!(g.header("content-encoding"), None, "{ae:?}");
        assert_eq!(g.body, body, "{ae:?}");
        assert_eq!(g.header("content-length"), Some(&*body.len().to_string()));
        assert_eq!(g.header("etag"), Some("W/\"v1\""), "lacquer decoded it");
        let head = send(lq.addr(), "HEAD", "/t", &headers, "").await;
        assert_eq!(head.header("content-length"), g.header("content-length"));
        assert_eq!(head.header("content-encoding"), None);
        assert!(head.body.is_empty());
    }
    assert_eq!(origin.hits("/t"), 1, "one origin fetch for every encoding");
    // The miss decoded its stream on the way; the hits decoded the stored
    // copy once, for all of them.
    assert_eq!(metric(&lq, "lacquer_body_decodes_total"), 1);
}

#[tokio::test]
async fn ranges_apply_to_the_bytes_delivered() {
    let origin = Origin::start().await;
    let body = text(50_000);
    gzipping_origin(&origin, "/r", body.clone());
    let lq = lacquer_for(&origin).await;
    let (_, gz) = get_twice(&lq, "/r", &[("accept-encoding", "gzip")]).await;
    assert!(is_hit(&gz));
    let zipped = gz.body.clone();

    let plain = get_with(lq.addr(), "/r", &[("range", "bytes=1000-1999")]).await;
    assert_eq!(plain.status, 206);
    assert_eq!(plain.body, body[1000..2000]);
    assert_eq!(
        plain.header("content-range"),
        Some(&*format!("bytes 1000-1999/{}", body.len()))
    );
    assert_eq!(plain.header("content-encoding"), None);

    let coded = get_with(
        lq.addr(),
        "/r",
        &[("range", "bytes=10-19"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(coded.status, 206);
    assert_eq!(
        coded.body,
        zipped[10..20],
        "a range of the gzip bytes, as Varnish"
    );
    assert_eq!(coded.header("content-encoding"), Some("gzip"));
    assert_eq!(
        coded.header("content-range"),
        Some(&*format!("bytes 10-19/{}", zipped.len()))
    );
    let past = get_with(
        lq.addr(),
        "/r",
        &[("range", &*format!("bytes={}-", body.len()))],
    )
    .await;
    assert_eq!(past.status, 416);
    assert_eq!(origin.hits("/r"), 1);
}

#[tokio::test]
async fn passes_forward_the_clients_own_accept_encoding() {
    let origin = Origin::start().await;
    route_with(&origin, "/p", 200, &[]);
    let lq = lacquer_for(&origin).await;
    let got = send(
        lq.addr(),
        "POST",
        "/p",
        &[("accept-encoding", "br;q=1, deflate")],
        "x",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        origin.last("/p").unwrap().header_or_none("accept-encoding"),
        "br;q=1, deflate"
    );
}

#[tokio::test]
async fn a_coalesced_identity_client_reads_the_gzip_stream_decoded() {
    let origin = Origin::start().await;
    let chunk = text(4096);
    let whole: Vec<u8> = chunk.repeat(8);
    let zipped = gzip(&whole);
    origin.route("/slow", move |_, _| {
        Reply::new(200)
            .header("cache-control", "max-age=600")
            .header("content-encoding", "gzip")
            .body(zipped.clone())
            .delay(std::time::Duration::from_millis(200))
    });
    let lq = lacquer_for(&origin).await;
    let addr = lq.addr();
    let coded =
        tokio::spawn(async move { get_with(addr, "/slow", &[("accept-encoding", "gzip")]).await });
    sleep_ms(50).await;
    let plain = get(addr, "/slow").await;
    let coded = coded.await.unwrap();
    assert_eq!(plain.body, whole);
    assert_eq!(gunzip(&coded.body), whole);
    assert_eq!(origin.hits("/slow"), 1);
}

#[tokio::test]
async fn a_stored_body_that_does_not_decode_is_a_502_for_identity_clients() {
    let origin = Origin::start().await;
    origin.route("/bad", |_, _| {
        Reply::ok("not gzip at all")
            .header("cache-control", "max-age=600")
            .header("content-encoding", "gzip")
    });
    let lq = lacquer_for(&origin).await;
    let (_, coded) = get_twice(&lq, "/bad", &[("accept-encoding", "gzip")]).await;
    assert_eq!(coded.body, "not gzip at all", "delivered as stored");
    let plain = get(lq.addr(), "/bad").await;
    assert_eq!(plain.status, 502);
    assert_eq!(origin.hits("/bad"), 1);
}

#[tokio::test]
async fn without_compression_support_accept_encoding_is_a_header_like_any_other() {
    let origin = Origin::start().await;
    gzipping_origin(&origin, "/off", text(5000));
    let lq = lacquer_with(&origin, |c| c.compression.enabled = false).await;
    let (_, a) = get_twice(&lq, "/off", &[("accept-encoding", "gzip, br")]).await;
    assert!(is_hit(&a));
    assert_eq!(
        origin
            .last("/off")
            .unwrap()
            .header_or_none("accept-encoding"),
        "gzip, br"
    );
    let b = get(lq.addr(), "/off").await;
    assert_eq!(b.x_cache(), "MISS", "another variant");
    assert_eq!(b.header("content-encoding"), None);
    assert_eq!(origin.hits("/off"), 2);
}

/// The stored body of `url` (the one variant).
fn stored_body(lq: &lacquer::server::Running, url: &str) -> bytes::Bytes {
    lq.proxy
        .store()
        .objects()
        .find(|(_, o)| &*o.url == url)
        .map(|(_, o)| o.body.clone())
        .expect("stored")
}

/// An origin route sending `body` uncoded, whatever the request accepts.
fn plain_origin(
    origin: &Origin,
    path: &str,
    content_type: &'static str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    origin.route(path, move |seen, _| {
        if seen.header_or_none("if-none-match") == "\"e1\"" {
            return Reply::new(304)
                .header("cache-control", "max-age=1")
                .header("etag", "\"e1\"");
        }
        let mut r = Reply::ok(body.clone())
            .header("content-type", content_type)
            .header("etag", "\"e1\"");
        // One second (tests that expire it move lacquer's clock) unless the
        // route says otherwise.
        if !extra.iter().any(|(k, _)| k == "cache-control") {
            r = r.header("cache-control", "max-age=1");
        }
        for (k, v) in &extra {
            r = r.header(k, v);
        }
        r
    });
}

#[tokio::test]
async fn compressible_text_is_gzipped_once_when_stored() {
    let origin = Origin::start().await;
    let body = text(16 << 10);
    plain_origin(&origin, "/c", "text/html; charset=utf-8", body.clone(), &[]);
    let lq = lacquer_no_grace(&origin).await;

    // The miss is compressed as it streams for a client that takes gzip.
    let miss = get_with(lq.addr(), "/c", &[("accept-encoding", "gzip")]).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(miss.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&miss.body), body);
    assert_eq!(miss.header("etag"), Some("W/\"e1\""));
    assert_eq!(miss.header("vary"), Some("Accept-Encoding"));
    wait_stored(&lq, "/c").await;
    let stored = stored_body(&lq, "/c");
    assert!(
        stored.len() < body.len() / 4,
        "stored {} bytes",
        stored.len()
    );
    assert_eq!(gunzip(&stored), body);

    let hit = get_with(lq.addr(), "/c", &[("accept-encoding", "gzip, deflate, br")]).await;
    assert!(is_hit(&hit), "{}", hit.x_cache());
    assert_eq!(hit.header("content-encoding"), Some("gzip"));
    assert_eq!(hit.body, stored, "the stored bytes, not compressed again");
    assert_eq!(
        hit.header("content-length"),
        Some(&*stored.len().to_string())
    );
    assert_eq!(
        hit.header("etag"),
        Some("W/\"e1\""),
        "lacquer changed the coding"
    );
    assert_eq!(hit.header("vary"), Some("Accept-Encoding"));
    let head = send(lq.addr(), "HEAD", "/c", &[("accept-encoding", "gzip")], "").await;
    assert_eq!(head.header("content-length"), hit.header("content-length"));
    assert_eq!(head.header("content-encoding"), Some("gzip"));

    assert_eq!(metric(&lq, "lacquer_store_compressions_total"), 1);
    let plain = get(lq.addr(), "/c").await;
    assert!(is_hit(&plain));
    assert_eq!(plain.body, body);
    assert_eq!(
        plain.header("etag"),
        Some("\"e1\""),
        "the origin's own bytes"
    );
    assert_eq!(
        plain.header("content-length"),
        Some(&*body.len().to_string())
    );

    // A client's weak validator matches; the origin is asked with its own.
    let cond = get_with(
        lq.addr(),
        "/c",
        &[("accept-encoding", "gzip"), ("if-none-match", "W/\"e1\"")],
    )
    .await;
    assert_eq!(cond.status, 304);
    expire(&lq, &origin).await;
    let again = get_with(lq.addr(), "/c", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        origin.last("/c").unwrap().header_or_none("if-none-match"),
        "\"e1\""
    );
    assert_eq!(again.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&again.body), body);
    assert_eq!(origin.hits("/c"), 2);
}

#[tokio::test]
async fn what_is_not_compressed() {
    let origin = Origin::start().await;
    let big = text(8 << 10);
    // Fresh for the whole test: a one-second lifetime can end between the
    // two requests on a loaded machine (Date has whole seconds).
    let fresh = [("cache-control", "max-age=600")];
    plain_origin(&origin, "/png", "image/png", big.clone(), &fresh);
    plain_origin(&origin, "/small", "text/plain", text(500), &fresh);
    plain_origin(
        &origin,
        "/nt",
        "text/plain",
        big.clone(),
        &[("cache-control", "no-transform, max-age=600")],
    );
    let zipped = gzip(&big);
    origin.route("/coded", move |_, _| {
        Reply::ok(zipped.clone())
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
    });
    let lq = lacquer_for(&origin).await;
    for path in ["/png", "/small", "/nt"] {
        let (miss, hit) = get_twice(&lq, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(miss.header("content-encoding"), None, "{path}");
        assert!(is_hit(&hit), "{path}");
        assert_eq!(hit.header("content-encoding"), None, "{path}");
        assert_eq!(hit.header("etag"), Some("\"e1\""), "{path}");
    }
    let (_, coded) = get_twice(&lq, "/coded", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gunzip(&coded.body), big, "not coded twice");

    let origin2 = Origin::start().await;
    plain_origin(&origin2, "/t", "text/plain", big.clone(), &[]);
    let off = lacquer_with(&origin2, |c| c.compression.types.clear()).await;
    let (miss, hit) = get_twice(&off, "/t", &[("accept-encoding", "gzip")]).await;
    assert_eq!(miss.header("content-encoding"), None);
    assert_eq!(
        hit.header("content-encoding"),
        None,
        "compression.types = []"
    );
    assert_eq!(hit.body, big);
}

#[tokio::test]
async fn a_policy_gzips_any_type_or_stores_decoded() {
    let origin = Origin::start().await;
    let big = text(8 << 10);
    plain_origin(
        &origin,
        "/data.bin",
        "application/octet-stream",
        big.clone(),
        &[],
    );
    let zipped = gzip(&big);
    origin.route("/z.txt", move |_, _| {
        Reply::ok(zipped.clone())
            .header("cache-control", "max-age=600")
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .header("etag", "\"z\"")
    });
    let lq = with_policy(
        origin.addr,
        r#"
        vcl 4.1;
        sub vcl_backend_response {
            set beresp.http.x-was-gzip = beresp.do_gzip;
            if (bereq.url ~ "\.bin$") { set beresp.do_gzip = true; }
            if (bereq.url ~ "^/z") { set beresp.do_gunzip = true; }
        }
        "#,
    )
    .await;
    let (_, bin) = get_twice(&lq, "/data.bin", &[("accept-encoding", "gzip")]).await;
    assert!(is_hit(&bin));
    assert_eq!(
        bin.header("content-encoding"),
        Some("gzip"),
        "do_gzip: any type"
    );
    assert_eq!(gunzip(&bin.body), big);
    assert_eq!(bin.header("x-was-gzip"), Some("false"));
    assert!(stored_body(&lq, "/data.bin").len() < big.len() / 2);

    let (_, z) = get_twice(&lq, "/z.txt", &[("accept-encoding", "gzip")]).await;
    assert!(is_hit(&z));
    assert_eq!(
        z.header("content-encoding"),
        None,
        "do_gunzip: stored decoded"
    );
    assert_eq!(z.body, big);
    assert_eq!(z.header("etag"), Some("W/\"z\""));
    assert_eq!(stored_body(&lq, "/z.txt").len(), big.len());
    assert_eq!(origin.hits("/data.bin") + origin.hits("/z.txt"), 2);
}

#[tokio::test]
async fn esi_pages_are_gzipped_at_delivery_for_clients_that_accept_it() {
    let origin = Origin::start().await;
    let esi_page = |origin: &Origin, path: &str, body: String| {
        origin.route(path, move |_, _| {
            Reply::ok(body.clone())
                .header("surrogate-control", "content=\"ESI/1.0\"")
                .header("content-type", "text/html")
                .header("cache-control", "max-age=60")
                .header("etag", "\"p\"")
        });
    };
    let filler = String::from_utf8(text(4000)).unwrap();
    esi_page(
        &origin,
        "/page",
        format!("<p>{filler}<esi:include src=\"/f\"/></p>"),
    );
    esi_page(
        &origin,
        "/slow-page",
        format!("<p>{filler}<esi:include src=\"/slow\"/>end</p>"),
    );
    origin.route("/f", |_, n| {
        Reply::ok(format!("FRAG#{n}")).header("cache-control", "max-age=60")
    });
    origin.route("/slow", |_, _| {
        Reply::ok("SLOW")
            .header("cache-control", "no-store")
            .delay(std::time::Duration::from_millis(100))
    });
    let lq = lacquer_for(&origin).await;
    let want = format!("<p>{filler}FRAG#1</p>");
    let (_, plain) = get_twice(&lq, "/page", &[]).await;
    assert_eq!(plain.text(), want);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.header("vary").unwrap().contains("Accept-Encoding"));

    // Every part at hand: gzip'd in one go, with its length.
    let coded = get_with(lq.addr(), "/page", &[("accept-encoding", "gzip")]).await;
    assert!(is_hit(&coded), "{}", coded.x_cache());
    assert_eq!(coded.header("content-encoding"), Some("gzip"));
    assert_eq!(coded.header("etag"), Some("W/\"p\""));
    assert_eq!(
        coded.header("content-length"),
        Some(&*coded.body.len().to_string())
    );
    assert_eq!(gunzip(&coded.body), want.as_bytes());
    assert!(coded.body.len() < want.len() / 2);
    let head = send(
        lq.addr(),
        "HEAD",
        "/page",
        &[("accept-encoding", "gzip")],
        "",
    )
    .await;
    assert_eq!(head.header("content-encoding"), Some("gzip"));

    // Streamed while a fragment is fetched: gzip'd as it goes.
    let (_, slow) = get_twice(&lq, "/slow-page", &[("accept-encoding", "gzip")]).await;
    assert_eq!(slow.header("content-encoding"), Some("gzip"));
    assert_eq!(
        gunzip(&slow.body),
        format!("<p>{filler}SLOWend</p>").as_bytes()
    );
    // Fragments were fetched once each (fragments are not compressed).
    assert_eq!(origin.hits("/f"), 1);
    assert_eq!(origin.hits("/page"), 1);
}

/// `data` as brotli uncompressed meta-blocks (RFC 7932 §9.2): window bits
/// 16, one meta-block of raw bytes, then an empty last one.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    assert!(!data.is_empty() && data.len() <= 1 << 16);
    let header = ((data.len() as u32 - 1) << 4) | (1 << 20);
    let mut out = header.to_le_bytes()[..3].to_vec();
    out.extend_from_slice(data);
    out.push(0x03);
    out
}

#[tokio::test]
async fn br_and_zstd_from_the_origin_are_decoded_for_clients_without_them() {
    let origin = Origin::start().await;
    let body = text(6000);
    let br = brotli_stored(&body);
    let zst =
        ruzstd::encoding::compress_to_vec(&body[..], ruzstd::encoding::CompressionLevel::Fastest);
    for (path, coding, bytes) in [("/b", "br", br), ("/zs", "zstd", zst)] {
        origin.route(path, move |_, _| {
            Reply::ok(bytes.clone())
                .header("cache-control", "max-age=600")
                .header("content-type", "text/plain")
                .header("content-encoding", coding)
                .header("vary", "Accept-Encoding")
                .delay(std::time::Duration::from_millis(50))
        });
    }
    let lq = lacquer_for(&origin).await;
    for (path, coding) in [("/b", "br"), ("/zs", "zstd")] {
        // The miss, to a client that only takes gzip: decoded once the
        // body is in.
        let miss = get_with(lq.addr(), path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(miss.body, body, "{path}");
        assert_eq!(miss.header("content-encoding"), None);
        assert_eq!(
            origin.last(path).unwrap().header_or_none("accept-encoding"),
            "gzip",
            "lacquer asks for gzip only"
        );
        wait_stored(&lq, path).await;
        let coded = get_with(
            lq.addr(),
            path,
            &[("accept-encoding", &*format!("{coding}, gzip"))],
        )
        .await;
        assert!(is_hit(&coded));
        assert_eq!(coded.header("content-encoding"), Some(coding), "{path}");
        let plain = get(lq.addr(), path).await;
        assert!(is_hit(&plain));
        assert_eq!(plain.body, body, "{path}");
        assert_eq!(
            plain.header("content-length"),
            Some(&*body.len().to_string())
        );
        assert_eq!(origin.hits(path), 1, "{path}: one copy for all");
    }
}

#[tokio::test]
async fn a_conditional_miss_for_an_identity_client_gets_its_304() {
    let origin = Origin::start().await;
    gzipping_origin(&origin, "/cond", text(5000));
    let lq = lacquer_for(&origin).await;
    let got = get_with(lq.addr(), "/cond", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(got.status, 304, "{:?}", got.headers);
    assert_eq!(got.header("content-encoding"), None);
    let other = get_with(lq.addr(), "/cond", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, text(5000));
}

#[tokio::test]
async fn a_miss_to_be_compressed_streams_uncoded_to_identity_and_range_clients() {
    let origin = Origin::start().await;
    let body = text(20_000);
    plain_origin(&origin, "/m", "text/css", body.clone(), &[]);
    plain_origin(&origin, "/mr", "text/css", body.clone(), &[]);
    let lq = lacquer_for(&origin).await;
    let plain = get(lq.addr(), "/m").await;
    assert_eq!(plain.x_cache(), "MISS");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, body);
    assert_eq!(plain.header("etag"), Some("\"e1\""));
    let ranged = get_with(
        lq.addr(),
        "/mr",
        &[("accept-encoding", "gzip"), ("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, body[100..200]);
    assert_eq!(ranged.header("content-encoding"), None);
}

/// `data` of `coding` (br or zstd) decoded, or a panic naming why not.
fn decoded(coding: lacquer::http::coding::Coding, data: &[u8]) -> Vec<u8> {
    lacquer::http::coding::decode(coding, data, 1 << 24)
        .unwrap_or_else(|e| panic!("{coding:?}: {e}"))
        .to_vec()
}

/// An origin route sending `body` uncoded for ten minutes, strong `ETag`.
fn plain_lasting(origin: &Origin, path: &str, content_type: &'static str, body: Vec<u8>) {
    origin.route(path, move |_, _| {
        Reply::ok(body.clone())
            .header("cache-control", "max-age=600")
            .header("content-type", content_type)
            .header("etag", "\"s1\"")
    });
}

/// `compression.store = store` (`token` in headers): the origin is asked
/// for that coding, sends identity, and the one stored copy, coded with
/// it, serves clients that accept it (its bytes), gzip-only and identity
/// clients (decoded: identity, not re-encoded), and ranges of either.
/// The miss is gzip'd on its way to a client that accepts it (a
/// streaming brotli encoder costs too much memory per client).
async fn stored_as(
    store: lacquer::config::StoreCoding,
    token: &str,
    coding: lacquer::http::coding::Coding,
) {
    let origin = Origin::start().await;
    let body = text(16 << 10);
    plain_lasting(&origin, "/s", "text/html", body.clone());
    let lq = lacquer_with(&origin, |c| c.compression.store = store).await;
    let both = format!("{token}, gzip");

    let miss = get_with(lq.addr(), "/s", &[("accept-encoding", &both)]).await;
    assert_eq!(miss.x_cache(), "MISS", "{token}");
    assert_eq!(miss.header("content-encoding"), Some("gzip"), "{token}");
    assert_eq!(gunzip(&miss.body), body, "{token}: the miss");
    assert_eq!(miss.header("etag"), Some("W/\"s1\""), "{token}");
    assert_eq!(
        origin.last("/s").unwrap().header_or_none("accept-encoding"),
        token,
        "the origin is asked for the stored coding only"
    );
    wait_stored(&lq, "/s").await;
    let stored = stored_body(&lq, "/s");
    assert!(stored.len() < body.len() / 4, "{token}: {}", stored.len());
    assert_eq!(decoded(coding, &stored), body, "{token}: stored");

    for ae in [token, &*both, "gzip, deflate, br, zstd"] {
        let hit = get_with(lq.addr(), "/s", &[("accept-encoding", ae)]).await;
        assert!(is_hit(&hit), "{ae}: {}", hit.x_cache());
        assert_eq!(hit.header("content-encoding"), Some(token), "{ae}");
        assert_eq!(hit.body, stored, "{ae}: the stored bytes as they are");
        assert_eq!(
            hit.header("etag"),
            Some("W/\"s1\""),
            "{ae}: lacquer's coding"
        );
        assert_eq!(hit.header("vary"), Some("Accept-Encoding"), "{ae}");
        assert_eq!(
            hit.header("content-length"),
            Some(&*stored.len().to_string())
        );
    }
    // A client that does not accept the stored coding gets it decoded
    // (cheaper than re-encoding it to gzip, and the origin's own bytes).
    for ae in [None, Some("gzip"), Some("identity"), Some("deflate")] {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
        let plain = get_with(lq.addr(), "/s", &headers).await;
        assert!(is_hit(&plain), "{ae:?}");
        assert_eq!(plain.header("content-encoding"), None, "{token} {ae:?}");
        assert_eq!(plain.body, body, "{token} {ae:?}");
        assert_eq!(plain.header("etag"), Some("\"s1\""), "the origin's bytes");
        assert_eq!(
            plain.header("content-length"),
            Some(&*body.len().to_string())
        );
    }
    // Ranges apply to the bytes delivered: decoded for this client...
    let ranged = get_with(
        lq.addr(),
        "/s",
        &[("accept-encoding", "gzip"), ("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(ranged.status, 206, "{token}");
    assert_eq!(ranged.body, body[100..200]);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(
        ranged.header("content-range"),
        Some(&*format!("bytes 100-199/{}", body.len()))
    );
    // ...the coded bytes for this one.
    let coded = get_with(
        lq.addr(),
        "/s",
        &[("accept-encoding", token), ("range", "bytes=5-14")],
    )
    .await;
    assert_eq!(coded.status, 206, "{token}");
    assert_eq!(coded.body, stored[5..15]);
    assert_eq!(coded.header("content-encoding"), Some(token));
    assert_eq!(origin.hits("/s"), 1, "{token}: one origin fetch for all");
    assert_eq!(metric(&lq, "lacquer_store_compressions_total"), 1);
    assert_eq!(metric(&lq, "lacquer_body_decodes_total"), 1, "decoded once");

    // A miss for a client that does not take gzip streams uncoded.
    plain_lasting(&origin, "/u", "text/html", body.clone());
    let miss = get_with(lq.addr(), "/u", &[("accept-encoding", token)]).await;
    assert_eq!(miss.header("content-encoding"), None);
    assert_eq!(miss.body, body);
    wait_stored(&lq, "/u").await;
    let hit = get_with(lq.addr(), "/u", &[("accept-encoding", token)]).await;
    assert!(is_hit(&hit));
    assert_eq!(hit.header("content-encoding"), Some(token));
    assert_eq!(decoded(coding, &hit.body), body);
}

#[tokio::test]
async fn stored_as_brotli_when_the_settings_say_br() {
    use lacquer::{config::StoreCoding, http::coding::Coding};
    stored_as(StoreCoding::Br, "br", Coding::Br).await;
}

#[tokio::test]
async fn stored_as_zstd_when_the_settings_say_zstd() {
    use lacquer::{config::StoreCoding, http::coding::Coding};
    stored_as(StoreCoding::Zstd, "zstd", Coding::Zstd).await;
}

#[tokio::test]
async fn a_policy_asks_for_brotli_or_zstd_per_response() {
    use lacquer::http::coding::Coding;
    let origin = Origin::start().await;
    let big = text(8 << 10);
    for path in ["/a.bin", "/b.zst", "/c.txt", "/d.txt"] {
        plain_lasting(&origin, path, "application/octet-stream", big.clone());
    }
    let lq = with_policy(
        origin.addr,
        r#"
        vcl 4.1;
        sub vcl_backend_response {
            if (bereq.url ~ "\.bin$") { set beresp.do_brotli = true; }
            if (bereq.url ~ "\.zst$") { set beresp.do_zstd = true; }
            if (bereq.url ~ "^/c") {
                set beresp.do_gzip = true;
                set beresp.do_zstd = true;
                set beresp.do_brotli = true;
            }
            if (bereq.url ~ "^/d") {
                set beresp.do_brotli = true;
                set beresp.do_gunzip = true;
            }
            set beresp.http.x-asked-br = beresp.do_brotli;
            set beresp.http.x-asked-zstd = beresp.do_zstd;
        }
        "#,
    )
    .await;
    for (path, coding, token) in [
        ("/a.bin", Coding::Br, "br"),
        ("/b.zst", Coding::Zstd, "zstd"),
        ("/c.txt", Coding::Br, "br"),
    ] {
        let (_, hit) = get_twice(&lq, path, &[("accept-encoding", "br, zstd, gzip")]).await;
        assert!(is_hit(&hit), "{path}");
        assert_eq!(hit.header("content-encoding"), Some(token), "{path}");
        assert_eq!(decoded(coding, &hit.body), big, "{path}");
        assert_eq!(hit.header("etag"), Some("W/\"s1\""), "{path}");
        assert!(stored_body(&lq, path).len() < big.len() / 4, "{path}");
        let plain = get_with(lq.addr(), path, &[("accept-encoding", "gzip")]).await;
        assert!(is_hit(&plain), "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(plain.body, big, "{path}");
    }
    let a = get(lq.addr(), "/a.bin").await;
    assert_eq!(a.header("x-asked-br"), Some("true"));
    assert_eq!(a.header("x-asked-zstd"), Some("false"));
    // do_gunzip wins: stored as it came.
    let (_, d) = get_twice(&lq, "/d.txt", &[("accept-encoding", "br")]).await;
    assert!(is_hit(&d));
    assert_eq!(d.header("content-encoding"), None);
    assert_eq!(d.body, big);
    assert_eq!(d.header("etag"), Some("\"s1\""));
    for path in ["/a.bin", "/b.zst", "/c.txt", "/d.txt"] {
        assert_eq!(origin.hits(path), 1, "{path}");
    }
}

#[test]
fn a_bad_store_coding_is_a_settings_error_with_its_place() {
    use lacquer::config::Config;
    let err = Config::from_toml("[compression]\nstore = \"lz4\"\n", "lq.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("lq.toml:2:9: "), "{err}");
    assert!(err.contains("lz4") && err.contains("br"), "{err}");
    let err = Config::from_toml("[compression]\nbr_quality = 12\n", "lq.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("compression.br_quality: 12"), "{err}");
    let ok = Config::from_toml("[compression]\nstore = \"zstd\"\n", "lq.toml").unwrap();
    assert_eq!(ok.compression.store, lacquer::config::StoreCoding::Zstd);
}

#[tokio::test]
async fn esi_parts_stored_or_sent_as_br_or_zstd_are_assembled_decoded() {
    use lacquer::config::StoreCoding;
    use lacquer::http::coding::Encoder;
    for (store, token, enc) in [
        (StoreCoding::Br, "br", Encoder::Br(5)),
        (StoreCoding::Zstd, "zstd", Encoder::Zstd),
    ] {
        let origin = Origin::start().await;
        let frag = String::from_utf8(text(4000)).unwrap();
        // Coded by lacquer when stored (compressible, over min_size).
        let f = frag.clone();
        origin.route("/frag", move |_, _| {
            Reply::ok(f.clone())
                .header("cache-control", "max-age=600")
                .header("content-type", "text/html")
        });
        // Coded by the origin, which does what lacquer asks for: a page
        // and a fragment.
        let coding_origin = |path: &str, body: String, esi: bool| {
            let coded = enc.encode(body.as_bytes()).unwrap();
            origin.route(path, move |seen, _| {
                let mut r = Reply::new(200)
                    .header("cache-control", "max-age=600")
                    .header("content-type", "text/html")
                    .header("vary", "Accept-Encoding");
                if esi {
                    r = r.header("surrogate-control", "content=\"ESI/1.0\"");
                }
                if seen.header_or_none("accept-encoding").contains(token) {
                    r.header("content-encoding", token).body(coded.clone())
                } else {
                    r.body(body.clone())
                }
            });
        };
        coding_origin("/ofrag", format!("<b>{frag}</b>"), false);
        coding_origin(
            "/page",
            "<p><esi:include src=\"/frag\"/>|<esi:include src=\"/ofrag\"/></p>".into(),
            true,
        );
        let lq = lacquer_with(&origin, |c| c.compression.store = store).await;
        let want = format!("<p>{frag}|<b>{frag}</b></p>");
        // The miss fetches the fragments (decoded once stored), the hit
        // inserts the stored ones (decoded before).
        let miss = get(lq.addr(), "/page").await;
        assert_eq!(miss.text(), want, "{token}: miss");
        wait_stored(&lq, "/frag").await;
        wait_stored(&lq, "/ofrag").await;
        let hit = get(lq.addr(), "/page").await;
        assert!(is_hit(&hit), "{token}");
        assert_eq!(hit.text(), want, "{token}: hit");
        for path in ["/frag", "/ofrag"] {
            let stored = stored_body(&lq, path);
            assert_ne!(&stored[..], &hit.body[..stored.len().min(hit.body.len())]);
            assert!(
                stored.len() < frag.len() / 4,
                "{token} {path}: stored coded"
            );
        }
        let gz = get_with(lq.addr(), "/page", &[("accept-encoding", "gzip")]).await;
        assert_eq!(gunzip(&gz.body), want.as_bytes(), "{token}: gzip'd page");
        for path in ["/frag", "/ofrag", "/page"] {
            assert_eq!(origin.hits(path), 1, "{token} {path}");
        }
    }
}
