//! One backend body, many readers: the streaming half of request coalescing.
//!
//! The fetch task pushes chunks as they arrive; every client waiting on the
//! same miss reads them at its own pace, so the first bytes reach all of them
//! before the backend has sent the last. While the object may still be stored
//! every chunk is kept (the store needs them all). Once it cannot be stored
//! (too large), chunks every reader has passed are dropped and the fetch is
//! paced by the slowest reader within a bounded window, so a 1 GiB body never
//! sits whole in memory.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

use crate::http::BoxError;

/// Bytes buffered ahead of the slowest reader once the body is not stored.
const WINDOW: usize = 1 << 20;

/// The shared body of one fetch.
#[derive(Default)]
pub struct Broadcast {
    state: Mutex<State>,
    writer_wake: Notify,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    /// Sequence number of `chunks[0]`.
    first: u64,
    /// Bytes in `chunks`.
    buffered: usize,
    /// Bytes pushed in all.
    total: u64,
    /// False once the body is known not to be stored.
    dropping: bool,
    end: Option<Result<(), Arc<str>>>,
    readers: Vec<Option<Slot>>,
}

struct Slot {
    pos: u64,
    waker: Option<Waker>,
}

impl State {
    fn wake_readers(&mut self) {
        for slot in self.readers.iter_mut().flatten() {
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    fn live_readers(&self) -> usize {
        self.readers.iter().filter(|r| r.is_some()).count()
    }

    /// Drops the chunks every reader has passed (only once not storing).
    fn trim(&mut self) {
        if !self.dropping {
            return;
        }
        let min = self
            .readers
            .iter()
            .flatten()
            .map(|s| s.pos)
            .min()
            .unwrap_or(self.first + self.chunks.len() as u64);
        while self.first < min {
            match self.chunks.pop_front() {
                Some(c) => {
                    self.buffered -= c.len();
                    self.first += 1;
                }
                None => break,
            }
        }
    }
}

impl Broadcast {
    /// A new, empty shared body.
    pub fn new() -> Arc<Broadcast> {
        Arc::new(Broadcast::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reader from the first byte, or `None` when early chunks are already
    /// gone (the body is not being stored and has started to be dropped).
    pub fn subscribe(self: &Arc<Self>, size: Option<u64>) -> Option<BodyReader> {
        let mut st = self.lock();
        if st.dropping && st.first > 0 {
            return None;
        }
        let slot = Slot {
            pos: 0,
            waker: None,
        };
        let id = match st.readers.iter().position(|r| r.is_none()) {
            Some(i) => {
                st.readers[i] = Some(slot);
                i
            }
            None => {
                st.readers.push(Some(slot));
                st.readers.len() - 1
            }
        };
        Some(BodyReader {
            bc: self.clone(),
            id,
            size,
            done: false,
        })
    }

    /// Appends a chunk and wakes readers. Once the body is not stored, waits
    /// while more than the window is buffered ahead of the slowest reader.
    /// Returns false when nobody reads any more and nothing is stored: the
    /// fetch may stop.
    pub async fn push(&self, chunk: Bytes) -> bool {
        {
            let mut st = self.lock();
            st.total += chunk.len() as u64;
            st.buffered += chunk.len();
            st.chunks.push_back(chunk);
            st.wake_readers();
        }
        loop {
            let notified = self.writer_wake.notified();
            {
                let mut st = self.lock();
                if !st.dropping {
                    return true;
                }
                st.trim();
                if st.live_readers() == 0 {
                    return false;
                }
                if st.buffered <= WINDOW {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Bytes pushed so far.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Marks the body as not stored: from now on read chunks are dropped.
    pub fn stop_retaining(&self) {
        let mut st = self.lock();
        st.dropping = true;
        st.trim();
    }

    /// Ends the body, cleanly or with an error readers will see.
    pub fn finish(&self, result: Result<(), String>) {
        let mut st = self.lock();
        st.end = Some(result.map_err(Arc::from));
        st.wake_readers();
    }

    /// The whole body, when every chunk was retained.
    pub fn collect(&self) -> Option<Bytes> {
        let st = self.lock();
        if st.dropping || st.first != 0 {
            return None;
        }
        match st.chunks.len() {
            0 => Some(Bytes::new()),
            1 => st.chunks.front().cloned(),
            _ => {
                let mut all = BytesMut::with_capacity(st.buffered);
                for c in &st.chunks {
                    all.extend_from_slice(c);
                }
                Some(all.freeze())
            }
        }
    }

    /// Whether any reader is still attached.
    pub fn has_readers(&self) -> bool {
        self.lock().live_readers() > 0
    }
}

/// One client's view of a shared body.
pub struct BodyReader {
    bc: Arc<Broadcast>,
    id: usize,
    size: Option<u64>,
    done: bool,
}

impl Body for BodyReader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let bc = self.bc.clone();
        let mut st = bc.lock();
        let next_seq = st.first + st.chunks.len() as u64;
        let Some(Some(slot)) = st.readers.get(self.id) else {
            return Poll::Ready(None);
        };
        let pos = slot.pos;
        if pos < next_seq {
            let Some(chunk) = st
                .chunks
                .get((pos.saturating_sub(st.first)) as usize)
                .cloned()
            else {
                return Poll::Ready(Some(Err("shared body lost its place".into())));
            };
            if let Some(Some(slot)) = st.readers.get_mut(self.id) {
                slot.pos += 1;
            }
            if st.dropping {
                st.trim();
                drop(st);
                bc.writer_wake.notify_one();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &st.end {
            Some(Ok(())) => {
                drop(st);
                self.done = true;
                Poll::Ready(None)
            }
            Some(Err(msg)) => {
                let msg = msg.to_string();
                drop(st);
                self.done = true;
                Poll::Ready(Some(Err(msg.into())))
            }
            None => {
                if let Some(Some(slot)) = st.readers.get_mut(self.id) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        let st = self.bc.lock();
        let at_end = match st.readers.get(self.id) {
            Some(Some(slot)) => slot.pos == st.first + st.chunks.len() as u64,
            _ => true,
        };
        at_end && matches!(st.end, Some(Ok(())))
    }

    fn size_hint(&self) -> SizeHint {
        match self.size {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        {
            let mut st = self.bc.lock();
            if let Some(slot) = st.readers.get_mut(self.id) {
                *slot = None;
            }
            st.trim();
        }
        self.bc.writer_wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn readers_see_every_chunk_in_order() {
        let bc = Broadcast::new();
        let r1 = bc.subscribe(None).unwrap();
        let writer = {
            let bc = bc.clone();
            tokio::spawn(async move {
                for i in 0..100u8 {
                    bc.push(Bytes::from(vec![i; 10])).await;
                    tokio::task::yield_now().await;
                }
                bc.finish(Ok(()));
            })
        };
        let r2 = bc.subscribe(None).unwrap();
        let (a, b) = tokio::join!(r1.collect(), r2.collect());
        writer.await.unwrap();
        let a = a.unwrap().to_bytes();
        let b = b.unwrap().to_bytes();
        assert_eq!(a.len(), 1000);
        assert_eq!(a, b);
        assert_eq!(bc.collect().unwrap(), a);
    }

    #[tokio::test]
    async fn errors_reach_readers() {
        let bc = Broadcast::new();
        let r = bc.subscribe(None).unwrap();
        bc.push(Bytes::from_static(b"abc")).await;
        bc.finish(Err("cut".into()));
        assert!(r.collect().await.is_err());
    }

    #[tokio::test]
    async fn dropping_mode_bounds_memory_and_stops_without_readers() {
        let bc = Broadcast::new();
        bc.stop_retaining();
        let r = bc.subscribe(None).unwrap();
        let writer = {
            let bc = bc.clone();
            tokio::spawn(async move {
                for _ in 0..64 {
                    if !bc.push(Bytes::from(vec![0u8; 64 << 10])).await {
                        return false;
                    }
                    assert!(bc.lock().buffered <= WINDOW + (64 << 10));
                }
                bc.finish(Ok(()));
                true
            })
        };
        let n = r.collect().await.unwrap().to_bytes().len();
        assert_eq!(n, 64 * (64 << 10));
        assert!(writer.await.unwrap());
        assert!(bc.collect().is_none());

        let bc = Broadcast::new();
        bc.stop_retaining();
        let r = bc.subscribe(None).unwrap();
        drop(r);
        assert!(!bc.push(Bytes::from_static(b"x")).await);
    }
}
