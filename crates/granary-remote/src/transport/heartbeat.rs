//! Heartbeats on the control channel: sent every `heartbeat_interval` to every peer, and
//! a peer heard from on nothing for `heartbeat_timeout` is treated as lost.
//!
//! Connections are one-directional, so each node hears a peer on the control connection
//! that the *peer* dialled; a node that accepts a control connection therefore dials the
//! peer back (if it has not already), so heartbeats flow both ways. Heartbeats go through
//! [`Inner::send_to`] like any frame, so fault injection (drops, partitions) silences them
//! as it would silence a real network.

use std::sync::Arc;

use bytes::Bytes;

use super::peer::Peer;
use super::{Inner, PeerEvent, SendOptions};
use crate::node_id::NodeId;
use crate::registry::type_tag;
use crate::wire::{Frame, FrameHeader, FrameKind};

/// Stable name whose tag marks a heartbeat (kind System, control channel, empty body).
const HEARTBEAT: &str = "granary.Heartbeat";

/// Whether `frame` is a heartbeat (consumed by the transport, never handed on).
pub(crate) fn is_heartbeat(frame: &Frame) -> bool {
    frame.kind == FrameKind::System && frame.type_tag == type_tag(HEARTBEAT)
}

/// The peer's heartbeat task: one heartbeat per interval while the control queue is
/// empty (a busy or disconnected control connection does not pile them up).
pub(crate) async fn send_loop(inner: Arc<Inner>, peer: Arc<Peer>) {
    let mut tick = tokio::time::interval(inner.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !peer.is_unreachable() {
            peer.resend_barriers(&inner, inner.config.heartbeat_interval);
        }
        if peer.node().is_none() || !peer.lane(0, 0).queue.is_empty() {
            continue;
        }
        let header = FrameHeader {
            kind: FrameKind::System,
            channel: 0,
            type_tag: type_tag(HEARTBEAT),
            correlation: 0,
            sender: "",
            recipient: "",
            trace: None,
        };
        if let Err(e) = inner.send_to(&peer, header, Bytes::new(), SendOptions::control()) {
            tracing::debug!(addr = %peer.addr, error = %e, "heartbeat not queued");
        }
    }
}

/// `node` sent nothing on its control connection for `heartbeat_timeout`.
pub(crate) fn lost(inner: &Inner, node: NodeId) {
    tracing::warn!(%node, timeout = ?inner.config.heartbeat_timeout, "peer missed its heartbeats");
    match inner.existing_peer(node.addr()) {
        Some(peer) => {
            peer.on_unreachable(inner);
            peer.reconnect();
        }
        None => inner.emit(PeerEvent::Unreachable {
            addr: node.addr(),
            node: Some(node),
            dropped_bytes: 0,
        }),
    }
}

/// `node` sent a request: it is up, reaches this node and is owed a reply. If it is
/// marked unreachable — its heartbeats not heard yet after a heal, while it already
/// heard ours and asked — it is back now, so that the reply queues instead of being
/// dropped (the asker would wait out its timeout). `peer` is the reading connection's
/// copy of the peer, looked up once: a request then costs one atomic load.
pub(crate) fn heard_asking(inner: &Inner, node: NodeId, peer: &mut Option<Arc<Peer>>) {
    if peer.is_none() {
        *peer = inner.existing_peer(node.addr());
    }
    if peer.as_ref().is_some_and(|p| p.is_unreachable()) {
        back(inner, node);
    }
}

/// `node` is heard from again after [`lost`].
pub(crate) fn back(inner: &Inner, node: NodeId) {
    tracing::info!(%node, "peer heard from again");
    if let Some(peer) = inner.existing_peer(node.addr()) {
        peer.on_connected(inner, node);
    } else {
        inner.emit(PeerEvent::Connected { node });
    }
}
