//! The built-in vmods through lacquer: cookie filtering that decides what
//! reaches the origin and the cache key (with var carrying a value from
//! vcl_recv to vcl_deliver), header.remove of one Set-Cookie of several,
//! xkey.purge / xkey.softpurge from a purge handler (the FOSHttpCache
//! pattern) on lacquer's surrogate keys, purge.hard / purge.soft in
//! vcl_hit, and vmod proxy reading the PROXY v2 TLVs.
use crate::common::*;
use std::time::Duration;

/// Only the `lang` cookie reaches the origin and the cache key.
const COOKIES: &str = r#"vcl 4.1;
import cookie;
import var;

sub vcl_recv {
    if (req.http.Cookie) {
        cookie.parse(req.http.Cookie);
        cookie.keep("lang");
        set req.http.Cookie = cookie.get_string();
        if (req.http.Cookie == "") {
            unset req.http.Cookie;
        }
        if (cookie.isset("lang")) {
            var.set("lang", cookie.get("lang"));
        }
    }
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    hash_data(req.http.host);
    hash_data(cookie.get("lang"));
    return (lookup);
}

sub vcl_deliver {
    if (var.get("lang")) {
        set resp.http.X-Lang = var.get("lang");
    }
}
"#;

#[tokio::test]
async fn cookie_keep_decides_what_the_origin_sees_and_the_cache_key() {
    let origin = Origin::start().await;
    origin.route("/c", |seen, n| {
        Reply::ok(format!("cookie={} #{n}", seen.header_or_none("cookie")))
            .header("cache-control", "max-age=600")
    });
    let lq = with_policy(origin.addr, COOKIES).await;
    let a = lq.addr();
    let fr = get_with(a, "/c", &[("cookie", "_ga=GA1.2; lang=fr; session=s1")]).await;
    assert_eq!(fr.text(), "cookie=lang=fr; #1");
    assert_eq!(fr.header("x-lang"), Some("fr"));
    wait_stored(&lq, "/c").await;
    // Other cookies, same `lang`: the same object.
    let again = get_with(a, "/c", &[("cookie", "lang=fr; _gid=7")]).await;
    assert!(is_hit(&again), "{:?}", again.headers);
    assert_eq!(again.text(), "cookie=lang=fr; #1");
    assert_eq!(again.header("x-lang"), Some("fr"));
    let de = get_with(a, "/c", &[("cookie", "lang=de")]).await;
    assert_eq!(de.text(), "cookie=lang=de; #2");
    // Only tracking cookies: none reaches the origin, and the two such
    // requests share an object.
    let bare = get_with(a, "/c", &[("cookie", "_ga=1")]).await;
    assert_eq!(bare.text(), "cookie=none #3");
    assert_eq!(bare.header("x-lang"), None);
    wait_stored_n(&lq, "/c", 3).await;
    let bare = get_with(a, "/c", &[("cookie", "_ga=2; tracking=3")]).await;
    assert!(is_hit(&bare), "{:?}", bare.headers);
    assert_eq!(bare.text(), "cookie=none #3");
    assert_eq!(origin.hits("/c"), 3);
}

const SET_COOKIES: &str = r#"vcl 4.1;
import header;

sub vcl_backend_response {
    # Tracking cookies never reach clients; what is left decides whether
    # the answer is cacheable.
    header.remove(beresp.http.Set-Cookie, "^tracking=");
}

sub vcl_deliver {
    header.append(resp.http.X-Note, "one");
    header.append(resp.http.X-Note, "two");
    set resp.http.X-Session = header.get(resp.http.Set-Cookie, "^session=");
}
"#;

#[tokio::test]
async fn header_remove_takes_one_set_cookie_of_several() {
    let origin = Origin::start().await;
    origin.route("/login", |_, n| {
        Reply::ok(format!("login #{n}"))
            .header("cache-control", "no-store")
            .header("set-cookie", "tracking=1; Path=/")
            .header("set-cookie", "session=abc; HttpOnly")
            .header("set-cookie", "tracking=2; Path=/x")
    });
    origin.route("/page", |_, n| {
        Reply::ok(format!("page #{n}"))
            .header("cache-control", "max-age=600")
            .header("set-cookie", "tracking=9; Path=/")
    });
    let lq = with_policy(origin.addr, SET_COOKIES).await;
    let a = lq.addr();
    let login = get(a, "/login").await;
    let cookies: Vec<&str> = login
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, vec!["session=abc; HttpOnly"]);
    assert_eq!(login.header("x-session"), Some("session=abc; HttpOnly"));
    let notes: Vec<&str> = login
        .headers
        .get_all("x-note")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(notes, vec!["one", "two"]);
    // Its only Set-Cookie removed, the page is stored and served to the
    // next client without anyone's cookie.
    let first = get(a, "/page").await;
    assert_eq!(first.header("set-cookie"), None);
    wait_stored(&lq, "/page").await;
    let second = get(a, "/page").await;
    assert!(is_hit(&second), "{:?}", second.headers);
    assert_eq!(second.header("set-cookie"), None);
    assert_eq!(origin.hits("/page"), 1);
}

/// FOSHttpCache's xkey purge handler.
const XKEY: &str = r#"vcl 4.1;
import xkey;

sub vcl_recv {
    if (req.http.xkey-purge) {
        set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
    if (req.http.xkey-softpurge) {
        set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
}
"#;

fn tagged(origin: &Origin, path: &str, keys: &'static str, slow_refetch: bool) {
    origin.route(path, move |seen, n| {
        let delay = if slow_refetch && n > 1 { 200 } else { 0 };
        Reply::ok(format!("{} v{n}", seen.path))
            .header("cache-control", "max-age=600")
            .header("xkey", keys)
            .delay(Duration::from_millis(delay))
    });
}

#[tokio::test]
async fn xkey_purge_from_a_purge_handler_removes_the_tagged_objects() {
    let origin = Origin::start().await;
    tagged(&origin, "/x1", "product-1 category-a", false);
    tagged(&origin, "/x2", "category-a", false);
    tagged(&origin, "/x3", "category-b", false);
    let lq = with_policy(origin.addr, XKEY).await;
    let a = lq.addr();
    for p in ["/x1", "/x2", "/x3"] {
        let (first, second) = get_twice(&lq, p, &[]).await;
        assert_eq!(first.text(), format!("{p} v1"));
        assert!(is_hit(&second), "{p}: {:?}", second.headers);
        // The key header is lacquer's, not the client's.
        assert_eq!(second.header("xkey"), None);
    }
    let purged = send(a, "PURGE", "/", &[("xkey-purge", "category-a")], "").await;
    assert_eq!(purged.status, 200);
    assert!(
        purged.text().contains("Invalidated 2 objects"),
        "{}",
        purged.text()
    );
    for p in ["/x1", "/x2"] {
        let again = get(a, p).await;
        assert_eq!((again.x_cache(), again.text()), ("MISS", format!("{p} v2")));
    }
    assert!(is_hit(&get(a, "/x3").await));
    assert_eq!(origin.hits("/x3"), 1);
    // Several keys, comma or space separated; an unknown key purges nothing.
    wait_stored(&lq, "/x1").await;
    wait_stored(&lq, "/x2").await;
    let purged = send(
        a,
        "PURGE",
        "/",
        &[("xkey-purge", "product-1,category-b nope")],
        "",
    )
    .await;
    assert!(
        purged.text().contains("Invalidated 2 objects"),
        "{}",
        purged.text()
    );
    assert_eq!(get(a, "/x3").await.text(), "/x3 v2");
    assert!(is_hit(&get(a, "/x2").await));
    let none = send(a, "GET", "/", &[("xkey-purge", "nope")], "").await;
    assert!(
        none.text().contains("Invalidated 0 objects"),
        "{}",
        none.text()
    );
}

#[tokio::test]
async fn xkey_softpurge_serves_stale_once_then_refetches() {
    let origin = Origin::start().await;
    tagged(&origin, "/s", "k", true);
    let lq = with_policy_and(origin.addr, XKEY, |c| {
        c.cache.grace = lacquer::config::Seconds(Duration::from_secs(10))
    })
    .await;
    let a = lq.addr();
    get_twice(&lq, "/s", &[]).await;
    let purged = send(a, "PURGE", "/", &[("xkey-softpurge", "k")], "").await;
    assert!(
        purged.text().contains("Invalidated 1 objects"),
        "{}",
        purged.text()
    );
    let stale = get(a, "/s").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "/s v1"));
    // Two keys of one object: one object.
    wait_fresh(&lq, "/s").await;
    tagged(&origin, "/s2", "k1 k2", false);
    get_twice(&lq, "/s2", &[]).await;
    let purged = send(a, "PURGE", "/", &[("xkey-softpurge", "k1 k2")], "").await;
    assert!(
        purged.text().contains("Invalidated 1 objects"),
        "{}",
        purged.text()
    );
    let fresh = get(a, "/s").await;
    assert_eq!(
        (fresh.text().as_str(), &fresh.x_cache()[..3]),
        ("/s v2", "HIT")
    );
    assert_eq!(origin.hits("/s"), 2);
}

/// Varnish 7's purge handler with vmod purge.
const PURGE: &str = r#"vcl 4.1;
import purge;

sub vcl_recv {
    if (req.method == "PURGE") {
        return (hash);
    }
}

sub vcl_hit {
    if (req.method == "PURGE") {
        if (req.http.soft == "grace") {
            set req.http.n = purge.soft(0s, 10s);
        } else if (req.http.soft == "ttl") {
            set req.http.n = purge.soft(ttl = 30s);
        } else if (req.http.soft) {
            set req.http.n = purge.soft();
        } else {
            set req.http.n = purge.hard();
        }
        return (synth(200, "Purged " + req.http.n));
    }
}

sub vcl_miss {
    if (req.method == "PURGE") {
        return (synth(404, "Not in cache"));
    }
}

sub vcl_deliver {
    set resp.http.X-Ttl = obj.ttl;
}
"#;

#[tokio::test]
async fn purge_hard_in_vcl_hit_removes_every_variant_and_soft_keeps_it_for_grace() {
    let origin = Origin::start().await;
    cacheable_with(&origin, "/p", &[("vary", "accept-language")]);
    origin.route("/soft", |_, n| {
        Reply::ok(format!("soft v{n}"))
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(if n > 1 { 200 } else { 0 }))
    });
    let lq = with_policy_and(origin.addr, PURGE, |c| {
        c.cache.grace = lacquer::config::Seconds(Duration::from_secs(10))
    })
    .await;
    let a = lq.addr();
    for lang in ["en", "fr"] {
        get_with(a, "/p", &[("accept-language", lang)]).await;
    }
    wait_stored_n(&lq, "/p", 2).await;
    let purged = send(a, "PURGE", "/p", &[("accept-language", "en")], "").await;
    assert_eq!(purged.status, 200);
    assert!(purged.text().contains("Purged 2"), "{}", purged.text());
    assert_eq!(stored(&lq, "/p"), 0);
    let missing = send(a, "PURGE", "/p", &[("accept-language", "en")], "").await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    let again = get_with(a, "/p", &[("accept-language", "fr")]).await;
    assert_eq!(
        (again.x_cache(), again.text()),
        ("MISS", "/p v3".to_string())
    );

    get_twice(&lq, "/soft", &[]).await;
    let purged = send(a, "PURGE", "/soft", &[("soft", "1")], "").await;
    assert!(purged.text().contains("Purged 1"), "{}", purged.text());
    let stale = get(a, "/soft").await;
    assert_eq!(
        (stale.x_cache(), stale.text().as_str()),
        ("STALE", "soft v1")
    );
    wait_fresh(&lq, "/soft").await;
    assert_eq!(get(a, "/soft").await.text(), "soft v2");
    assert_eq!(origin.hits("/soft"), 2);
}

const PROXY: &str = r#"vcl 4.1;
import proxy;

sub vcl_recv {
    return (synth(200));
}

sub vcl_synth {
    set resp.http.X-Alpn = proxy.alpn();
    set resp.http.X-Sni = proxy.authority();
    set resp.http.X-Ssl = proxy.is_ssl() + " " + proxy.client_has_cert_conn() + " "
        + proxy.client_has_cert_sess() + " " + proxy.ssl_verify_result();
    set resp.http.X-Tls = proxy.ssl_version() + "/" + proxy.ssl_cipher() + "/"
        + proxy.client_cert_cn() + "/" + proxy.cert_sign() + "/" + proxy.cert_key();
    set resp.http.X-Client = client.ip;
}
"#;

/// A PROXY v2 header for a TCP4 connection from 203.0.113.9, with `tlvs`.
fn proxy_v2(tlvs: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let len = u16::try_from(12 + tlvs.len()).unwrap();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[203, 0, 113, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80]);
    h.extend_from_slice(tlvs);
    h.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    h
}

fn header_line<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn proxy_vmod_reads_the_proxy_v2_tlvs_of_the_connection() {
    use lacquer::lifecycle::{encode_tlvs, CLIENT_CERT_CONN, CLIENT_SSL};
    let origin = Origin::start().await;
    let lq = with_policy_and(origin.addr, PROXY, |c| c.server.proxy_protocol = true).await;
    let ssl = [
        vec![CLIENT_SSL | CLIENT_CERT_CONN, 0, 0, 0, 0],
        encode_tlvs(&[
            (0x21, b"TLSv1.3".to_vec()),
            (0x22, b"alice".to_vec()),
            (0x23, b"TLS_AES_256_GCM_SHA384".to_vec()),
            (0x24, b"SHA256".to_vec()),
            (0x25, b"RSA2048".to_vec()),
        ]),
    ]
    .concat();
    let tlvs = encode_tlvs(&[
        (0x01, b"h2".to_vec()),
        (0x02, b"shop.example".to_vec()),
        (0x20, ssl),
    ]);
    let got = raw(lq.addr(), &proxy_v2(&tlvs), Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(header_line(&got, "x-client"), Some("203.0.113.9"));
    assert_eq!(header_line(&got, "x-alpn"), Some("h2"));
    assert_eq!(header_line(&got, "x-sni"), Some("shop.example"));
    assert_eq!(header_line(&got, "x-ssl"), Some("true true false 0"));
    assert_eq!(
        header_line(&got, "x-tls"),
        Some("TLSv1.3/TLS_AES_256_GCM_SHA384/alice/SHA256/RSA2048")
    );
    // Without TLVs: unset strings, false, 0.
    let got = raw(lq.addr(), &proxy_v2(&[]), Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(header_line(&got, "x-alpn"), Some(""));
    assert_eq!(header_line(&got, "x-ssl"), Some("false false false 0"));
    assert_eq!(header_line(&got, "x-tls"), Some("////"));
    assert_eq!(origin.total(), 0);
}

#[tokio::test]
async fn purge_soft_sets_the_ttl_and_grace_it_is_given() {
    let origin = Origin::start().await;
    origin.route("/g", |_, n| {
        Reply::ok(format!("g v{n}"))
            .header("cache-control", "max-age=600")
            .delay(Duration::from_millis(if n > 1 { 200 } else { 0 }))
    });
    // No grace in the settings: only what purge.soft gives.
    let lq = with_policy_and(origin.addr, PURGE, |c| {
        c.cache.grace = lacquer::config::Seconds(Duration::ZERO)
    })
    .await;
    let a = lq.addr();
    get_twice(&lq, "/g", &[]).await;
    let purged = send(a, "PURGE", "/g", &[("soft", "ttl")], "").await;
    assert!(purged.text().contains("Purged 1"), "{}", purged.text());
    let hit = get(a, "/g").await;
    assert!(is_hit(&hit), "{:?}", hit.headers);
    let ttl: f64 = hit.header("x-ttl").unwrap().parse().unwrap();
    assert!((29.0..=30.0).contains(&ttl), "obj.ttl {ttl}");
    // Stale without grace: the next request waits for a fresh copy.
    send(a, "PURGE", "/g", &[("soft", "1")], "").await;
    let missed = get(a, "/g").await;
    assert_eq!((missed.x_cache(), missed.text().as_str()), ("MISS", "g v2"));
    // With 10 s of grace: served stale once while it is refetched.
    wait_fresh(&lq, "/g").await;
    send(a, "PURGE", "/g", &[("soft", "grace")], "").await;
    let stale = get(a, "/g").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "g v2"));
    wait_fresh(&lq, "/g").await;
    assert_eq!(get(a, "/g").await.text(), "g v3");
    assert_eq!(origin.hits("/g"), 3);
}

#[tokio::test]
async fn a_policy_importing_xkey_indexes_the_xkey_header_whatever_the_settings_say() {
    let origin = Origin::start().await;
    tagged(&origin, "/t", "news", false);
    let settings = |c: &mut lacquer::config::Config| {
        c.invalidation.surrogate_key_headers = vec!["surrogate-key".into()];
    };
    let lq = with_policy_and(origin.addr, XKEY, settings).await;
    get_twice(&lq, "/t", &[]).await;
    let purged = send(lq.addr(), "PURGE", "/", &[("xkey-purge", "news")], "").await;
    assert!(
        purged.text().contains("Invalidated 1 objects"),
        "{}",
        purged.text()
    );
    assert_eq!(get(lq.addr(), "/t").await.text(), "/t v2");
    // Without `import xkey`, the settings alone decide: `xkey` is not a
    // key header, and stays on the response.
    let plain = with_policy_and(origin.addr, "sub vcl_recv { return (hash); }", settings).await;
    let got = get(plain.addr(), "/t").await;
    assert_eq!(got.header("xkey"), Some("news"));
}
