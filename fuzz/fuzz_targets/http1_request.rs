//! Arbitrary bytes from a client, through lacquer's HTTP/1 server
//! connection (`lacquer::h1::serve` with the default `[server]` settings),
//! over an in-memory duplex stream. Each
//! request goes through lacquer's recv (`Task::from_parts`: CONNECT,
//! Host / absolute-form normalisation, `server.default_host`), then its body
//! is read to the end through `ClientBody`, as a pass sends it to a backend
//! (chunked decoding, the fault it records).
//!
//! The runtime's clock is paused, so timers fire as soon as nothing else
//! can run: a connection that would wait for ever ends in the header-read
//! timeout, and one that outlives `HANG` is a hang (a panic).
#![no_main]

use lacquer::http::req_fields::FieldsRead;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use lacquer::h1::RequestBody;
use lacquer::config::{BackendConfig, Config};
use lacquer::fetch::req_body::{ClientBody, FaultSlot, ReqBody};
use lacquer::pipeline::{Live, Task};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

/// Longer than any timer lacquer's server arms (`header_read_timeout`).
const HANG: Duration = Duration::from_secs(3600);

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

/// Settings and policy without and with `server.default_host`.
fn lives() -> &'static [Arc<Live>; 2] {
    static LIVES: OnceLock<[Arc<Live>; 2]> = OnceLock::new();
    LIVES.get_or_init(|| {
        let live = |default_host: Option<&str>| {
            let mut c = Config {
                backend: vec![BackendConfig {
                    address: "127.0.0.1:1".into(),
                    ..BackendConfig::default()
                }],
                ..Config::default()
            };
            c.server.default_host = default_host.map(str::to_string);
            let c = Arc::new(c);
            let policy = Live::load_policy(&c).expect("built-in policy");
            Arc::new(
                Live::new(
                    c,
                    policy,
                    lacquer::lifecycle::Clock::default(),
                    Arc::new(lacquer::lifecycle::NoBackends),
                )
                .expect("live"),
            )
        };
        [live(None), live(Some("Default.Example:80"))]
    })
}

/// recv, then the whole body through `ClientBody`; the status says how it
/// ended.
async fn serve(req: Request<RequestBody>, live: Arc<Live>) -> StatusCode {
    let client = SocketAddr::from(([192, 0, 2, 1], 40000));
    let connect = req.method() == http::Method::CONNECT;
    let (parts, body) = req.into_parts();
    let mut ctx = match Task::from_parts(parts, body, client, None, live.clone()) {
        Ok(ctx) => ctx,
        Err(refused) => {
            assert!(
                matches!(refused.status.as_u16(), 400 | 405),
                "refused with {}",
                refused.status
            );
            return refused.status;
        }
    };
    assert!(!connect, "CONNECT got past recv");
    assert!(!ctx.host.is_empty(), "empty host");
    assert!(
        !ctx.host.contains('@') && !ctx.host.bytes().any(|b| b.is_ascii_uppercase()),
        "host not normalised: {:?}",
        ctx.host
    );
    assert_eq!(
        ctx.headers.get(http::header::HOST).map(|h| h.as_bytes()),
        Some(ctx.host.as_bytes()),
        "the Host forwarded is not the host keyed"
    );
    let Some(body) = ctx.body.take() else {
        return StatusCode::OK;
    };
    let fault = Arc::new(FaultSlot::default());
    let timeout = live.config.server.body_timeout.0;
    let mut body = ReqBody::Stream(ClientBody::new(body, timeout, fault.clone()));
    loop {
        match body.frame().await {
            None => return StatusCode::OK,
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                let fault = fault.get().expect("a body error records its fault");
                return fault.status();
            }
        }
    }
}

async fn exchange(data: &[u8], live: Arc<Live>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let settings = live.config.server.clone();
    let h1 = lacquer::h1::Settings::of(&settings);
    let handler = move |req| {
        let live = live.clone();
        async move {
            let status = serve(req, live).await;
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = status;
            resp
        }
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let conn = async {
        let _ = lacquer::h1::serve(server, &h1, handler, stop).await;
    };
    let (mut rx, mut tx) = tokio::io::split(client);
    let write = async move {
        let _ = tx.write_all(data).await;
        let _ = tx.shutdown().await;
    };
    let read = async move {
        let mut sink = Vec::new();
        let _ = rx.read_to_end(&mut sink).await;
    };
    let all = async {
        let (_, _, _) = tokio::join!(conn, write, read);
    };
    tokio::time::timeout(HANG, all)
        .await
        .expect("connection did not end");
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the settings; the rest is what the client sends.
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let live = lives()[usize::from(pick & 1)].clone();
    runtime().block_on(exchange(data, live));
});
