//! The abstract transport the protocol runs over, an in-memory implementation and one
//! over granary-remote's TCP transport.
//!
//! The protocol only needs fire-and-forget delivery of [`Envelope`]s to an address and a
//! stream of incoming ones; ordering, connection management, the cluster name/secret
//! handshake and encryption are the transport's business ([`tcp`] leaves
//! them to granary-remote's TCP transport).

pub mod memory;
pub mod tcp;

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

/// Traffic counters of one endpoint (kept by both transports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Messages handed to the network by this address.
    pub sent_messages: u64,
    /// Encoded bytes handed to the network by this address.
    pub sent_bytes: u64,
    /// Messages delivered to this address.
    pub received_messages: u64,
    /// Messages from this address that were dropped (faults, cuts, no endpoint).
    pub dropped_messages: u64,
}
