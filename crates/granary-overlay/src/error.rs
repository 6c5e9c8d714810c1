//! The crate's errors.

use std::net::SocketAddr;

use thiserror::Error;

/// Why a frame could not be encoded or read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// Reading from the socket failed.
    #[error("connection read failed")]
    Io(#[source] std::io::Error),
    /// The length prefix is over the limit.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The body is not a valid frame.
    #[error("malformed frame")]
    Decode(#[source] postcard::Error),
    /// The frame could not be encoded.
    #[error("cannot encode a frame")]
    Encode(#[source] postcard::Error),
}

/// Why a driver node could not start or answer.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node has stopped (killed, or its task ended).
    #[error("the overlay node has stopped")]
    Stopped,
}
