//! The abstract transport the protocol runs over, an in-memory implementation, one over
//! granary-remote's TCP transport and one riding on a granary-remote `RemoteNode`.
//!
//! The protocol only needs fire-and-forget delivery of [`Envelope`]s to an address and a
//! stream of incoming ones; ordering, connection management, the cluster name/secret
//! handshake and encryption are the transport's business ([`tcp`] leaves
//! them to granary-remote's TCP transport, [`remote`] to a `RemoteNode`'s).

pub mod memory;
pub mod remote;
pub mod tcp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use granary_remote::RemoteNode;

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

    /// The granary-remote node this transport rides on, if any. A [`crate::Cluster`]
    /// started on one can [`forward`](crate::Cluster::forward) application messages.
    fn remote_node(&self) -> Option<RemoteNode> {
        None
    }
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

#[derive(Default)]
struct Counters {
    sent_messages: AtomicU64,
    sent_bytes: AtomicU64,
    received_messages: AtomicU64,
    dropped_messages: AtomicU64,
}

/// Live traffic counters of a network transport ([`tcp`] or [`remote`]); cheap to
/// clone, readable after the transport moved into a [`crate::Cluster`].
///
/// ```
/// use granary_cluster::transport::{TrafficCounter, TrafficStats};
/// assert_eq!(TrafficCounter::default().snapshot(), TrafficStats::default());
/// ```
#[derive(Clone, Default)]
pub struct TrafficCounter {
    counters: Arc<Counters>,
}

impl TrafficCounter {
    /// The counters so far. `sent_bytes` counts whole frames (header, names and body)
    /// as they go on the wire, without the 4-byte length prefix.
    pub fn snapshot(&self) -> TrafficStats {
        let c = &self.counters;
        TrafficStats {
            sent_messages: c.sent_messages.load(Ordering::Relaxed),
            sent_bytes: c.sent_bytes.load(Ordering::Relaxed),
            received_messages: c.received_messages.load(Ordering::Relaxed),
            dropped_messages: c.dropped_messages.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn record_sent(&self, frame_len: u64) {
        self.counters.sent_messages.fetch_add(1, Ordering::Relaxed);
        self.counters
            .sent_bytes
            .fetch_add(frame_len, Ordering::Relaxed);
    }

    pub(crate) fn record_received(&self) {
        self.counters
            .received_messages
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped(&self) {
        self.counters
            .dropped_messages
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Queues one cluster frame for `to` on `transport`'s control channel and counts
    /// it as sent or dropped. A full queue or an unreachable peer is ordinary loss
    /// for the protocol (the failure detector decides who is gone), so it is only
    /// traced and reported as [`TransportError::Unreachable`]. `direct` sends it
    /// straight to `to` even when the transport routes (an overlay's own messages).
    pub(crate) fn send_control(
        &self,
        transport: &granary_remote::Transport,
        to: SocketAddr,
        header: granary_remote::wire::FrameHeader<'_>,
        body: bytes::Bytes,
        direct: bool,
    ) -> Result<(), TransportError> {
        let len = header.frame_len(body.len());
        let options = if direct {
            granary_remote::SendOptions::control().direct()
        } else {
            granary_remote::SendOptions::control()
        };
        match transport.send(to, header, body, options) {
            Ok(()) => {
                self.record_sent(len);
                Ok(())
            }
            Err(granary_remote::SendError::Shutdown) => {
                self.record_dropped();
                Err(TransportError::Closed)
            }
            Err(error) => {
                self.record_dropped();
                tracing::trace!(%to, %error, "cluster frame not queued");
                Err(TransportError::Unreachable(to))
            }
        }
    }
}
