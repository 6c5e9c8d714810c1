//! The abstract transport the protocol runs over, and an in-memory implementation.
//!
//! The protocol only needs fire-and-forget delivery of [`Envelope`]s to an address and a
//! stream of incoming ones; ordering, connection management, the cluster name/secret
//! handshake and encryption are the transport's business (granary-remote's TCP transport
//! will implement this trait).

pub mod memory;

use std::future::Future;
use std::net::SocketAddr;

use crate::error::TransportError;
use crate::message::Envelope;

/// What the cluster protocol needs from a transport.
///
/// Delivery is at most once; a send may be dropped silently (the protocol tolerates
/// loss). `send` must not block: a real transport queues the message for its writer.
pub trait ClusterTransport: Send + 'static {
    /// The address other nodes reach this endpoint at.
    fn local_addr(&self) -> SocketAddr;

    /// Queues `envelope` for delivery to `to`.
    fn send(&self, to: SocketAddr, envelope: Envelope) -> Result<(), TransportError>;

    /// The next incoming envelope; `None` once the transport is closed.
    ///
    /// Must be cancel-safe: the node's task polls it in a `select!` with its timers, so
    /// dropping the future before it completes must not lose a message.
    fn recv(&mut self) -> impl Future<Output = Option<Envelope>> + Send;
}
