//! Frame kinds, the header to encode and the decoded frame.

use bytes::{BufMut, Bytes, BytesMut};

use super::{TraceContext, FIXED_HEADER, FRAME_VERSION, TRACE_CONTEXT_LEN};
use crate::error::FrameError;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A handshake step (only before a connection is authenticated).
    Handshake = 0,
    /// A one-way user message.
    Tell = 1,
    /// A request that expects a [`FrameKind::Reply`] with the same correlation id.
    Ask = 2,
    /// The answer to an [`FrameKind::Ask`].
    Reply = 3,
    /// System traffic (watch, terminated, heartbeats, membership).
    System = 4,
    /// A piece of a larger frame cut up by the sender so that other frames on the
    /// connection need not wait for all of it (`docs/wire.md`, "Chunks"). Reassembled
    /// by the receiving transport ([`Reassembler`](super::Reassembler)); the inbound
    /// handler never sees one.
    Chunk = 5,
}

impl FrameKind {
    /// Parse the kind byte.
    pub fn from_u8(b: u8) -> Result<Self, FrameError> {
        Ok(match b {
            0 => Self::Handshake,
            1 => Self::Tell,
            2 => Self::Ask,
            3 => Self::Reply,
            4 => Self::System,
            5 => Self::Chunk,
            other => return Err(FrameError::UnknownKind(other)),
        })
    }
}

/// The header fields of a frame to send.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use granary_remote::wire::{FrameDecoder, FrameHeader, FrameKind, DATA_CHANNEL};
///
/// let header = FrameHeader {
///     kind: FrameKind::Tell,
///     channel: DATA_CHANNEL,
///     type_tag: 7,
///     correlation: 0,
///     sender: "a",
///     recipient: "b",
///     trace: None,
/// };
/// let mut buf = BytesMut::new();
/// header.encode(3, 1024, &mut buf).unwrap();
/// buf.extend_from_slice(b"xyz");
/// let frame = FrameDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
/// assert_eq!(frame.recipient(), "b");
/// assert_eq!(&frame.body[..], b"xyz");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader<'a> {
    /// Frame kind.
    pub kind: FrameKind,
    /// Channel id ([`channel_id`](super::channel_id) of the channel name).
    pub channel: u32,
    /// Message type tag ([`type_tag`](crate::type_tag) of the stable name); 0 if none.
    pub type_tag: u64,
    /// Correlation id of an ask and its reply; 0 if none.
    pub correlation: u64,
    /// Sending actor's name on its node ("" if none).
    pub sender: &'a str,
    /// Recipient actor's name on the receiving node ("" for node-level traffic).
    pub recipient: &'a str,
    /// The sender's trace context, if it was inside a traced span: 25 more bytes and the
    /// [`TRACED`] flag; `None` costs nothing.
    pub trace: Option<TraceContext>,
}

impl<'a> FrameHeader<'a> {
    /// A one-way message of type `type_tag` to `recipient`, from no actor, untraced, on
    /// channel 0 (the transport sets the channel from its `SendOptions`).
    ///
    /// ```
    /// use granary_remote::wire::{FrameHeader, FrameKind};
    /// let header = FrameHeader::tell(7, "inbox");
    /// assert_eq!((header.kind, header.recipient, header.sender), (FrameKind::Tell, "inbox", ""));
    /// ```
    pub const fn tell(type_tag: u64, recipient: &'a str) -> Self {
        FrameHeader {
            kind: FrameKind::Tell,
            channel: 0,
            type_tag,
            correlation: 0,
            sender: "",
            recipient,
            trace: None,
        }
    }
}

impl FrameHeader<'_> {
    /// Size of the frame after the length prefix for a body of `body_len` bytes.
    pub fn frame_len(&self, body_len: usize) -> u64 {
        (FIXED_HEADER + self.sender.len() + self.recipient.len() + self.trace_len()) as u64
            + body_len as u64
    }

    fn trace_len(&self) -> usize {
        if self.trace.is_some() {
            TRACE_CONTEXT_LEN
        } else {
            0
        }
    }

    /// Append the length prefix and header for a body of `body_len` bytes to `dst`.
    ///
    /// The caller appends the body (or sends it as its own buffer right after).
    /// A frame larger than `max_frame` is [`FrameError::TooLarge`] and nothing is written.
    pub fn encode(
        &self,
        body_len: usize,
        max_frame: u32,
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        let sender_len =
            u16::try_from(self.sender.len()).map_err(|_| FrameError::FieldTooLong("sender"))?;
        let recipient_len = u16::try_from(self.recipient.len())
            .map_err(|_| FrameError::FieldTooLong("recipient"))?;
        let len = self.frame_len(body_len);
        if len > u64::from(max_frame) {
            return Err(FrameError::TooLarge {
                len,
                max: max_frame,
            });
        }
        dst.reserve(4 + FIXED_HEADER + self.sender.len() + self.recipient.len() + self.trace_len());
        dst.put_u32_le(len as u32);
        dst.put_u8(FRAME_VERSION);
        dst.put_u8(self.kind as u8);
        dst.put_u16_le(if self.trace.is_some() {
            TRACED
        } else {
            NO_FLAGS
        });
        dst.put_u32_le(self.channel);
        dst.put_u64_le(self.type_tag);
        dst.put_u64_le(self.correlation);
        dst.put_u16_le(sender_len);
        dst.put_u16_le(recipient_len);
        dst.put_slice(self.sender.as_bytes());
        dst.put_slice(self.recipient.as_bytes());
        if let Some(trace) = &self.trace {
            trace.write(dst);
        }
        Ok(())
    }

    /// Encode the whole frame (header and body) into one contiguous buffer.
    pub fn encode_with_body(&self, body: &[u8], max_frame: u32) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::with_capacity(4 + self.frame_len(body.len()) as usize);
        self.encode(body.len(), max_frame, &mut buf)?;
        buf.put_slice(body);
        Ok(buf.freeze())
    }
}

/// Flags of every frame except a chunk.
const NO_FLAGS: u16 = 0;

/// Flag bit of a [`FrameKind::Chunk`]: this piece is the last one of its frame.
pub const CHUNK_LAST: u16 = 0x0001;

/// Flag bit of any frame but a chunk: a [`TraceContext`] follows the recipient's name
/// (since protocol version 3; `docs/wire.md`, "Trace context").
pub const TRACED: u16 = 0x0002;

/// Bytes a chunk adds in front of its piece: length prefix and fixed header, no names.
pub(crate) const CHUNK_OVERHEAD: usize = super::LENGTH_PREFIX + FIXED_HEADER;

/// Append the length prefix and header of a [`FrameKind::Chunk`] carrying `piece_len`
/// bytes of a larger frame; the caller sends the piece right after.
pub(crate) fn encode_chunk_header(piece_len: usize, last: bool, dst: &mut BytesMut) {
    dst.reserve(CHUNK_OVERHEAD);
    dst.put_u32_le((FIXED_HEADER + piece_len) as u32);
    dst.put_u8(FRAME_VERSION);
    dst.put_u8(FrameKind::Chunk as u8);
    dst.put_u16_le(if last { CHUNK_LAST } else { NO_FLAGS });
    dst.put_u32_le(0);
    dst.put_u64_le(0);
    dst.put_u64_le(0);
    dst.put_u16_le(0);
    dst.put_u16_le(0);
}

/// A decoded frame; sender, recipient and body share the read buffer (no copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame kind.
    pub kind: FrameKind,
    /// Channel id.
    pub channel: u32,
    /// Message type tag.
    pub type_tag: u64,
    /// Correlation id (0 if none).
    pub correlation: u64,
    /// Flag bits: [`CHUNK_LAST`] on the last chunk of a frame, [`TRACED`] when the frame
    /// carries a trace context, 0 otherwise.
    pub flags: u16,
    /// The sender's trace context, when the frame carries one.
    pub trace: Option<TraceContext>,
    pub(crate) sender: Bytes,
    pub(crate) recipient: Bytes,
    /// The undecoded body.
    pub body: Bytes,
}

impl Frame {
    /// The sending actor's name ("" if none). Validated as UTF-8 when decoded.
    pub fn sender(&self) -> &str {
        std::str::from_utf8(&self.sender).unwrap_or_default()
    }

    /// The recipient actor's name ("" for node-level traffic). Validated when decoded.
    pub fn recipient(&self) -> &str {
        std::str::from_utf8(&self.recipient).unwrap_or_default()
    }

    /// The header of this frame, for re-encoding it.
    pub fn header(&self) -> FrameHeader<'_> {
        FrameHeader {
            kind: self.kind,
            channel: self.channel,
            type_tag: self.type_tag,
            correlation: self.correlation,
            sender: self.sender(),
            recipient: self.recipient(),
            trace: self.trace,
        }
    }
}
