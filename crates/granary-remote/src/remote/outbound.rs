//! The calling side: a remote actor behind granary-core's `RemoteTarget` hook.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use granary_core::{
    ActorId, ActorSystem, AskError, DeadLetter, DeadLetterReason, ErasedMessage, RemoteError,
    RemoteTarget, SendAttempt, SendError, Terminated,
};
use tokio::sync::oneshot;

use super::protocol::SystemMessage;
use super::{inbound, remote_actor_id, watch, NodeInner};
use crate::error::SendError as TransportSendError;
use crate::transport::SendOptions;
use crate::wire::{FrameHeader, FrameKind};

type AskResult = Result<ErasedMessage, AskError<ErasedMessage>>;

/// The data channel, with the sending actor (if any) for affinity: each (sender,
/// recipient) pair keeps one connection, so its messages stay in order.
fn data_options() -> SendOptions {
    match granary_core::current_sender() {
        Some(id) => SendOptions::data().sender(id.local() ^ id.node().rotate_left(32)),
        None => SendOptions::data(),
    }
}

/// An ask waiting for its reply.
pub(crate) struct PendingAsk {
    pub(crate) addr: SocketAddr,
    tx: oneshot::Sender<AskResult>,
}

impl PendingAsk {
    pub(crate) fn complete(self, result: AskResult) {
        // The asker may have timed out and gone: nothing to do then.
        let _ = self.tx.send(result);
    }

    pub(crate) fn fail(self, error: RemoteError) {
        self.complete(Err(AskError::Remote(error)));
    }
}

/// Removes an ask's pending entry when its future ends or is dropped, so an abandoned
/// ask to a peer that never answers leaves nothing behind. The entry is normally gone
/// already (the reply or the peer's loss took it); removing it again costs one lock.
struct PendingGuard {
    node: Arc<NodeInner>,
    correlation: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.node.pending.lock().remove(&self.correlation);
    }
}

/// The actor exposed under `name` on the node at `addr`.
pub(crate) struct RemoteActor {
    node: Arc<NodeInner>,
    addr: SocketAddr,
    name: Arc<str>,
    id: ActorId,
}

impl RemoteActor {
    pub(crate) fn new(node: Arc<NodeInner>, addr: SocketAddr, name: &str) -> Self {
        Self {
            node,
            addr,
            name: name.into(),
            id: remote_actor_id(addr, name),
        }
    }

    /// The actor `name` on `host`, with frames sent to the gateway `via`.
    pub(crate) fn relayed(
        node: Arc<NodeInner>,
        via: SocketAddr,
        host: SocketAddr,
        name: &str,
    ) -> Self {
        Self {
            node,
            addr: via,
            name: super::relay::via_name(host, name).into(),
            id: remote_actor_id(host, name),
        }
    }

    fn header(&self, kind: FrameKind, tag: u64, correlation: u64) -> FrameHeader<'_> {
        FrameHeader {
            trace: crate::trace::current(),
            kind,
            channel: 0,
            type_tag: tag,
            correlation,
            sender: "",
            recipient: &self.name,
        }
    }

    /// The `granary.send` span of one message to this actor (disabled unless INFO spans
    /// are on).
    fn span(&self, message: &'static str) -> tracing::Span {
        tracing::info_span!(
            "granary.send",
            node = %self.node.transport().local_addr(),
            to = %self.addr,
            recipient = &*self.name,
            message,
        )
    }

    fn dead_letter(&self, type_name: &'static str, reason: DeadLetterReason) {
        self.node.system.events().publish(DeadLetter {
            recipient: self.id,
            message_type: type_name,
            reason,
        });
    }
}

/// Why [`RemoteActor::try_tell`] did not send.
enum Refused {
    /// The queue to `peer` (the actor's node, or the next hop to it) is full; the
    /// message comes back, not yet a dead letter.
    Full {
        msg: ErasedMessage,
        peer: SocketAddr,
    },
    /// Anything else: published as a dead letter already.
    Failed(SendError<ErasedMessage>),
}

impl RemoteActor {
    /// Encodes `msg` for this actor's node: its type tag and body. A failure is a dead
    /// letter and gives the message back.
    fn encode(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
    ) -> Result<(ErasedMessage, u64, Bytes), SendError<ErasedMessage>> {
        let encoding = self.node.transport().encoding_for(self.addr);
        match self.node.registry.encode_as(&*msg, encoding) {
            Ok((tag, body)) => Ok((msg, tag, body)),
            Err(e) => {
                let error = RemoteError::Encode(format!("{type_name}: {e}"));
                self.dead_letter(type_name, DeadLetterReason::Remote(error.clone()));
                Err(SendError::Remote {
                    error,
                    message: Some(msg),
                })
            }
        }
    }

    /// Queues one encoded tell.
    fn queue(
        &self,
        tag: u64,
        body: Bytes,
        type_name: &'static str,
    ) -> Result<(), TransportSendError> {
        let span = self.span(type_name);
        let _entered = span.enter();
        let header = self.header(FrameKind::Tell, tag, 0);
        (self.node.transport()).send(self.addr, header, body, data_options())
    }

    /// What a failed [`RemoteActor::queue`] of `msg` means: a full queue gives the
    /// message back ([`Refused::Full`]) for the caller to wait or give up; any other
    /// failure is a dead letter.
    fn refused(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        e: TransportSendError,
    ) -> Refused {
        match e {
            TransportSendError::Backpressure { peer } => Refused::Full { msg, peer },
            e => Refused::Failed(self.give_up(msg, type_name, e)),
        }
    }

    /// Encodes and queues one tell (see [`RemoteActor::refused`]).
    fn try_tell(&self, msg: ErasedMessage, type_name: &'static str) -> Result<(), Refused> {
        let (msg, tag, body) = self.encode(msg, type_name).map_err(Refused::Failed)?;
        self.queue(tag, body, type_name)
            .map_err(|e| self.refused(msg, type_name, e))
    }

    /// The error for a tell that failed with `e`, published as a dead letter.
    fn give_up(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        e: TransportSendError,
    ) -> SendError<ErasedMessage> {
        let error = self.node.send_error(self.addr, e);
        self.dead_letter(type_name, DeadLetterReason::Remote(error.clone()));
        SendError::Remote {
            error,
            message: Some(msg),
        }
    }

    /// [`RemoteTarget::send_erased`] after a first refusal for backpressure: encodes the
    /// message once more (the refused attempt's body went into the transport: getting it
    /// back would cost every plain send a clone), then waits until a batch has been taken
    /// off a queue of the full peer and queues that same frame again, until it is queued
    /// or refused for another reason.
    async fn send_when_room(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        mut full: SocketAddr,
    ) -> Result<(), SendError<ErasedMessage>> {
        let (mut msg, tag, body) = self.encode(msg, type_name)?;
        loop {
            // Marked before the attempt, so a batch taken between the attempt and the
            // wait is not missed.
            let room = self.node.transport().room(full);
            let mark = room.as_ref().map(|room| room.mark());
            let Err(e) = self.queue(tag, body.clone(), type_name) else {
                return Ok(());
            };
            match self.refused(msg, type_name, e) {
                Refused::Failed(e) => return Err(e),
                Refused::Full { msg: back, peer } => {
                    msg = back;
                    match (room, mark) {
                        (Some(room), Some(mark)) if peer == full => room.wait(mark).await,
                        // Another peer is full now (a route changed), or the full one
                        // is gone: mark that one's room and try again.
                        _ => tokio::task::yield_now().await,
                    }
                    full = peer;
                }
            }
        }
    }
}

impl RemoteTarget for RemoteActor {
    fn id(&self) -> ActorId {
        self.id
    }

    fn system(&self) -> Option<&ActorSystem> {
        Some(&self.node.system)
    }

    fn tell_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
    ) -> Result<(), SendError<ErasedMessage>> {
        match self.try_tell(msg, type_name) {
            Ok(()) => Ok(()),
            Err(Refused::Failed(e)) => Err(e),
            Err(Refused::Full { msg, peer }) => {
                Err(self.give_up(msg, type_name, TransportSendError::Backpressure { peer }))
            }
        }
    }

    fn send_erased(&self, msg: ErasedMessage, type_name: &'static str) -> SendAttempt<'_> {
        match self.try_tell(msg, type_name) {
            Ok(()) => SendAttempt::Done(Ok(())),
            Err(Refused::Failed(e)) => SendAttempt::Done(Err(e)),
            Err(Refused::Full { msg, peer }) => {
                SendAttempt::Waiting(Box::pin(self.send_when_room(msg, type_name, peer)))
            }
        }
    }

    fn ask_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        timeout: Duration,
    ) -> BoxFuture<'static, AskResult> {
        let encoding = self.node.transport().encoding_for(self.addr);
        let (tag, body) = match self.node.registry.encode_as(&*msg, encoding) {
            Ok(encoded) => encoded,
            Err(e) => {
                let error = RemoteError::Encode(format!("{type_name}: {e}"));
                return Box::pin(async move {
                    Err(AskError::Send(SendError::Remote {
                        error,
                        message: Some(msg),
                    }))
                });
            }
        };
        let node = self.node.clone();
        let correlation = node.next_correlation();
        let (tx, rx) = oneshot::channel();
        node.pending.lock().insert(
            correlation,
            PendingAsk {
                addr: self.addr,
                tx,
            },
        );
        let span = self.span(type_name);
        let entered = span.enter();
        let header = self.header(FrameKind::Ask, tag, correlation);
        drop(entered);
        if let Err(e) = node
            .transport()
            .send(self.addr, header, body, data_options())
        {
            node.pending.lock().remove(&correlation);
            let error = node.send_error(self.addr, e);
            return Box::pin(async move {
                Err(AskError::Send(SendError::Remote {
                    error,
                    message: Some(msg),
                }))
            });
        }
        drop(msg);
        let id = self.id;
        let pending = PendingGuard {
            node: node.clone(),
            correlation,
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                // Dropping this future (a `select!` that lost, a cancelled task) drops the
                // guard, which removes the pending entry: nothing waits for it any more.
                let _pending = pending;
                // The deadline is kept by the system, not by a tokio timer per ask.
                let answer = match tokio::time::Instant::now().checked_add(timeout) {
                    Some(deadline) => node.system.within(deadline, rx).await,
                    None => Ok(rx.await),
                };
                match answer {
                    Ok(Ok(result)) => result,
                    Ok(Err(_dropped)) => Err(AskError::Remote(RemoteError::Other(
                        "remote node shut down".into(),
                    ))),
                    Err(_elapsed) => {
                        node.system.events().publish(DeadLetter {
                            recipient: id,
                            message_type: type_name,
                            reason: DeadLetterReason::Timeout,
                        });
                        Err(AskError::Timeout)
                    }
                }
            },
            span,
        ))
    }

    fn stop(&self) {
        let msg = SystemMessage::Stop {
            name: self.name.to_string(),
        };
        if let Err(e) = inbound::send_system(&self.node, self.addr, &msg) {
            tracing::debug!(addr = %self.addr, name = %self.name, error = %e, "stop not sent");
        }
    }

    fn watch(&self, watcher: ActorId, notify: Box<dyn FnOnce(Terminated) + Send>) {
        let first = watch::add(&self.node, self.addr, &self.name, watcher, notify);
        if first {
            let msg = SystemMessage::Watch {
                name: self.name.to_string(),
            };
            if let Err(e) = inbound::send_system(&self.node, self.addr, &msg) {
                tracing::debug!(addr = %self.addr, error = %e, "watch not sent; node lost");
                watch::terminated(
                    &self.node,
                    self.addr,
                    &self.name,
                    granary_core::StopReason::NodeLost,
                );
            }
        }
    }

    fn unwatch(&self, watcher: ActorId) {
        if watch::remove(&self.node, self.addr, &self.name, watcher) {
            let msg = SystemMessage::Unwatch {
                name: self.name.to_string(),
            };
            let _ = inbound::send_system(&self.node, self.addr, &msg);
        }
    }
}
