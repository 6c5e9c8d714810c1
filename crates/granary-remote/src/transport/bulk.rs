//! The per-peer bulk lane and the barrier that moves a pair onto it in order.
//!
//! Data frames above `chunk_size` travel on a connection of their own (the bulk lane), so
//! the small pairs on the data connections never wait behind a large stream's chunks or
//! the kernel buffers it fills. A pair that sends a large frame becomes *bulk-affine*: all
//! its later frames, small or large, use the bulk lane, so it switches at most once in the
//! life of the peer. Two connections are not ordered with each other at the receiver, so
//! the switch is a handshake (`docs/wire.md`, "Bulk lane"):
//!
//! 1. the sender queues a **barrier** (a `System` frame, tag of [`BARRIER`], correlation =
//!    switch id) for the pair on the pair's data connection, behind every frame the pair
//!    sent there, and *holds* the pair's new frames;
//! 2. the receiver's reader dispatches the barrier in that connection's read order, so
//!    every earlier frame of the pair has been handed to the inbound handler, and answers
//!    with a **barrier ack** (tag of [`BARRIER_ACK`], same correlation) on its control
//!    connection to the sender;
//! 3. the sender, on the ack, queues the held frames on the bulk lane, in order, and sends
//!    the pair's later frames there directly.
//!
//! Held frames are bounded (`queue_capacity` bytes per peer; beyond it sends fail with
//! backpressure), dropped like queued frames when the peer is declared unreachable, and a
//! barrier that gets no ack (lost with its connection, dropped by fault injection, or its
//! ack lost) is sent again every heartbeat interval; a second ack of the same switch is
//! ignored. Barrier and ack carry the sender's incarnation, so an ack meant for a
//! previous incarnation of this node releases nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Inner, SendOptions};
use crate::error::SendError;
use crate::node_id::NodeId;
use crate::registry::type_tag;
use crate::wire::{Frame, FrameHeader, FrameKind, CONTROL_CHANNEL, DATA_CHANNEL};

/// The lane name the bulk connection announces in its handshake (reserved as a channel
/// name).
pub(crate) const LANE_NAME: &str = "data.bulk";

/// Stable name whose tag marks a barrier (kind System, on a data connection).
const BARRIER: &str = "granary.LaneBarrier";

/// Stable name whose tag marks a barrier's acknowledgement (kind System, control channel).
const BARRIER_ACK: &str = "granary.LaneBarrierAck";

/// Whether `frame` is a lane-switch barrier (consumed by the transport).
pub(crate) fn is_barrier(frame: &Frame) -> bool {
    frame.kind == FrameKind::System && frame.type_tag == type_tag(BARRIER)
}

/// Whether `frame` acknowledges a barrier (consumed by the transport).
pub(crate) fn is_barrier_ack(frame: &Frame) -> bool {
    frame.kind == FrameKind::System && frame.type_tag == type_tag(BARRIER_ACK)
}

/// The header of barrier `id`; its body is the sender's incarnation.
pub(crate) fn barrier_header(id: u64) -> FrameHeader<'static> {
    FrameHeader {
        kind: FrameKind::System,
        channel: DATA_CHANNEL,
        type_tag: type_tag(BARRIER),
        correlation: id,
        sender: "",
        recipient: "",
        trace: None,
    }
}

/// The body of a barrier sent by `node`.
pub(crate) fn barrier_body(node: NodeId) -> Bytes {
    Bytes::copy_from_slice(&node.incarnation().to_le_bytes())
}

/// A barrier from `from` was dispatched in its connection's order: acknowledge it on the
/// control connection to `from`, echoing its body (the sender's incarnation).
pub(crate) fn acknowledge(inner: &Arc<Inner>, from: NodeId, barrier: &Frame) {
    let header = FrameHeader {
        kind: FrameKind::System,
        channel: CONTROL_CHANNEL,
        type_tag: type_tag(BARRIER_ACK),
        correlation: barrier.correlation,
        sender: "",
        recipient: "",
        trace: None,
    };
    let sent = inner.peer(from.addr()).and_then(|peer| {
        inner.send_to(&peer, header, barrier.body.clone(), SendOptions::control())
    });
    if let Err(error) = sent {
        // The sender sends the barrier again until it hears an ack.
        tracing::debug!(%from, %error, "barrier ack not queued");
    }
}

/// An ack from `from`: release the switch it names, if it is ours and still open.
pub(crate) fn acknowledged(inner: &Arc<Inner>, from: NodeId, ack: &Frame) {
    if ack.body[..] != inner.node.incarnation().to_le_bytes()[..] {
        tracing::debug!(%from, "barrier ack for another incarnation; ignored");
        return;
    }
    if let Some(peer) = inner.existing_peer(from.addr()) {
        peer.on_barrier_ack(inner, ack.correlation);
    }
}

/// A frame held while its pair switches lanes: encoded, with its fault-injection delay.
pub(crate) struct Held {
    pub(crate) frame: Bytes,
    pub(crate) delay: Option<Duration>,
}

/// Where a pair's frames go.
pub(crate) enum PairLane {
    /// Barrier `id` is on data connection `lane`; frames wait in `held` for its ack.
    Switching {
        id: u64,
        lane: usize,
        held: Vec<Held>,
        sent: Instant,
    },
    /// Everything goes on the bulk lane.
    Bulk,
}

/// The switch state of one peer's pairs.
#[derive(Default)]
pub(crate) struct Switches {
    /// Bulk-affine pairs (by pair hash).
    pub(crate) pairs: HashMap<u64, PairLane>,
    /// Open barrier id → pair hash.
    pub(crate) barriers: HashMap<u64, u64>,
    /// Bytes in every `held` list.
    pub(crate) held_bytes: usize,
    /// Last barrier id handed out.
    pub(crate) last_id: u64,
}

impl Switches {
    /// Hold `frame` for its switching pair; `Err` when the held frames would exceed
    /// `capacity` (a frame is always held when nothing else is).
    pub(crate) fn hold(&mut self, pair: u64, held: Held, capacity: usize) -> Result<(), ()> {
        let len = held.frame.len();
        if self.held_bytes > 0 && self.held_bytes + len > capacity {
            return Err(());
        }
        match self.pairs.get_mut(&pair) {
            Some(PairLane::Switching { held: list, .. }) => {
                list.push(held);
                self.held_bytes += len;
                Ok(())
            }
            _ => Err(()),
        }
    }

    /// Drop every held frame (the peer was lost); returns the bytes dropped. The
    /// switches stay open: their barriers are sent again until acknowledged.
    pub(crate) fn drop_held(&mut self) -> usize {
        for state in self.pairs.values_mut() {
            if let PairLane::Switching { held, .. } = state {
                held.clear();
            }
        }
        std::mem::take(&mut self.held_bytes)
    }
}

/// Map a refused hold to the error a send reports.
pub(crate) fn backpressure(inner: &Inner, peer: std::net::SocketAddr) -> SendError {
    inner.count_backpressure();
    SendError::Backpressure { peer }
}
