//! Reading an HTTP/1.1 message body out of a read buffer: by length, by
//! chunked coding (extensions and trailer fields read past), or to the
//! connection's close. Data comes out as slices of the read buffer. Used
//! for responses from backends (`fetch::h1`) and requests from clients.

use bytes::{Buf, Bytes, BytesMut};

/// Bad chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(pub &'static str);

/// Longest chunk-size line (size and extensions) read.
const MAX_CHUNK_LINE: usize = 4 << 10;
/// Most bytes of trailer fields read past (they are not passed on).
const MAX_TRAILERS: usize = 16 << 10;

/// Where a body's reading stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes left.
    Length(u64),
    /// Chunked: a chunk-size line next.
    ChunkSize,
    /// Chunked: this many bytes of the current chunk left.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data next.
    ChunkEnd,
    /// Chunked: trailer lines (this many bytes of them read so far).
    Trailers(usize),
    /// Everything until the connection closes.
    UntilClose,
    /// The body has been read whole.
    Done,
}

/// What one step over the buffered bytes gave.
pub enum Step {
    /// A piece of the body.
    Data(Bytes),
    /// The buffer holds no more of it: read more.
    NeedMore,
    /// The body's end.
    End,
}

impl Decoder {
    /// No body.
    pub fn empty() -> Decoder {
        Decoder { state: State::Done }
    }

    /// `n` bytes.
    pub fn length(n: u64) -> Decoder {
        Decoder {
            state: if n == 0 {
                State::Done
            } else {
                State::Length(n)
            },
        }
    }

    /// Chunked coding.
    pub fn chunked() -> Decoder {
        Decoder {
            state: State::ChunkSize,
        }
    }

    /// Delimited by the connection's close.
    pub fn until_close() -> Decoder {
        Decoder {
            state: State::UntilClose,
        }
    }

    /// Whether the body has been read whole.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the current piece (a length's rest, a chunk's rest) still
    /// to come, when the buffer has none of them: how much a read may ask for.
    pub fn data_left(&self) -> Option<u64> {
        match self.state {
            State::Length(n) | State::ChunkData(n) => Some(n),
            _ => None,
        }
    }

    /// At the connection's close: ends a body delimited by it (whether it
    /// was).
    pub fn end_at_close(&mut self) -> bool {
        if self.state == State::UntilClose {
            self.state = State::Done;
            return true;
        }
        false
    }

    /// Bytes left when the framing says (a length).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// One step over `buf`: up to the next piece of data, or with
    /// `framing_only` up to where data would start.
    pub fn step(&mut self, buf: &mut BytesMut, framing_only: bool) -> Result<Step, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(_) | State::ChunkData(_) | State::UntilClose if framing_only => {
                    return Ok(Step::NeedMore)
                }
                State::Length(n) | State::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Step::Data(data));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("no CRLF after a chunk's data"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let Some(end) = line_end(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Step::NeedMore);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 1);
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::Trailers(read) => {
                    let Some(end) = line_end(buf, MAX_TRAILERS - read)? else {
                        return Ok(Step::NeedMore);
                    };
                    let blank = end == 1;
                    buf.advance(end + 1);
                    self.state = if blank {
                        State::Done
                    } else {
                        State::Trailers(read + end + 1)
                    };
                }
            }
        }
    }
}

/// The index of the `\n` ending the CRLF-terminated line at the start of
/// `buf`; `None` while the line is incomplete; an error past `max` bytes
/// or for a bare LF.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, ChunkError> {
    match buf.iter().take(max).position(|&b| b == b'\n') {
        Some(0) => Err(ChunkError("bare LF")),
        Some(i) if buf[i - 1] != b'\r' => Err(ChunkError("bare LF")),
        Some(i) => Ok(Some(i)),
        None if buf.len() >= max => Err(ChunkError("line too long")),
        None => Ok(None),
    }
}

/// The size on a chunk-size line (`line` ends with its CR): hex digits,
/// then optional whitespace and `;extensions`, which are read past.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let line = &line[..line.len() - 1];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("chunk size is not hex"));
    }
    // Any number of leading zeros (1*HEXDIG); a value past u64 is refused
    // below, and the line's length is bounded by MAX_CHUNK_LINE.
    let rest = &line[digits..];
    let rest_ok = rest.is_empty()
        || rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .is_none_or(|i| rest[i] == b';');
    if !rest_ok {
        return Err(ChunkError("junk after the chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0);
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(ChunkError("chunk size too large"))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a decoder in two pieces cut at `cut`, as reads
    /// would; returns the data and whether the end was found.
    fn decode_cut(
        mut decoder: Decoder,
        wire: &[u8],
        cut: usize,
    ) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in [&wire[..cut], &wire[cut..]] {
            buf.extend_from_slice(piece);
            loop {
                match decoder.step(&mut buf, false)? {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::End => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_wherever_they_are_cut() {
        let wire = b"5;ext=\"a b\"\r\nhello\r\n1 \r\n \r\n00000000000000000000005\r\nworld\r\n000000000000000000000\r\nTrailer: x\r\n\r\n";
        for cut in 0..=wire.len() {
            let (data, end) = decode_cut(Decoder::chunked(), wire, cut).expect("valid");
            assert_eq!(data, b"hello world", "cut at {cut}");
            assert!(end, "cut at {cut}");
        }
    }

    #[test]
    fn bad_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5 x\r\nhello\r\n",
            b"11111111111111111\r\n",
            b"ffffffffffffffff\r\n",
        ] {
            let got = decode_cut(Decoder::chunked(), wire, wire.len());
            if wire.starts_with(b"ffff") {
                // 2^64-1 is a valid size; the body is then simply short.
                assert!(matches!(got, Ok((_, false))), "{wire:?}");
            } else {
                assert!(got.is_err(), "{:?} accepted", String::from_utf8_lossy(wire));
            }
        }
        let long_line = [b'1'; MAX_CHUNK_LINE + 1];
        assert!(decode_cut(Decoder::chunked(), &long_line, 0).is_err());
        let mut trailers = b"0\r\n".to_vec();
        trailers
            .extend(std::iter::repeat_n(b"X-T: y\r\n".as_slice(), MAX_TRAILERS / 8 + 1).flatten());
        assert!(decode_cut(Decoder::chunked(), &trailers, 3).is_err());
    }

    #[test]
    fn lengths_stop_at_their_end_and_leave_the_rest() {
        let mut buf = BytesMut::from(&b"helloNEXT"[..]);
        let mut d = Decoder::length(5);
        assert!(matches!(d.step(&mut buf, false), Ok(Step::Data(b)) if b == "hello"));
        assert!(d.is_done());
        assert_eq!(&buf[..], b"NEXT");
        assert!(Decoder::length(0).is_done());
        assert_eq!(Decoder::length(7).remaining(), Some(7));
        assert_eq!(Decoder::chunked().remaining(), None);
    }
}
