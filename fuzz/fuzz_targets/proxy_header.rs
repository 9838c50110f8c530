//! `lacquer::server::proxy_protocol::read_header_tlvs` over a tokio
//! `BufReader` on the input bytes, in a current-thread runtime built once.
//! The result (address and TLVs, and the bytes left after the header) must
//! not depend on the reader's buffer size.
#![no_main]

use std::sync::OnceLock;

use lacquer::server::proxy_protocol::read_header_tlvs;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::runtime::{Builder, Runtime};

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Builder::new_current_thread().build().expect("runtime"))
}

async fn read(data: &[u8], capacity: usize) -> (String, Vec<u8>) {
    let mut r = BufReader::with_capacity(capacity, data);
    let got = match read_header_tlvs(&mut r).await {
        Ok(header) => format!("ok {header:?}"),
        Err(e) => format!("err {e}"),
    };
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest).await;
    (got, rest)
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let (a, rest_a) = read(data, 8 * 1024).await;
        let (b, rest_b) = read(data, 7).await;
        assert_eq!(a, b, "result depends on the buffer size");
        if a.starts_with("ok") {
            assert_eq!(rest_a, rest_b, "leftover depends on the buffer size");
        }
    });
});
