//! Frames arriving at the remote layer: deliveries, replies and system messages.

use std::net::SocketAddr;

use bytes::Bytes;
use granary_core::{ActorId, AskError, DeadLetter, DeadLetterReason, RemoteError};

use super::exposed::ReplyTo;
use super::protocol::{ReplyFailure, SystemMessage, REPLY_FAILURE};
use super::{remote_actor_id, watch, NodeInner};
use crate::node_id::NodeId;
use crate::registry::type_tag;
use crate::transport::SendOptions;
use crate::wire::{Frame, FrameHeader, FrameKind};

/// Called on the transport's reader task for every frame.
pub(crate) fn on_frame(node: &NodeInner, from: NodeId, frame: Frame) {
    if !node.is_started() {
        // A peer that knew this address (a restart on the same port) can get a frame in
        // before `RemoteNode::start` has returned; nothing is exposed yet, so drop it.
        tracing::debug!(%from, "frame before the node finished starting; dropped");
        return;
    }
    match frame.kind {
        FrameKind::Tell => deliver(node, from, frame, false),
        FrameKind::Ask => deliver(node, from, frame, true),
        FrameKind::Reply => complete(node, frame),
        FrameKind::System => system(node, from, frame),
        FrameKind::Handshake => {
            tracing::debug!(%from, "handshake frame after the handshake; ignored")
        }
        // The transport rebuilds chunked frames before they get here.
        FrameKind::Chunk => tracing::debug!(%from, "stray chunk; ignored"),
    }
}

/// Decode and deliver a tell or ask to the exposed recipient, or report why not.
fn deliver(node: &NodeInner, from: NodeId, frame: Frame, is_ask: bool) {
    let name = frame.recipient();
    let tag = frame.type_tag;
    let reply = is_ask.then(|| ReplyTo {
        transport: node.transport().clone(),
        registry: node.registry,
        to: from.addr(),
        correlation: frame.correlation,
        responder: name.to_owned(),
    });
    let fail = |recipient: ActorId, error: RemoteError| {
        let message_type = message_type(node, tag);
        tracing::debug!(%from, recipient = name, message_type, %error, "not delivered");
        match &reply {
            Some(reply) => reply.fail(ReplyFailure::Remote(error)),
            None => {
                node.system.events().publish(DeadLetter {
                    recipient,
                    message_type,
                    reason: DeadLetterReason::Remote(error),
                });
            }
        }
    };
    let exposed = node.exposed.read().get(name).cloned();
    let Some(exposed) = exposed else {
        let id = remote_actor_id(node.transport().local_addr(), name);
        return fail(id, RemoteError::NoSuchActor(id));
    };
    let Some(handler) = exposed.handler(tag) else {
        return fail(
            exposed.id,
            RemoteError::TypeMismatch {
                expected: exposed.accepted(),
                found: message_type(node, tag).to_owned(),
            },
        );
    };
    // Decoding happens here, on the recipient's side of the wire.
    let span = crate::trace::receive_span(node.transport().local_addr(), from, name, frame.trace);
    let _entered = span.enter();
    match node.registry.decode(tag, &frame.body) {
        Ok(msg) => handler(msg, reply),
        Err(e) => fail(exposed.id, RemoteError::Decode(e.to_string())),
    }
}

/// The registered name of a tag, for errors and dead letters.
fn message_type(node: &NodeInner, tag: u64) -> &'static str {
    node.registry
        .by_tag(tag)
        .map_or("<unknown type tag>", |t| t.name())
}

/// Route a reply to the ask waiting for it.
fn complete(node: &NodeInner, frame: Frame) {
    let Some(pending) = node.pending.lock().remove(&frame.correlation) else {
        tracing::debug!(
            correlation = frame.correlation,
            "late or unknown reply dropped"
        );
        return;
    };
    let result = if frame.type_tag == type_tag(REPLY_FAILURE) {
        match postcard::from_bytes::<ReplyFailure>(&frame.body) {
            Ok(ReplyFailure::Remote(e)) => Err(AskError::Remote(e)),
            Ok(ReplyFailure::Panicked) => Err(AskError::ActorPanicked),
            Ok(ReplyFailure::Stopped) => Err(AskError::ActorStopped),
            Ok(ReplyFailure::Timeout) => Err(AskError::Timeout),
            Err(e) => Err(AskError::Remote(RemoteError::Decode(e.to_string()))),
        }
    } else {
        node.registry
            .decode(frame.type_tag, &frame.body)
            .map_err(|e| AskError::Remote(RemoteError::Decode(e.to_string())))
    };
    pending.complete(result);
}

/// Watch, unwatch, terminated and stop between remote layers.
fn system(node: &NodeInner, from: NodeId, frame: Frame) {
    let msg = match postcard::from_bytes::<SystemMessage>(&frame.body) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(%from, error = %e, "undecodable system message dropped");
            return;
        }
    };
    match msg {
        SystemMessage::Watch { name } => {
            let exposed = node.exposed.read().get(&name).cloned();
            let outcome = match exposed {
                Some(e) => e.add_watcher(from.addr()),
                None => Err(super::protocol::WireStopReason::NotAlive),
            };
            if let Err(reason) = outcome {
                let _ = send_system(
                    node,
                    from.addr(),
                    &SystemMessage::Terminated { name, reason },
                );
            }
        }
        SystemMessage::Unwatch { name } => {
            if let Some(e) = node.exposed.read().get(&name) {
                e.forget_watcher(from.addr());
            }
        }
        SystemMessage::Terminated { name, reason } => {
            watch::terminated(node, from.addr(), &name, reason.into())
        }
        SystemMessage::Stop { name } => {
            if let Some(e) = node.exposed.read().get(&name) {
                e.stop();
            }
        }
    }
}

/// Send a system message to the node at `to` on the control channel.
pub(crate) fn send_system(
    node: &NodeInner,
    to: SocketAddr,
    msg: &SystemMessage,
) -> Result<(), String> {
    let body = postcard::to_allocvec(msg).map_err(|e| e.to_string())?;
    let header = FrameHeader {
        kind: FrameKind::System,
        channel: 0,
        type_tag: 0,
        correlation: 0,
        sender: "",
        recipient: "",
        trace: None,
    };
    node.transport()
        .send(to, header, Bytes::from(body), SendOptions::control())
        .map_err(|e| e.to_string())
}
