//! Putting chunked frames back together on the receiving side.

use bytes::BytesMut;

use super::frame::{Frame, FrameKind, CHUNK_LAST};
use crate::error::FrameError;

/// Rebuilds frames that the sender cut into [`FrameKind::Chunk`]s, one connection's worth.
///
/// The sender has at most one chunked frame in flight per connection and sends its
/// pieces in order, with whole frames of other pairs in between; so one buffer per
/// connection is enough. Frames that are not chunks pass straight through. The
/// reassembled frame may not exceed `max_frame` (checked piece by piece, so a hostile
/// peer cannot make the node buffer more) nor be a chunk or handshake itself.
///
/// ```
/// use bytes::BytesMut;
/// use granary_remote::wire::{FrameDecoder, FrameHeader, FrameKind, Reassembler};
///
/// let header = FrameHeader {
///     kind: FrameKind::Tell, channel: 0, type_tag: 7, correlation: 0,
///     sender: "", recipient: "big", trace: None,
/// };
/// let whole = header.encode_with_body(&[1u8; 100], 1024).unwrap();
/// // The sender's cut: two chunks of the frame after its 4-byte length prefix.
/// let (a, b) = whole[4..].split_at(60);
/// let version = whole[4];
/// let mut wire = BytesMut::new();
/// for (piece, last) in [(a, false), (b, true)] {
///     wire.extend_from_slice(&((28 + piece.len()) as u32).to_le_bytes());
///     wire.extend_from_slice(&[version, 5]); // this wire version, kind Chunk
///     wire.extend_from_slice(&u16::from(last).to_le_bytes());
///     wire.extend_from_slice(&[0u8; 24]); // channel, type tag, correlation, name lengths
///     wire.extend_from_slice(piece);
/// }
/// let decoder = FrameDecoder::new(1024);
/// let mut reassembler = Reassembler::new(1024);
/// let first = decoder.decode(&mut wire).unwrap().unwrap();
/// assert!(reassembler.push(first).unwrap().is_none());
/// let second = decoder.decode(&mut wire).unwrap().unwrap();
/// let frame = reassembler.push(second).unwrap().unwrap();
/// assert_eq!((frame.recipient(), frame.body.len()), ("big", 100));
/// ```
#[derive(Debug)]
pub struct Reassembler {
    max_frame: u32,
    partial: BytesMut,
    in_progress: bool,
}

impl Reassembler {
    /// A reassembler for frames of at most `max_frame` bytes (after the length prefix).
    pub fn new(max_frame: u32) -> Self {
        Self {
            max_frame,
            partial: BytesMut::new(),
            in_progress: false,
        }
    }

    /// Whether part of a chunked frame is buffered.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// Bytes of the chunked frame being rebuilt.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Take one decoded frame: a whole frame comes back as is, a chunk is buffered and
    /// the last chunk of a frame gives back the rebuilt frame.
    ///
    /// On error the connection must be closed.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Frame>, FrameError> {
        if frame.kind != FrameKind::Chunk {
            return Ok(Some(frame));
        }
        let len = self.partial.len() as u64 + frame.body.len() as u64;
        if len > u64::from(self.max_frame) {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let last = frame.flags & CHUNK_LAST != 0;
        if !self.in_progress && last {
            // A frame in one piece: no copy.
            return rebuilt(super::parse_unprefixed(frame.body)?).map(Some);
        }
        self.in_progress = true;
        self.partial.extend_from_slice(&frame.body);
        if !last {
            return Ok(None);
        }
        self.in_progress = false;
        let whole = self.partial.split().freeze();
        rebuilt(super::parse_unprefixed(whole)?).map(Some)
    }
}

/// A rebuilt frame may be any kind that travels after the handshake, except a chunk.
fn rebuilt(frame: Frame) -> Result<Frame, FrameError> {
    match frame.kind {
        FrameKind::Chunk | FrameKind::Handshake => Err(FrameError::UnknownKind(frame.kind as u8)),
        _ => Ok(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_chunk_header, FrameDecoder, FrameHeader};

    fn chunked(body_len: usize, piece: usize, max: u32) -> BytesMut {
        let header = FrameHeader {
            kind: FrameKind::Tell,
            channel: 1,
            type_tag: 2,
            correlation: 3,
            sender: "s",
            recipient: "r",
            trace: None,
        };
        let whole = header.encode_with_body(&vec![9u8; body_len], max).unwrap();
        let rest = &whole[4..];
        let mut out = BytesMut::new();
        let pieces: Vec<&[u8]> = rest.chunks(piece).collect();
        for (i, p) in pieces.iter().enumerate() {
            encode_chunk_header(p.len(), i + 1 == pieces.len(), &mut out);
            out.extend_from_slice(p);
        }
        out
    }

    fn drain(buf: &mut BytesMut, max: u32) -> Result<Vec<Frame>, FrameError> {
        let decoder = FrameDecoder::new(max);
        let mut r = Reassembler::new(max);
        let mut out = Vec::new();
        while let Some(f) = decoder.decode(buf)? {
            out.extend(r.push(f)?);
        }
        Ok(out)
    }

    #[test]
    fn pieces_rebuild_the_original_frame() {
        let mut wire = chunked(10_000, 1000, 1 << 20);
        let frames = drain(&mut wire, 1 << 20).unwrap();
        assert_eq!(frames.len(), 1);
        let f = &frames[0];
        assert_eq!((f.sender(), f.recipient(), f.correlation), ("s", "r", 3));
        assert_eq!(f.body.len(), 10_000);
    }

    #[test]
    fn a_frame_rebuilt_beyond_the_maximum_is_refused() {
        let mut wire = chunked(10_000, 1000, 1 << 20);
        assert!(matches!(
            drain(&mut wire, 5000),
            Err(FrameError::TooLarge { max: 5000, .. })
        ));
    }

    #[test]
    fn a_chunk_inside_a_chunk_is_refused() {
        let mut inner = BytesMut::new();
        encode_chunk_header(0, true, &mut inner);
        let mut wire = BytesMut::new();
        encode_chunk_header(inner.len() - 4, true, &mut wire);
        wire.extend_from_slice(&inner[4..]);
        assert!(matches!(
            drain(&mut wire, 1 << 20),
            Err(FrameError::UnknownKind(5))
        ));
    }
}
