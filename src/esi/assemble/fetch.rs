//! Getting an include that was not inserted at plan time: fetched from the
//! source (its body charged to the page's budget), or decoded; then its
//! `alt` if it failed.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use std::sync::Arc;

use super::budget::{Budget, Piece, Turn};
use super::plan::{refuse_loop, target, First, Page};
use super::{Event, FragmentSource, ReadError, Shared};
use crate::esi::parse::Include;
use crate::esi::vars::VarPart;
use crate::http::coding::{decode_off_worker, Coding};
use crate::http::gzip::decoded_bound;

/// A fragment's body, in the pieces it arrived in.
pub(super) type Chunks = Vec<Piece>;
/// A fragment: its body, or on failure the error body to insert (maybe
/// empty).
pub(super) type FragmentResult = Result<Chunks, Chunks>;

/// How a body is read: charged to a page's budget for an include, or not.
pub(super) type Charging<'a> = Option<(&'a Budget, &'a Turn)>;

/// Reads a body into pieces, refusing more than `limit` bytes; each piece
/// is charged as `charging` says before the next is read.
pub(super) async fn collect<B>(
    mut body: B,
    limit: u64,
    charging: Charging<'_>,
) -> Result<Chunks, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut chunks = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Body(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > limit {
                return Err(ReadError::TooLarge(limit));
            }
            if !data.is_empty() {
                let charge = match charging {
                    Some((budget, turn)) => budget.charge(turn, data.len()).await,
                    None => None,
                };
                chunks.push(Piece {
                    bytes: data,
                    charge,
                });
            }
        }
    }
    Ok(chunks)
}

/// One contiguous buffer from pieces (no copy for a single piece).
pub(super) fn concat(chunks: &[Piece]) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.bytes.clone(),
        _ => {
            let mut b = BytesMut::with_capacity(chunks.iter().map(|c| c.bytes.len()).sum());
            for c in chunks {
                b.extend_from_slice(&c.bytes);
            }
            b.freeze()
        }
    }
}

/// Gets an include (`first` says how), then its `alt` if it failed. It
/// waits for one of the page's concurrency slots, unless the client is
/// waiting for it already (its `turn`).
pub(super) async fn fetch_fragment<S: FragmentSource>(
    shared: Arc<Shared<S>>,
    page: Arc<Page>,
    inc: Include,
    first: First<S::Stored>,
    turn: Arc<Turn>,
) -> FragmentResult {
    let _permit = tokio::select! {
        biased;
        () = turn.wait() => None,
        permit = page.permits.clone().acquire_owned() => match permit {
            Ok(p) => Some(p),
            Err(_) => return Err(Vec::new()),
        },
    };
    let first = match first {
        First::Fetch => fetch_src(&shared, &page, &inc.src, &turn).await,
        First::Decode(stored, src) => decode_stored(&shared, &page, stored, &src).await,
        First::Failed => Err(Vec::new()),
    };
    match (first, &inc.alt) {
        (Err(_), Some(alt)) => fetch_src(&shared, &page, alt, &turn).await,
        (result, _) => result,
    }
}

async fn fetch_src<S: FragmentSource>(
    shared: &Shared<S>,
    page: &Page,
    src: &[VarPart],
    turn: &Turn,
) -> FragmentResult {
    let Ok(target) = target(shared, page, src) else {
        return Err(Vec::new());
    };
    if page.chain.contains(&target.host, &target.url) {
        refuse_loop(shared, page, &target);
        return Ok(Vec::new());
    }
    let resp = shared.source.fetch(page.request(&target)).await;
    let failed = resp.status().as_u16() >= 400;
    // A body coded as lacquer decodes (gzip, br, zstd): an origin's own,
    // or one lacquer stored compressed (`compression.store`).
    let coding = Some(Coding::of(resp.headers())).filter(|c| c.decodable());
    let limit = shared.settings.max_fragment_size;
    let mut body = collect(resp.into_body(), limit, Some((&shared.budget, turn))).await;
    if let Some(coding) = coding {
        if let Ok(chunks) = body {
            // Stored by now (the usual miss): decoded once for every
            // include of it, and kept, as for a hit.
            if !failed {
                if let Some(stored) = shared.source.stored(page.request(&target), &chunks).await {
                    return decode_stored(shared, page, stored, &target.url).await;
                }
            }
            body = decode_fetched(shared, turn, chunks, coding, limit).await;
        }
    }
    let (page, src) = (&*page.url, &*target.url);
    match body {
        Ok(chunks) if !failed => Ok(chunks),
        Ok(chunks) => {
            shared.source.event(Event::Status { page, src });
            Err(chunks)
        }
        Err(error) => {
            shared.source.event(Event::Body {
                page,
                src,
                error: &error,
            });
            Err(Vec::new())
        }
    }
}

/// A stored coded fragment, decoded by the source (once for all
/// requests); it fails when it does not decode within the limit.
async fn decode_stored<S: FragmentSource>(
    shared: &Shared<S>,
    page: &Page,
    stored: S::Stored,
    src: &str,
) -> FragmentResult {
    let limit = shared.settings.max_fragment_size;
    match shared.source.decode(stored, limit).await {
        Some(b) if b.len() as u64 <= limit => Ok(vec![Piece::free(b)]),
        _ => {
            shared.source.event(Event::TooLarge {
                page: &page.url,
                src,
            });
            Err(Vec::new())
        }
    }
}

/// Decodes a coded fragment as fetched, off the worker, stopping at
/// `limit`. The most it can decode to is reserved from the page's budget
/// first, so waiting decodes hold no memory; the excess is given back.
/// (gzip's expansion is bounded; br's and zstd's are not usefully: the
/// limit is reserved.)
async fn decode_fetched<S: FragmentSource>(
    shared: &Shared<S>,
    turn: &Turn,
    chunks: Chunks,
    coding: Coding,
    limit: u64,
) -> Result<Chunks, ReadError> {
    let compressed = concat(&chunks);
    let bound = match coding {
        Coding::Gzip => decoded_bound(compressed.len(), limit),
        _ => limit.saturating_add(1),
    };
    let bound = usize::try_from(bound).unwrap_or(usize::MAX);
    let mut charge = shared.budget.charge(turn, bound).await;
    let decoded = {
        let _decoding = shared.source.decoding();
        decode_off_worker(coding, compressed, limit).await?
    };
    drop(chunks);
    if let Some(c) = &mut charge {
        c.shrink_to(decoded.len());
    }
    Ok(vec![Piece {
        bytes: decoded,
        charge,
    }])
}
