//! The serving side: actors exposed under a name, with the message types they accept.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use granary_core::{Actor, ActorId, ActorRef, AskError, Handler, Message, RemoteError, SendError};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::protocol::{ReplyFailure, SystemMessage, WireStopReason, REPLY_FAILURE};
use super::{NodeInner, RemoteSetupError};
use crate::registry::{ErasedMessage, Registry};
use crate::transport::{SendOptions, Transport};
use crate::wire::{FrameHeader, FrameKind};

/// Delivers one decoded message to the exposed actor; `reply` is set for an ask. The
/// credit (flow control) is given back once the actor took the tell, or answered the ask.
type DeliverFn = Arc<dyn Fn(ErasedMessage, Option<ReplyTo>, Option<Credit>) + Send + Sync>;

/// One of an exposed actor's `TransportConfig::inbound_capacity` credits.
pub(crate) type Credit = tokio::sync::OwnedSemaphorePermit;

/// One exposed actor.
pub(crate) struct Exposed {
    pub(crate) id: ActorId,
    handlers: RwLock<HashMap<u64, (&'static str, DeliverFn)>>,
    stop: Box<dyn Fn() + Send + Sync>,
    watchers: Mutex<Watchers>,
    /// Free places for messages from the wire (`TransportConfig::inbound_capacity`).
    pub(crate) credits: Arc<tokio::sync::Semaphore>,
    capacity: usize,
}

#[derive(Default)]
struct Watchers {
    nodes: HashSet<SocketAddr>,
    /// Set once the actor stopped; later watches are answered at once.
    stopped: Option<WireStopReason>,
}

impl Exposed {
    pub(crate) fn handler(&self, tag: u64) -> Option<DeliverFn> {
        self.handlers.read().get(&tag).map(|(_, f)| f.clone())
    }

    /// Messages from the wire that wait for the actor or are being served.
    pub(crate) fn backlog(&self) -> usize {
        self.capacity - self.credits.available_permits()
    }

    pub(crate) fn accepted(&self) -> String {
        let mut names: Vec<&str> = self.handlers.read().values().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.join(" | ")
    }

    pub(crate) fn stop(&self) {
        (self.stop)()
    }

    /// Register a watching node; `Err(reason)` if the actor has already stopped.
    pub(crate) fn add_watcher(&self, node: SocketAddr) -> Result<(), WireStopReason> {
        let mut w = self.watchers.lock();
        match &w.stopped {
            Some(reason) => Err(reason.clone()),
            None => {
                w.nodes.insert(node);
                Ok(())
            }
        }
    }

    pub(crate) fn forget_watcher(&self, node: SocketAddr) {
        self.watchers.lock().nodes.remove(&node);
    }
}

/// Builder returned by [`RemoteNode::expose`](super::RemoteNode::expose): list the message
/// types the exposed actor accepts from the wire.
pub struct Exposure<A: Actor> {
    node: Arc<NodeInner>,
    entry: Arc<Exposed>,
    actor: ActorRef<A>,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> std::fmt::Debug for Exposure<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposure")
            .field("actor", &self.actor)
            .field("accepts", &self.entry.accepted())
            .finish()
    }
}

impl<A: Actor> Exposure<A> {
    /// Accept `M` from the wire. `M` and `M::Reply` must be registered with
    /// [`register_message!`](crate::register_message).
    pub fn accept<M>(self) -> Result<Self, RemoteSetupError>
    where
        A: Handler<M>,
        M: Message + Serialize + DeserializeOwned,
        M::Reply: Serialize + DeserializeOwned,
    {
        let registry = self.node.registry;
        let msg_type = registry
            .by_type::<M>()
            .ok_or(RemoteSetupError::Unregistered(std::any::type_name::<M>()))?;
        registry
            .by_type::<M::Reply>()
            .ok_or(RemoteSetupError::Unregistered(std::any::type_name::<
                M::Reply,
            >()))?;
        let actor = self.actor.clone();
        let timeout = self.node.serve_timeout;
        let deliver: DeliverFn = Arc::new(
            move |msg: ErasedMessage, reply: Option<ReplyTo>, credit: Option<Credit>| {
                let Ok(msg) = msg.downcast::<M>() else {
                    // The registry decoded this tag to M, so this cannot happen; answer anyway.
                    if let Some(reply) = reply {
                        reply.fail(ReplyFailure::Remote(RemoteError::TypeMismatch {
                            expected: std::any::type_name::<M>().into(),
                            found: "another type".into(),
                        }));
                    }
                    return;
                };
                match reply {
                    // A failed local tell publishes its own dead letter in granary-core.
                    // The credit comes back when the actor takes the message.
                    None => match credit {
                        Some(credit) => drop(actor.tell_holding(*msg, credit)),
                        None => drop(actor.tell(*msg)),
                    },
                    Some(reply) => {
                        let actor = actor.clone();
                        let serve = async move {
                            match actor.ask_timeout(*msg, timeout).await {
                                Ok(answer) => reply.answer(&answer),
                                Err(e) => reply.fail(failure_of(e)),
                            }
                            // Served: the credit comes back.
                            drop(credit);
                        };
                        // The ask continues the `granary.receive` span (and its trace).
                        tokio::spawn(tracing::Instrument::in_current_span(serve));
                    }
                }
            },
        );
        self.entry
            .handlers
            .write()
            .insert(msg_type.tag(), (msg_type.name(), deliver));
        Ok(self)
    }
}

fn failure_of<M>(e: AskError<M>) -> ReplyFailure {
    match e {
        AskError::Timeout => ReplyFailure::Timeout,
        AskError::ActorPanicked => ReplyFailure::Panicked,
        AskError::ActorStopped => ReplyFailure::Stopped,
        AskError::Send(SendError::ActorStopped(_)) => ReplyFailure::Stopped,
        AskError::Send(SendError::MailboxFull(_)) => {
            ReplyFailure::Remote(RemoteError::Other("mailbox full".into()))
        }
        AskError::Send(SendError::Remote { error, .. }) | AskError::Remote(error) => {
            ReplyFailure::Remote(error)
        }
        _ => ReplyFailure::Remote(RemoteError::Other("ask failed".into())),
    }
}

pub(crate) fn expose<A: Actor>(
    node: &Arc<NodeInner>,
    name: &str,
    actor: &ActorRef<A>,
) -> Result<Exposure<A>, RemoteSetupError> {
    let mut exposed = node.exposed.write();
    if exposed.contains_key(name) {
        return Err(RemoteSetupError::NameTaken(name.to_owned()));
    }
    match node.system.register(name, actor) {
        Ok(()) => {}
        // Already registered locally under this name: fine if it is this very actor.
        Err(_) if node.system.lookup::<A>(name).as_ref() == Some(actor) => {}
        Err(_) => return Err(RemoteSetupError::NameTaken(name.to_owned())),
    }
    let stopper = actor.clone();
    let capacity = node.transport().config().inbound_capacity;
    let entry = Arc::new(Exposed {
        id: actor.id(),
        handlers: RwLock::new(HashMap::new()),
        stop: Box::new(move || stopper.stop()),
        watchers: Mutex::new(Watchers::default()),
        credits: Arc::new(tokio::sync::Semaphore::new(capacity)),
        capacity,
    });
    exposed.insert(name.to_owned(), entry.clone());
    drop(exposed);

    // When the actor stops: unexpose it and tell every watching node.
    let weak: Weak<NodeInner> = Arc::downgrade(node);
    let watched = actor.clone();
    let name = name.to_owned();
    let stopped_entry = entry.clone();
    tokio::spawn(async move {
        let reason = WireStopReason::from(&watched.wait_stopped().await);
        let nodes: Vec<SocketAddr> = {
            let mut w = stopped_entry.watchers.lock();
            w.stopped = Some(reason.clone());
            w.nodes.drain().collect()
        };
        let Some(node) = weak.upgrade() else { return };
        {
            let mut exposed = node.exposed.write();
            if exposed
                .get(&name)
                .is_some_and(|e| Arc::ptr_eq(e, &stopped_entry))
            {
                exposed.remove(&name);
            }
        }
        for addr in nodes {
            let msg = SystemMessage::Terminated {
                name: name.clone(),
                reason: reason.clone(),
            };
            if let Err(e) = super::inbound::send_system(&node, addr, &msg) {
                tracing::debug!(%addr, error = %e, "could not tell a watcher about a stop");
            }
        }
    });

    Ok(Exposure {
        node: node.clone(),
        entry,
        actor: actor.clone(),
        _actor: PhantomData,
    })
}

/// Where the answer to one remote ask goes.
pub(crate) struct ReplyTo {
    pub(crate) transport: Transport,
    pub(crate) registry: &'static Registry,
    pub(crate) to: SocketAddr,
    pub(crate) correlation: u64,
    pub(crate) responder: String,
}

impl ReplyTo {
    /// Send a successful reply (or an encode failure if the reply cannot be encoded).
    pub(crate) fn answer(&self, answer: &dyn Any) {
        match self.registry.encode_any(answer) {
            Ok((tag, body)) => {
                if let Err(e) = self.send(tag, body) {
                    self.fail(ReplyFailure::Remote(RemoteError::Other(format!(
                        "reply not sent: {e}"
                    ))));
                }
            }
            Err(e) => self.fail(ReplyFailure::Remote(RemoteError::Encode(e.to_string()))),
        }
    }

    /// Send a failure reply.
    pub(crate) fn fail(&self, failure: ReplyFailure) {
        let tag = crate::registry::type_tag(REPLY_FAILURE);
        let body = match postcard::to_allocvec(&failure) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a reply failure");
                return;
            }
        };
        if let Err(e) = self.send(tag, body) {
            tracing::debug!(to = %self.to, error = %e, "failure reply not sent");
        }
    }

    fn send(&self, tag: u64, body: Bytes) -> Result<(), crate::error::SendError> {
        let header = FrameHeader {
            kind: FrameKind::Reply,
            channel: 0,
            type_tag: tag,
            correlation: self.correlation,
            sender: &self.responder,
            recipient: "",
            trace: None,
        };
        self.transport
            .send(self.to, header, body, SendOptions::data())
    }
}
