//! The response body sent to clients: a small enum so the hit path (one
//! `Bytes`) costs no boxing. (What goes to backends is
//! [`crate::fetch::req_body::ReqBody`].)

use bytes::Bytes;
use http::HeaderName;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::cache::object::CachedObject;
use crate::fetch::broadcast::BodyReader;
use crate::fetch::pool::BackendBody;
use crate::h1;
use crate::http::coding::{Coding, StreamDecoder, StreamGzip};
use crate::http::few_fields::FewFields;
use crate::http::name_set::NameSet;
use crate::http::BoxError;

/// A response body sent to a client.
pub enum RespBody {
    /// A stored body, or a synthetic one.
    Full(Option<Bytes>),
    /// A stored object's body, its delivered fields and those the delivery
    /// sets written as the response's head goes out ([`h1::ResponseBody`])
    /// rather than put into the response's map: the usual hit (see
    /// `pipeline::deliver::stored_as_is`). Boxed: the rest of the variants
    /// are a few words, and responses are moved several times.
    Stored(Box<StoredResponse>),
    /// Streamed straight from a backend (pass, or a miss not shared).
    Backend(BackendBody),
    /// Streamed from a shared fetch (a coalesced miss).
    Shared(BodyReader),
    /// One byte range of a shared fetch (a `Range` request on a miss): the
    /// bytes before it are skipped as they arrive, the stream ends after it.
    SharedRange(Window),
    /// Several buffers sent in order (an ESI page whose parts were all in
    /// the cache).
    Parts(VecDeque<Bytes>),
    /// An ESI page assembled while it is sent: pieces arrive in document
    /// order from the assembling task; an `Err` aborts the response. A
    /// piece's charge is released when the connection takes its bytes.
    Assembled(tokio::sync::mpsc::Receiver<Result<Piece, BoxError>>),
    /// A coded body decoded as it streams, for a client that does not
    /// accept its coding (boxed: rare, and the decoder is large).
    Decode(Box<Decode>),
    /// A body gzip'd as it streams (an ESI page assembled for a client
    /// that accepts gzip).
    Gzip(Box<Gzip>),
}

/// A stored object's response written from the object
/// ([`RespBody::Stored`]).
pub struct StoredResponse {
    /// The object.
    pub obj: Arc<CachedObject>,
    /// Its body, until sent.
    pub body: Option<Bytes>,
    /// The fields its policy's `vcl_deliver` removes before anything could
    /// see them (left out here too).
    pub leave_out: NameSet,
    /// The fields this delivery sets (`Age`, `X-Cache`, `Via`,
    /// `Accept-Ranges`), written after the object's.
    pub delivery: FewFields,
}

// The pieces of an assembled ESI page are the ESI engine's (`esi` cannot
// depend on this module: the cache holds parsed templates).
pub use crate::esi::assemble::{Charge, Piece};

impl RespBody {
    /// An empty body.
    pub fn empty() -> RespBody {
        RespBody::Full(None)
    }

    /// A body of the given bytes.
    pub fn full(b: impl Into<Bytes>) -> RespBody {
        let b = b.into();
        RespBody::Full(if b.is_empty() { None } else { Some(b) })
    }
}

impl std::fmt::Debug for RespBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespBody::Full(b) => write!(f, "Full({} bytes)", b.as_ref().map_or(0, |b| b.len())),
            RespBody::Stored(s) => {
                write!(
                    f,
                    "Stored({} bytes)",
                    s.body.as_ref().map_or(0, |b| b.len())
                )
            }
            RespBody::Backend(_) => f.write_str("Backend"),
            RespBody::Shared(_) => f.write_str("Shared"),
            RespBody::SharedRange(w) => write!(f, "SharedRange({} bytes)", w.take),
            RespBody::Parts(p) => write!(f, "Parts({})", p.len()),
            RespBody::Assembled(_) => f.write_str("Assembled"),
            RespBody::Decode(_) => f.write_str("Decode"),
            RespBody::Gzip(_) => f.write_str("Gzip"),
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Stored(s) => Poll::Ready(s.body.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Backend(s) => Pin::new(s).poll_frame(cx).map_err(Into::into),
            RespBody::Shared(s) => Pin::new(s).poll_frame(cx),
            RespBody::SharedRange(w) => w.poll_frame(cx),
            RespBody::Parts(p) => Poll::Ready(p.pop_front().map(|b| Ok(Frame::data(b)))),
            RespBody::Assembled(rx) => rx
                .poll_recv(cx)
                .map(|c| c.map(|c| c.map(|piece| Frame::data(piece.into_bytes())))),
            RespBody::Decode(g) => g.poll_frame(cx),
            RespBody::Gzip(g) => g.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Stored(s) => s.body.is_none(),
            RespBody::Backend(s) => s.is_end_stream(),
            RespBody::Shared(s) => s.is_end_stream(),
            RespBody::SharedRange(w) => w.take == 0,
            RespBody::Parts(p) => p.is_empty(),
            RespBody::Assembled(_) => false,
            RespBody::Decode(g) => g.done,
            RespBody::Gzip(g) => g.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespBody::Stored(s) => {
                SizeHint::with_exact(s.body.as_ref().map_or(0, |b| b.len() as u64))
            }
            RespBody::Backend(s) => s.size_hint(),
            RespBody::Shared(s) => s.size_hint(),
            RespBody::SharedRange(w) => SizeHint::with_exact(w.take),
            RespBody::Parts(p) => SizeHint::with_exact(p.iter().map(|b| b.len() as u64).sum()),
            RespBody::Assembled(_) | RespBody::Decode(_) | RespBody::Gzip(_) => SizeHint::default(),
        }
    }
}

impl RespBody {
    /// For a stored object's response ([`RespBody::Stored`]): the
    /// object, its fields left out and those the delivery sets.
    pub fn stored(&self) -> Option<&StoredResponse> {
        match self {
            RespBody::Stored(s) => Some(s),
            _ => None,
        }
    }

    /// [`RespBody::stored`], to change.
    pub fn stored_mut(&mut self) -> Option<&mut StoredResponse> {
        match self {
            RespBody::Stored(s) => Some(s),
            _ => None,
        }
    }
}

/// Whether a stored field of `name` is part of the response delivered:
/// not one a delivery sets anew (`Age`, `X-Cache`, `Accept-Ranges`:
/// `pipeline::deliver::stored_as_is` puts them in its own fields), not
/// left out. Asked for every stored field on every such hit: compared
/// with names in statics (a `HeaderName` constant compared with `==` is
/// built and dropped each time; a standard name's text is a lookup).
#[inline(always)]
pub fn stored_field_shown(name: &HeaderName, leave_out: &NameSet) -> bool {
    static AGE: HeaderName = http::header::AGE;
    static ACCEPT_RANGES: HeaderName = http::header::ACCEPT_RANGES;
    // `pipeline::deliver::X_CACHE` (this module is below the pipeline).
    static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
    let set_anew = *name == AGE || *name == ACCEPT_RANGES || *name == X_CACHE;
    !set_anew && (leave_out.is_empty() || !leave_out.contains(name))
}

/// `Content-Length` and `Date`, compared without building the constants.
static CONTENT_LENGTH: HeaderName = http::header::CONTENT_LENGTH;
static DATE: HeaderName = http::header::DATE;

impl h1::ResponseBody for RespBody {
    fn write_fields(&self, out: &mut Vec<u8>) -> bool {
        let Some(stored) = self.stored() else {
            return false;
        };
        let mut date = false;
        for (name, value) in stored.obj.fields.delivered() {
            // The server writes the length of the body it sends.
            if *name == CONTENT_LENGTH || !stored_field_shown(name, &stored.leave_out) {
                continue;
            }
            date |= *name == DATE;
            h1::write_field(out, name.as_str(), value.as_bytes());
        }
        for (name, value) in stored.delivery.as_slice() {
            h1::write_field(out, name.as_str(), value.as_bytes());
        }
        date
    }
}

/// One body turned into another chunk by chunk: gzip'd ([`Gzip`]) or
/// decoded ([`Decode`]).
pub struct Recode<C> {
    inner: RespBody,
    coder: C,
    done: bool,
}

/// What [`Recode`] runs each chunk through.
pub trait ChunkCoder {
    /// The output for one input chunk (possibly empty).
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, BoxError>;
    /// What is left once the input ended.
    fn finish(&mut self) -> Result<Bytes, BoxError>;
}

impl ChunkCoder for StreamGzip {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, BoxError> {
        Ok(StreamGzip::push(self, chunk))
    }
    fn finish(&mut self) -> Result<Bytes, BoxError> {
        Ok(StreamGzip::finish(self))
    }
}

impl ChunkCoder for StreamDecoder {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, BoxError> {
        Ok(StreamDecoder::push(self, chunk)?)
    }
    fn finish(&mut self) -> Result<Bytes, BoxError> {
        Ok(StreamDecoder::finish(self)?)
    }
}

/// A body gzip'd as its chunks arrive.
pub type Gzip = Recode<StreamGzip>;

/// A coded body decoded as its chunks arrive (see [`StreamDecoder`]).
pub type Decode = Recode<StreamDecoder>;

impl Recode<StreamGzip> {
    /// `inner` gzip'd at `level`.
    pub fn new(inner: RespBody, level: u32) -> Gzip {
        Recode {
            inner,
            coder: StreamGzip::new(level),
            done: false,
        }
    }
}

impl Recode<StreamDecoder> {
    /// `inner`, coded with `coding`, decoded: at most `limit` bytes out
    /// (more is an error).
    pub fn new(inner: RespBody, coding: Coding, limit: u64) -> Decode {
        Recode {
            inner,
            coder: StreamDecoder::new(coding, limit),
            done: false,
        }
    }
}

impl<C: ChunkCoder> Recode<C> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while !self.done {
            let out = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.coder.push(&data),
                    Err(_) => continue,
                },
                Poll::Ready(None) => {
                    self.done = true;
                    self.coder.finish()
                }
            };
            match out {
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(b) if b.is_empty() => continue,
                Ok(b) => return Poll::Ready(Some(Ok(Frame::data(b)))),
            }
        }
        Poll::Ready(None)
    }
}

/// A window on a shared body: `skip` bytes dropped, then `take` bytes sent
/// (chunks sliced, not copied), then the end.
pub struct Window {
    reader: BodyReader,
    skip: u64,
    take: u64,
}

impl Window {
    /// Bytes `skip..skip + take` of `reader`.
    pub fn new(reader: BodyReader, skip: u64, take: u64) -> Window {
        Window { reader, skip, take }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while self.take > 0 {
            let chunk = match Pin::new(&mut self.reader).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Err("shared body ended before the range".into())))
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            let n = chunk.len() as u64;
            if n <= self.skip {
                self.skip -= n;
                continue;
            }
            let start = self.skip as usize;
            let end = (self.skip + self.take).min(n) as usize;
            self.skip = 0;
            self.take -= (end - start) as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk.slice(start..end)))));
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::broadcast::Broadcast;
    use http_body_util::BodyExt;

    /// `skip`/`take` over chunks of 10: the window's bytes, exactly.
    async fn window(skip: u64, take: u64) -> Bytes {
        let bc = Broadcast::new();
        let reader = bc.subscribe(Some(30)).unwrap();
        for c in 0..3u8 {
            bc.push(Bytes::from((c * 10..c * 10 + 10).collect::<Vec<u8>>()))
                .await;
        }
        bc.finish(Ok(()));
        let body = RespBody::SharedRange(Window::new(reader, skip, take));
        assert_eq!(body.size_hint().exact(), Some(take));
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_window_slices_across_chunks() {
        let want = |r: std::ops::Range<u8>| Bytes::from(r.collect::<Vec<u8>>());
        assert_eq!(window(0, 30).await, want(0..30));
        assert_eq!(window(5, 20).await, want(5..25));
        assert_eq!(window(10, 10).await, want(10..20));
        assert_eq!(window(29, 1).await, want(29..30));
        assert_eq!(window(3, 2).await, want(3..5));
    }

    #[tokio::test]
    async fn a_window_past_the_end_is_an_error() {
        let bc = Broadcast::new();
        let reader = bc.subscribe(None).unwrap();
        bc.push(Bytes::from_static(b"abc")).await;
        bc.finish(Ok(()));
        let body = RespBody::SharedRange(Window::new(reader, 1, 5));
        assert!(body.collect().await.is_err());
    }
}
