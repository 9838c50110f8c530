//! Reading a response body off its backend connection, with the decoder
//! the client side shares with the server side (`crate::h1::Decoder`).

use bytes::Bytes;
use std::task::{Context, Poll};

use super::{H1Conn, H1Error};
use crate::h1::{Decoder, Step, BODY_READ_SIZE};

impl Decoder {
    /// The next piece of the body from `conn`; `Ready(None)` at its end.
    /// After a piece, the framing that follows it in the buffer (a chunk's
    /// CRLF, the last chunk, trailers) is read past at once, so that
    /// [`Decoder::is_done`] tells the end without another poll.
    pub fn poll_data(
        &mut self,
        conn: &mut H1Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, H1Error>> {
        loop {
            match self.step(&mut conn.buf, false)? {
                Step::Data(data) => {
                    // Read past what follows the data in the buffer.
                    self.step(&mut conn.buf, true)?;
                    return Poll::Ready(Ok(Some(data)));
                }
                Step::End => return Poll::Ready(Ok(None)),
                Step::NeedMore => {}
            }
            let want = self
                .data_left()
                .map_or(0, |n| usize::try_from(n).unwrap_or(BODY_READ_SIZE));
            let n = std::task::ready!(conn.poll_fill(cx, want)).map_err(H1Error::Io)?;
            if n == 0 {
                conn.reusable = false;
                if self.end_at_close() {
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(H1Error::BodyCut));
            }
        }
    }
}
