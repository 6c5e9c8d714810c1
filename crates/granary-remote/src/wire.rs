//! The wire format: length-prefixed frames with a versioned fixed header.
//!
//! See `docs/wire.md` for the byte layout. Encoding writes the header into a
//! [`BytesMut`](bytes::BytesMut) and keeps the body as its own [`Bytes`](bytes::Bytes), so
//! the writer can hand large bodies to a vectored write without copying them. Decoding
//! splits frames off the read buffer as `Bytes` (no copy) and never panics: every malformed
//! input is a [`FrameError`](crate::FrameError).

mod decoder;
mod frame;
mod reassembler;
mod trace_context;

pub use decoder::FrameDecoder;
pub use frame::{Frame, FrameHeader, FrameKind, CHUNK_LAST, TRACED};
pub use reassembler::Reassembler;
pub use trace_context::{TraceContext, TRACE_CONTEXT_LEN};

pub(crate) use decoder::parse_unprefixed;
pub(crate) use frame::encode_chunk_header;

/// The highest protocol version this build speaks, negotiated by the handshake
/// (`docs/wire.md`, "Version negotiation"). Version 2 added [`FrameKind::Chunk`];
/// version 3 added the optional trace context ([`TRACED`]); version 4 added the
/// handshake's `reply_here` flag (peers that only dial out, `docs/wire.md`, "Dial-out
/// peers"); version 5 added the versioned message encoding
/// ([`Encoding::Versioned`](crate::Encoding)) and the negotiation itself.
pub const PROTOCOL_VERSION: u8 = 5;

/// The lowest protocol version this build speaks: today's peers of version 4 are
/// talked to in postcard, so a cluster can be upgraded one node at a time.
pub const MIN_PROTOCOL_VERSION: u8 = 4;

/// Byte 4 of every frame: the version of the frame layout. Up to protocol version 4 it
/// was the protocol version; the layout has not changed since, so it stays 4 and a
/// version-4 peer's decoder accepts our frames. What differs between protocol versions
/// is negotiated by the handshake instead.
pub const FRAME_VERSION: u8 = 4;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Bytes of the fixed header after the length prefix.
pub const FIXED_HEADER: usize = 28;

/// Default maximum frame size (after the length prefix): 16 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Channel id of the control channel (handshake, heartbeats, watch, membership).
pub const CONTROL_CHANNEL: u32 = channel_id("control");

/// Channel id of the default data channel.
pub const DATA_CHANNEL: u32 = channel_id("data");

/// The 32-bit channel id carried in frames: FNV-1a of the channel's name.
///
/// ```
/// use granary_remote::wire::{channel_id, DATA_CHANNEL};
/// assert_eq!(channel_id("data"), DATA_CHANNEL);
/// ```
pub const fn channel_id(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}
