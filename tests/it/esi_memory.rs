//! ESI assembly for a client that does not read: the server holds a
//! bounded amount of the assembled page, not all of it. Each test runs in
//! a process of its own, so the process's resident memory is this test's.
use crate::common::*;
use lacquer::config::ByteSize;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_holds_a_bounded_part_of_the_page() {
    if !in_own_process("esi_memory::a_client_that_does_not_read_holds_a_bounded_part_of_the_page") {
        return;
    }
    const INCLUDES: usize = 128;
    const FRAGMENT: usize = 1 << 20;
    let origin = Origin::start().await;
    let mut body = String::from("<html>");
    for i in 0..INCLUDES {
        body.push_str(&format!("<esi:include src=\"/nb/{i}\"/>"));
        // Never stored: every byte of it is the page's to hold.
        origin.route(&format!("/nb/{i}"), |_, _| {
            Reply::new(200).header("cache-control", "no-store").chunks(
                64 << 10,
                FRAGMENT / (64 << 10),
                Duration::ZERO,
            )
        });
    }
    body.push_str("</html>");
    origin.route("/big", move |_, _| {
        Reply::ok(body.clone())
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_with(&origin, |c| c.esi.max_buffered = ByteSize(2 << 20)).await;
    let before = rss_bytes();
    let mut client = tokio::net::TcpStream::connect(lq.addr())
        .await
        .expect("connect");
    client
        .write_all(b"GET /big HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\r\n")
        .await
        .expect("request");
    // The scenario: the client reads nothing for a while, and assembly runs
    // as far as it may meanwhile.
    sleep_ms(3000).await;
    let during = rss_bytes();
    let buffered = metric(&lq, "lacquer_esi_buffered_bytes");
    let fetched = origin.total() - 1;
    eprintln!(
        "page of {INCLUDES} x {FRAGMENT} bytes, client not reading: RSS {} MiB -> {} MiB, \
         esi buffered {buffered} bytes, {fetched} fragments requested",
        before >> 20,
        during >> 20
    );
    assert!(
        buffered <= 2 << 20,
        "charged beyond esi.max_buffered: {buffered}"
    );
    assert!(
        during.saturating_sub(before) < 48 << 20,
        "RSS grew by {} MiB for one non-reading client",
        (during - before) >> 20
    );
    // Then the client reads: the whole page arrives, in order.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut got))
        .await
        .expect("read in time")
        .expect("read");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..200.min(text.len())]
    );
    let head_end = text.find("\r\n\r\n").expect("end of head");
    // Chunk-size lines are hexadecimal digits: every 'x' is the page's.
    let xs = got[head_end..].iter().filter(|&&b| b == b'x').count();
    assert_eq!(xs, INCLUDES * FRAGMENT);
    assert!(text.trim_end().ends_with("0"), "chunked body complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_read_a_page_of_one_gzipped_fragment_share_its_bytes() {
    if !in_own_process(
        "esi_memory::clients_that_do_not_read_a_page_of_one_gzipped_fragment_share_its_bytes",
    ) {
        return;
    }
    const INCLUDES: usize = 32;
    const DECODED: usize = 2 << 20;
    const CLIENTS: usize = 4;
    let origin = Origin::start().await;
    let body = "<esi:include src=\"/gzf\"/>".repeat(INCLUDES);
    origin.route("/gzpage", move |_, _| {
        Reply::ok(body.clone())
            .header("surrogate-control", "content=\"ESI/1.0\"")
            .header("cache-control", "max-age=60")
    });
    let zipped = zeros_gz(DECODED, 1);
    origin.route("/gzf", move |_, _| {
        Reply::ok(zipped.clone())
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
    });
    let lq = lacquer_for(&origin).await;
    // The page and its fragment are stored.
    let first = get(lq.addr(), "/gzpage").await;
    assert_eq!(first.body.len(), INCLUDES * DECODED);
    drop(first);
    wait_stored(&lq, "/gzpage").await;
    wait_stored(&lq, "/gzf").await;
    let before = rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = tokio::net::TcpStream::connect(lq.addr())
            .await
            .expect("connect");
        c.write_all(b"GET /gzpage HTTP/1.1\r\nhost: test.example\r\nconnection: close\r\n\r\n")
            .await
            .expect("request");
        clients.push(c);
    }
    sleep_ms(2000).await;
    let during = rss_bytes();
    eprintln!(
        "{CLIENTS} clients not reading a page of {INCLUDES} includes of one gzip'd fragment \
         ({DECODED} bytes decoded): RSS {} MiB -> {} MiB, {} decodes",
        before >> 20,
        during >> 20,
        metric(&lq, "lacquer_esi_decodes_total")
    );
    assert!(
        during.saturating_sub(before) < 32 << 20,
        "RSS grew by {} MiB",
        (during - before) >> 20
    );
    for mut c in clients {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut got))
            .await
            .expect("read in time")
            .expect("read");
        assert!(got.len() > INCLUDES * DECODED);
    }
    assert_eq!(origin.hits("/gzf"), 1);
    assert_eq!(
        metric(&lq, "lacquer_esi_decodes_total"),
        1,
        "decoded once: by the first page's miss, for all its includes"
    );
}
