//! Per-peer, per-channel transport metrics through the `metrics` facade
//! (`docs/admin.md`). Handles are registered once per peer (outbound) or per accepted
//! connection (inbound), so a frame costs two relaxed atomic adds with a recorder and
//! nothing without one. Node-wide totals stay in [`TransportStats`](super::TransportStats).

use std::net::SocketAddr;

use metrics::Counter;

/// What this node sends to one peer on one channel.
pub(crate) struct OutboundMeter {
    frames: Counter,
    bytes: Counter,
    refusals: Counter,
    reconnects: Counter,
}

impl OutboundMeter {
    pub(crate) fn new(node: SocketAddr, peer: SocketAddr, channel: &str) -> Self {
        let labels = [
            ("node", node.to_string()),
            ("peer", peer.to_string()),
            ("channel", channel.to_owned()),
        ];
        Self {
            frames: metrics::counter!("granary_peer_frames_out_total", &labels),
            bytes: metrics::counter!("granary_peer_bytes_out_total", &labels),
            refusals: metrics::counter!("granary_peer_backpressure_total", &labels),
            reconnects: metrics::counter!("granary_peer_reconnects_total", &labels),
        }
    }

    /// One frame of `len` bytes (after the length prefix) handed to the queue, or
    /// refused.
    #[inline]
    pub(crate) fn sent<T, E>(&self, len: u64, result: &Result<T, E>) {
        if result.is_ok() {
            self.frames.increment(1);
            self.bytes.increment(len);
        } else {
            self.refusals.increment(1);
        }
    }
}

impl OutboundMeter {
    /// This channel's connection to the peer came back after a loss (counted on the
    /// control channel).
    pub(crate) fn reconnected(&self) {
        self.reconnects.increment(1);
    }
}

/// What this node receives from one peer on one accepted connection's channel.
pub(crate) struct InboundMeter {
    frames: Counter,
    bytes: Counter,
}

impl InboundMeter {
    pub(crate) fn new(node: SocketAddr, peer: SocketAddr, channel: &str) -> Self {
        let labels = [
            ("node", node.to_string()),
            ("peer", peer.to_string()),
            ("channel", channel.to_owned()),
        ];
        Self {
            frames: metrics::counter!("granary_peer_frames_in_total", &labels),
            bytes: metrics::counter!("granary_peer_bytes_in_total", &labels),
        }
    }

    /// One frame of `len` bytes (after the length prefix) handed on.
    #[inline]
    pub(crate) fn received(&self, len: u64) {
        self.frames.increment(1);
        self.bytes.increment(len);
    }
}
