//! Splitting frames off a read buffer, defensively.

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{Frame, FrameKind};
use super::{
    TraceContext, DEFAULT_MAX_FRAME, FIXED_HEADER, FRAME_VERSION, LENGTH_PREFIX, TRACE_CONTEXT_LEN,
};
use crate::error::FrameError;

/// Decodes frames from a growing read buffer.
///
/// `decode` returns `Ok(None)` until a whole frame is buffered, then splits it off without
/// copying. A length prefix above the maximum is rejected as soon as the prefix is read, so
/// a hostile peer cannot make the node buffer a huge frame. No input makes it panic
/// (checked by the fuzz target in `fuzz/` and the corpus replay test).
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames larger than `max_frame` bytes (after the prefix).
    pub const fn new(max_frame: u32) -> Self {
        Self { max_frame }
    }

    /// The configured maximum.
    pub const fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Bytes still needed before the next frame can be decoded (a read-size hint).
    pub fn needed(&self, buf: &[u8]) -> usize {
        if buf.len() < LENGTH_PREFIX {
            return LENGTH_PREFIX - buf.len();
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        (LENGTH_PREFIX + len).saturating_sub(buf.len())
    }

    /// Bytes `buf` holds for frames not yet split off, counting the room [`decode`]
    /// reserves for a frame whose length prefix has arrived but not the rest: what a
    /// connection's read buffer will occupy. A length above the maximum is not counted
    /// (decoding it fails at once).
    ///
    /// [`decode`]: FrameDecoder::decode
    pub fn pending(&self, buf: &[u8]) -> usize {
        if buf.len() < LENGTH_PREFIX {
            return buf.len();
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len > self.max_frame {
            return buf.len();
        }
        buf.len().max(LENGTH_PREFIX + len as usize)
    }

    /// Split the next complete frame off `buf`, if one is there.
    ///
    /// On error the buffer's contents are unspecified and the connection must be closed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len: u64::from(len),
                max: self.max_frame,
            });
        }
        if (len as usize) < FIXED_HEADER {
            return Err(FrameError::Truncated("frame shorter than the fixed header"));
        }
        if buf.len() < LENGTH_PREFIX + len as usize {
            // Reserve once for the whole frame so the reader does not grow in small steps.
            buf.reserve(LENGTH_PREFIX + len as usize - buf.len());
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX);
        let frame = buf.split_to(len as usize).freeze();
        parse(frame).map(Some)
    }

    /// Decode exactly one frame from `bytes` (length prefix included); trailing bytes are an
    /// error. Used by the fuzz target and tests.
    pub fn decode_exact(&self, bytes: &[u8]) -> Result<Frame, FrameError> {
        let mut buf = BytesMut::from(bytes);
        match self.decode(&mut buf)? {
            Some(frame) if buf.is_empty() => Ok(frame),
            Some(_) => Err(FrameError::Truncated("trailing bytes after the frame")),
            None => Err(FrameError::Truncated("incomplete frame")),
        }
    }
}

/// Parse one whole frame without its length prefix (a reassembled chunked frame).
pub(crate) fn parse_unprefixed(frame: Bytes) -> Result<Frame, FrameError> {
    if frame.len() < FIXED_HEADER {
        return Err(FrameError::Truncated("frame shorter than the fixed header"));
    }
    parse(frame)
}

/// Parse one frame whose length prefix is already removed; `frame.len() >= FIXED_HEADER`.
fn parse(mut frame: Bytes) -> Result<Frame, FrameError> {
    let version = frame.get_u8();
    if version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let kind = FrameKind::from_u8(frame.get_u8())?;
    let flags = frame.get_u16_le();
    let allowed = if kind == FrameKind::Chunk {
        super::frame::CHUNK_LAST
    } else {
        super::frame::TRACED
    };
    if flags & !allowed != 0 {
        return Err(FrameError::ReservedFlags(flags));
    }
    let channel = frame.get_u32_le();
    let type_tag = frame.get_u64_le();
    let correlation = frame.get_u64_le();
    let sender_len = frame.get_u16_le() as usize;
    let recipient_len = frame.get_u16_le() as usize;
    if frame.len() < sender_len + recipient_len {
        return Err(FrameError::Truncated(
            "sender/recipient longer than the frame",
        ));
    }
    let sender = frame.split_to(sender_len);
    let recipient = frame.split_to(recipient_len);
    if std::str::from_utf8(&sender).is_err() {
        return Err(FrameError::InvalidUtf8("sender"));
    }
    if std::str::from_utf8(&recipient).is_err() {
        return Err(FrameError::InvalidUtf8("recipient"));
    }
    let trace = if flags & super::frame::TRACED != 0 && kind != FrameKind::Chunk {
        if frame.len() < TRACE_CONTEXT_LEN {
            return Err(FrameError::Truncated("trace context longer than the frame"));
        }
        let raw = frame.split_to(TRACE_CONTEXT_LEN);
        // An all-zero id is an invalid context: the frame is delivered untraced.
        TraceContext::read(&raw)
    } else {
        None
    };
    Ok(Frame {
        kind,
        channel,
        type_tag,
        correlation,
        flags,
        trace,
        sender,
        recipient,
        body: frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FrameHeader, DATA_CHANNEL};

    fn header<'a>(sender: &'a str, recipient: &'a str) -> FrameHeader<'a> {
        FrameHeader {
            kind: FrameKind::Ask,
            channel: DATA_CHANNEL,
            type_tag: 0xdead_beef,
            correlation: 42,
            sender,
            recipient,
            trace: None,
        }
    }

    #[test]
    fn a_trace_context_travels_and_untraced_frames_pay_nothing() {
        let cx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let plain = header("s", "rcpt").encode_with_body(b"body", 1024).unwrap();
        let traced = FrameHeader {
            trace: cx,
            ..header("s", "rcpt")
        }
        .encode_with_body(b"body", 1024)
        .unwrap();
        assert_eq!(traced.len(), plain.len() + TRACE_CONTEXT_LEN);
        let frame = FrameDecoder::new(1024).decode_exact(&traced).unwrap();
        assert_eq!(frame.trace, cx);
        assert_eq!(frame.flags, crate::wire::TRACED);
        assert_eq!(&frame.body[..], b"body");
        assert_eq!(frame.recipient(), "rcpt");
        assert_eq!(
            FrameDecoder::new(1024).decode_exact(&plain).unwrap().trace,
            None
        );
        // The flag set but no room for the context: a typed error, no panic.
        let mut cut = plain.to_vec();
        cut[6] = crate::wire::TRACED as u8;
        assert!(matches!(
            FrameDecoder::new(1024).decode_exact(&cut),
            Err(FrameError::Truncated(_))
        ));
    }

    #[test]
    fn encoded_frame_decodes_to_the_same_fields() {
        let bytes = header("s", "rcpt").encode_with_body(b"body", 1024).unwrap();
        let frame = FrameDecoder::new(1024).decode_exact(&bytes).unwrap();
        assert_eq!(frame.kind, FrameKind::Ask);
        assert_eq!(frame.channel, DATA_CHANNEL);
        assert_eq!(frame.type_tag, 0xdead_beef);
        assert_eq!(frame.correlation, 42);
        assert_eq!((frame.sender(), frame.recipient()), ("s", "rcpt"));
        assert_eq!(&frame.body[..], b"body");
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let mut stream = Vec::new();
        for i in 0..10u8 {
            let body = vec![i; i as usize * 100];
            stream.extend_from_slice(&header("a", "b").encode_with_body(&body, 4096).unwrap());
        }
        let dec = FrameDecoder::new(4096);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            buf.extend_from_slice(chunk);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f.body.len());
            }
        }
        assert_eq!(got, (0..10).map(|i| i * 100).collect::<Vec<_>>());
    }

    #[test]
    fn pending_counts_the_room_a_partial_frame_will_take() {
        let dec = FrameDecoder::new(4096);
        assert_eq!(dec.pending(&[1, 0]), 2);
        let mut partial = 1000u32.to_le_bytes().to_vec();
        partial.extend_from_slice(&[0; 10]);
        assert_eq!(dec.pending(&partial), 1004);
        assert_eq!(dec.pending(&u32::MAX.to_le_bytes()), 4);
        let two = header("a", "b")
            .encode_with_body(b"x", 4096)
            .unwrap()
            .repeat(2);
        assert_eq!(dec.pending(&two), two.len());
    }

    #[test]
    fn oversized_frame_is_refused_at_the_sender_and_at_the_receiver() {
        let err = header("", "").encode_with_body(&[0; 100], 64).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 64, .. }));
        let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        let err = FrameDecoder::new(64).decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == u64::from(u32::MAX)));
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let good = header("s", "r")
            .encode_with_body(b"", 1024)
            .unwrap()
            .to_vec();
        let dec = FrameDecoder::new(1024);
        let mut bad_version = good.clone();
        bad_version[4] = 9;
        assert_eq!(
            dec.decode_exact(&bad_version),
            Err(FrameError::UnsupportedVersion(9))
        );
        let mut bad_kind = good.clone();
        bad_kind[5] = 200;
        assert_eq!(
            dec.decode_exact(&bad_kind),
            Err(FrameError::UnknownKind(200))
        );
        let mut bad_flags = good.clone();
        bad_flags[6] = 1;
        assert_eq!(
            dec.decode_exact(&bad_flags),
            Err(FrameError::ReservedFlags(1))
        );
        let mut bad_utf8 = good.clone();
        bad_utf8[32] = 0xff;
        assert_eq!(
            dec.decode_exact(&bad_utf8),
            Err(FrameError::InvalidUtf8("sender"))
        );
        let mut long_sender = good.clone();
        long_sender[28] = 200;
        assert!(matches!(
            dec.decode_exact(&long_sender),
            Err(FrameError::Truncated(_))
        ));
        let short = [3u8, 0, 0, 0, 1, 1, 0];
        assert!(matches!(
            dec.decode_exact(&short),
            Err(FrameError::Truncated(_))
        ));
    }
}
