//! Frames arriving at the remote layer: deliveries, replies and system messages.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use granary_core::{ActorId, ActorSystem, AskError, DeadLetter, DeadLetterReason, RemoteError};

use super::credits::Credits;
use super::door::DoorEntry;
use super::exposed::{Credit, DeliverFn, Exposed, ReplyTo};
use super::protocol::{ReplyFailure, SystemMessage, REPLY_FAILURE};
use super::{remote_actor_id, watch, NodeInner};
use crate::node_id::NodeId;
use crate::registry::{type_tag, ErasedMessage, Registry};
use crate::transport::{InboundHandler, SendOptions, Stall};
use crate::wire::{Frame, FrameHeader, FrameKind, CONTROL_CHANNEL};

/// The remote layer's handler on the transport's reader tasks.
pub(crate) struct Inbound {
    /// Weak: the transport's handler must not keep the node alive forever.
    pub(crate) node: Weak<NodeInner>,
}

impl InboundHandler for Inbound {
    /// Without a connection to hold back, a message finding no free credit is
    /// delivered anyway (order matters more than the bound here); the transport always
    /// calls [`Inbound::on_frame_paced`].
    fn on_frame(&self, from: NodeId, frame: Frame) {
        if let Some(node) = self.node.upgrade() {
            on_frame(&node, from, frame, false);
        }
    }

    fn on_frame_paced(&self, from: NodeId, frame: Frame) -> Option<Stall> {
        let node = self.node.upgrade()?;
        on_frame(&node, from, frame, true)
    }
}

/// Called on the transport's reader task for every frame; `Some` holds the connection
/// back until the recipient has a free credit (`docs/wire.md`, "Flow control").
pub(crate) fn on_frame(node: &NodeInner, from: NodeId, frame: Frame, paced: bool) -> Option<Stall> {
    if !node.is_started() {
        // A peer that knew this address (a restart on the same port) can get a frame in
        // before `RemoteNode::start` has returned; nothing is exposed yet, so drop it.
        tracing::debug!(%from, "frame before the node finished starting; dropped");
        return None;
    }
    if matches!(frame.kind, FrameKind::Tell | FrameKind::Ask) {
        if let Some((host, name, relayed)) = super::relay::parse(frame.recipient()) {
            if host != node.transport().local_addr() {
                let name = name.to_owned();
                super::relay::forward(node, from, &frame, host, &name, relayed);
                return None;
            }
            // Relayed to this very node: deliver under the plain name.
            let name = bytes::Bytes::copy_from_slice(name.as_bytes());
            let frame = Frame {
                recipient: name,
                ..frame
            };
            let is_ask = frame.kind == FrameKind::Ask;
            return deliver(node, from, frame, is_ask, paced);
        }
    }
    match frame.kind {
        FrameKind::Tell => return deliver(node, from, frame, false, paced),
        FrameKind::Ask => return deliver(node, from, frame, true, paced),
        FrameKind::Reply => complete(node, frame),
        FrameKind::System => system(node, from, frame),
        FrameKind::Handshake => {
            tracing::debug!(%from, "handshake frame after the handshake; ignored")
        }
        // The transport rebuilds chunked frames before they get here.
        FrameKind::Chunk => tracing::debug!(%from, "stray chunk; ignored"),
    }
    None
}

/// Decode and deliver a tell or ask to the exposed recipient, or report why not.
///
/// Each delivery takes one of the recipient's credits. With none free, the delivery
/// waits in the returned [`Stall`] and the reader holds the connection back meanwhile,
/// except on the control channel, whose reader also watches heartbeats and must never
/// wait: a message there is delivered without a credit (so is one that came without
/// `paced`, from a caller that cannot hold a connection back).
fn deliver(
    node: &NodeInner,
    from: NodeId,
    frame: Frame,
    is_ask: bool,
    paced: bool,
) -> Option<Stall> {
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
    let Some(recipient) = Recipient::find(node, name, tag) else {
        let id = remote_actor_id(node.transport().local_addr(), name);
        fail(id, RemoteError::NoSuchActor(id));
        return None;
    };
    let recipient = match recipient {
        Ok(recipient) => recipient,
        Err((id, error)) => {
            fail(id, error);
            return None;
        }
    };
    // Decoding happens here, on the recipient's side of the wire.
    let span = crate::trace::receive_span(node.transport().local_addr(), from, name, frame.trace);
    let _entered = span.enter();
    let msg = match node.registry.decode(tag, &frame.body) {
        Ok(msg) => msg,
        Err(e) => {
            // A contract version this node does not accept keeps its type
            // (`MessageTooNew` / `MessageTooOld`); anything else is `Decode`.
            fail(recipient.id(node, name), e.to_remote());
            return None;
        }
    };
    let hand_over = HandOver {
        local: node.transport().local_addr(),
        registry: node.registry,
        tag,
        serve_timeout: node.serve_timeout,
    };
    let system = &node.system;
    if frame.channel == CONTROL_CHANNEL {
        hand_over.deliver(system, &recipient, name, msg, reply, None);
        return None;
    }
    let credits = recipient.credits();
    match credits.try_take() {
        Some(credit) => {
            hand_over.deliver(system, &recipient, name, msg, reply, Some(credit));
            None
        }
        None if !paced => {
            hand_over.deliver(system, &recipient, name, msg, reply, None);
            None
        }
        None => {
            // Only a delivery that waits for a credit owns copies of what it names.
            let credits = credits.clone();
            let system = system.clone();
            let name = name.to_owned();
            let waiting = async move {
                let credit = credits.take().await;
                hand_over.deliver(&system, &recipient, &name, msg, reply, Some(credit));
            };
            Some(Box::pin(tracing::Instrument::instrument(
                waiting,
                span.clone(),
            )))
        }
    }
}

/// What handing a decoded message to its recipient needs besides the message and the
/// system whose event stream takes refused tells.
#[derive(Clone, Copy)]
struct HandOver {
    /// This node's address, which a door's refused name is identified by.
    local: SocketAddr,
    /// The registry and the frame's type tag, for naming the type of a refused message
    /// (looked up only then).
    registry: &'static Registry,
    tag: u64,
    serve_timeout: Duration,
}

impl HandOver {
    /// Delivers; a door that refuses has answered an ask already, and a refused tell
    /// becomes a dead letter in `system` (its recipient's id worked out only then: it
    /// formats this node's address).
    fn deliver(
        self,
        system: &ActorSystem,
        recipient: &Recipient,
        name: &str,
        msg: ErasedMessage,
        reply: Option<ReplyTo>,
        credit: Option<Credit>,
    ) {
        let is_tell = reply.is_none();
        let Err(error) = recipient.deliver(name, msg, reply, credit, self.serve_timeout) else {
            return;
        };
        let message_type =
            (self.registry.by_tag(self.tag)).map_or("<unknown type tag>", |t| t.name());
        tracing::debug!(recipient = name, message_type, %error, "refused by the door");
        if is_tell {
            system.events().publish(DeadLetter {
                recipient: recipient.id_at(self.local, name),
                message_type,
                reason: DeadLetterReason::Remote(error),
            });
        }
    }
}

/// Where a tell or ask from the wire goes: an actor exposed under the exact name,
/// with the handler of the message's type, or the door serving the name.
enum Recipient {
    Exposed(Arc<Exposed>, DeliverFn),
    Door(Arc<DoorEntry>),
}

impl Recipient {
    /// The recipient of `name` for a message tagged `tag`: `None` if nothing serves
    /// the name, `Err` (the id to report and why) if the exposed actor does not accept
    /// the type. A door checks the type itself, once the message is decoded.
    fn find(
        node: &NodeInner,
        name: &str,
        tag: u64,
    ) -> Option<Result<Self, (ActorId, RemoteError)>> {
        let exposed = node.exposed.read().get(name).cloned();
        let Some(exposed) = exposed else {
            let door = node.doors.read().find(name).cloned()?;
            return Some(Ok(Self::Door(door)));
        };
        // Handlers are keyed by a name's plain tag; a versioned body's tag names the
        // same type (the registry decodes either).
        let handler_tag = node.registry.by_tag(tag).map_or(tag, |t| t.tag());
        match exposed.handler(handler_tag) {
            Some(handler) => Some(Ok(Self::Exposed(exposed, handler))),
            None => Some(Err((
                exposed.id,
                RemoteError::TypeMismatch {
                    expected: exposed.accepted(),
                    found: message_type(node, tag).to_owned(),
                },
            ))),
        }
    }

    /// The id that failures and dead letters name.
    fn id(&self, node: &NodeInner, name: &str) -> ActorId {
        self.id_at(node.transport().local_addr(), name)
    }

    /// [`Recipient::id`] on the node at `local`.
    fn id_at(&self, local: SocketAddr, name: &str) -> ActorId {
        match self {
            Self::Exposed(exposed, _) => exposed.id,
            Self::Door(_) => remote_actor_id(local, name),
        }
    }

    fn credits(&self) -> &Arc<Credits> {
        match self {
            Self::Exposed(exposed, _) => &exposed.credits,
            Self::Door(door) => &door.credits,
        }
    }

    /// Hands the decoded message over; `Err` if a door refused it (its ask is
    /// answered already).
    fn deliver(
        &self,
        name: &str,
        msg: ErasedMessage,
        reply: Option<ReplyTo>,
        credit: Option<Credit>,
        serve_timeout: Duration,
    ) -> Result<(), RemoteError> {
        match self {
            Self::Exposed(exposed, handler) => {
                exposed.deliver(handler, msg, reply, credit);
                Ok(())
            }
            Self::Door(door) => door.deliver(name, msg, reply, credit, serve_timeout),
        }
    }
}

/// The registered name of a tag, for errors and dead letters.
fn message_type(node: &NodeInner, tag: u64) -> &'static str {
    node.registry
        .by_tag(tag)
        .map_or("<unknown type tag>", |t| t.name())
}

/// Route a reply to the ask waiting for it (here, or at the client it was relayed for).
fn complete(node: &NodeInner, frame: Frame) {
    let pending = node.pending.lock().remove(&frame.correlation);
    let Some(pending) = pending else {
        if super::relay::reply(node, &frame) {
            return;
        }
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
            .map_err(|e| AskError::Remote(e.to_remote()))
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
                None => match node.doors.read().find(&name).cloned() {
                    Some(door) => door.add_watcher(&name, from.addr()),
                    None => Err(super::protocol::WireStopReason::NotAlive),
                },
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
            } else if let Some(door) = node.doors.read().find(&name) {
                door.forget_watcher(&name, from.addr());
            }
        }
        SystemMessage::Terminated { name, reason } => {
            watch::terminated(node, from.addr(), &name, reason.into())
        }
        SystemMessage::Stop { name } => {
            let exposed = node.exposed.read().get(&name).cloned();
            match exposed {
                Some(e) => e.stop(),
                None => {
                    let door = node.doors.read().find(&name).cloned();
                    if let Some(door) = door {
                        door.stop(&name);
                    }
                }
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
