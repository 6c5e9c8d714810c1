//! Framing of the TCP driver: a 4-byte big-endian length, then a postcard-encoded
//! [`Frame`].
//!
//! The first frame on every connection is `Hello` with the dialer's listen address,
//! which is its [`PeerId`] (the socket's source address is an ephemeral port, not the
//! peer's identity). `Ping` and `Pong` are the driver's heartbeat; `Overlay` carries
//! the overlay's own messages.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::FrameError;
use crate::overlay::PeerId;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// One frame on a driver connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame<M> {
    /// The dialer's identity; first on every connection.
    Hello {
        /// The dialer's listen address.
        from: PeerId,
    },
    /// Heartbeat request (sent on a watched connection that was idle).
    Ping,
    /// Heartbeat answer.
    Pong,
    /// An overlay message.
    Overlay(M),
}

/// Encodes `frame` with its length prefix.
pub fn encode<M: Serialize>(frame: &Frame<M>) -> Result<Bytes, FrameError> {
    let body = postcard::to_allocvec(frame).map_err(FrameError::Encode)?;
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX + body.len());
    out.put_u32(len);
    out.put_slice(&body);
    Ok(out.freeze())
}

/// Reads one frame; `Ok(None)` at a clean end of stream before a frame starts.
pub async fn read<M: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<(Frame<M>, usize)>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge(len));
    }
    buf.resize(len, 0);
    reader.read_exact(buf).await.map_err(FrameError::Io)?;
    let frame = postcard::from_bytes(buf).map_err(FrameError::Decode)?;
    Ok(Some((frame, LENGTH_PREFIX + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let frame: Frame<String> = Frame::Overlay("hello".into());
        let bytes = encode(&frame).expect("encode");
        let mut buf = Vec::new();
        let got = read::<String, _>(&mut &bytes[..], 1024, &mut buf)
            .await
            .expect("read");
        assert_eq!(got, Some((frame, bytes.len())));
        let err = read::<String, _>(&mut &bytes[..], 2, &mut buf).await;
        assert!(matches!(err, Err(FrameError::TooLarge(_))), "{err:?}");
        let garbage = [0u8, 0, 0, 2, 0xff, 0xff];
        let err = read::<String, _>(&mut &garbage[..], 1024, &mut buf).await;
        assert!(matches!(err, Err(FrameError::Decode(_))), "{err:?}");
        let empty: &[u8] = &[];
        let end = read::<String, _>(&mut &empty[..], 1024, &mut buf).await;
        assert!(matches!(end, Ok(None)));
    }
}
