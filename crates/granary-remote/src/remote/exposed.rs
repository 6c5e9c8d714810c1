//! The serving side: actors exposed under a name, with the message types they accept.

use std::any::Any;
use std::collections::HashSet;
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

/// Delivers one decoded message to the exposed actor (its `ActorRef<A>`, erased);
/// `reply` is set for an ask. The credit (flow control) is given back once the actor
/// took the tell, or answered the ask.
pub(crate) type DeliverFn = Arc<
    dyn Fn(&(dyn Any + Send + Sync), ErasedMessage, Option<ReplyTo>, Option<Credit>) + Send + Sync,
>;

/// The accepted message types by tag: the name and how to deliver. Shared by every
/// actor exposed with one [`Acceptance`], copied on write by [`Exposure::accept`].
type HandlerTable = foldhash::HashMap<u64, (&'static str, DeliverFn)>;

pub(crate) use super::credits::Credit;
use super::credits::Credits;

/// One exposed actor.
pub(crate) struct Exposed {
    pub(crate) id: ActorId,
    /// The exposed actor's `ActorRef<A>`, which the handlers take.
    actor: Box<dyn Any + Send + Sync>,
    handlers: RwLock<Arc<HandlerTable>>,
    stop: Box<dyn Fn() + Send + Sync>,
    watchers: Mutex<Watchers>,
    /// Free places for messages from the wire (`TransportConfig::inbound_capacity`).
    pub(crate) credits: Arc<Credits>,
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

    /// Hands one decoded message to the actor through `handler` (from
    /// [`Exposed::handler`]).
    pub(crate) fn deliver(
        &self,
        handler: &DeliverFn,
        msg: ErasedMessage,
        reply: Option<ReplyTo>,
        credit: Option<Credit>,
    ) {
        handler(&*self.actor, msg, reply, credit)
    }

    /// Messages from the wire that wait for the actor or are being served.
    pub(crate) fn backlog(&self) -> usize {
        self.capacity - self.credits.available()
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
    /// Takes the message types of `acceptance`, instead of those listed so far.
    pub(crate) fn share(self, acceptance: &Acceptance<A>) {
        *self.entry.handlers.write() = acceptance.table.clone();
    }

    /// Accept `M` from the wire. `M` and `M::Reply` must be registered with
    /// [`register_message!`](crate::register_message).
    pub fn accept<M>(self) -> Result<Self, RemoteSetupError>
    where
        A: Handler<M>,
        M: Message + Serialize + DeserializeOwned,
        M::Reply: Serialize + DeserializeOwned,
    {
        let (tag, handler) = handler_of::<A, M>(self.node.registry, self.node.serve_timeout)?;
        Arc::make_mut(&mut *self.entry.handlers.write()).insert(tag, handler);
        Ok(self)
    }
}

/// The message types that a family of actors accept from the wire, checked and built
/// once and shared by every actor exposed with it
/// ([`RemoteNode::expose_accepting`](super::RemoteNode::expose_accepting)): exposing
/// one more actor then copies no table. Start one with
/// [`RemoteNode::acceptance`](super::RemoteNode::acceptance).
pub struct Acceptance<A: Actor> {
    registry: &'static Registry,
    serve_timeout: std::time::Duration,
    table: Arc<HandlerTable>,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> std::fmt::Debug for Acceptance<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.table.values().map(|(n, _)| *n).collect();
        names.sort_unstable();
        f.debug_struct("Acceptance")
            .field("accepts", &names.join(" | "))
            .finish()
    }
}

impl<A: Actor> Clone for Acceptance<A> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry,
            serve_timeout: self.serve_timeout,
            table: self.table.clone(),
            _actor: PhantomData,
        }
    }
}

impl<A: Actor> Acceptance<A> {
    pub(crate) fn new(node: &NodeInner) -> Self {
        Self {
            registry: node.registry,
            serve_timeout: node.serve_timeout,
            table: Arc::new(HandlerTable::default()),
            _actor: PhantomData,
        }
    }

    /// Accept `M` from the wire, as [`Exposure::accept`] does for one actor. `M` and
    /// `M::Reply` must be registered with [`register_message!`](crate::register_message).
    pub fn accept<M>(mut self) -> Result<Self, RemoteSetupError>
    where
        A: Handler<M>,
        M: Message + Serialize + DeserializeOwned,
        M::Reply: Serialize + DeserializeOwned,
    {
        let (tag, handler) = handler_of::<A, M>(self.registry, self.serve_timeout)?;
        Arc::make_mut(&mut self.table).insert(tag, handler);
        Ok(self)
    }
}

/// The table row for `M` sent to an `A`: its tag, its name and how to deliver it;
/// `Err` if `M` or its reply is not registered.
fn handler_of<A, M>(
    registry: &'static Registry,
    timeout: std::time::Duration,
) -> Result<(u64, (&'static str, DeliverFn)), RemoteSetupError>
where
    A: Actor + Handler<M>,
    M: Message + Serialize + DeserializeOwned,
    M::Reply: Serialize + DeserializeOwned,
{
    let msg_type = registry
        .by_type::<M>()
        .ok_or(RemoteSetupError::Unregistered(std::any::type_name::<M>()))?;
    registry
        .by_type::<M::Reply>()
        .ok_or(RemoteSetupError::Unregistered(std::any::type_name::<
            M::Reply,
        >()))?;
    let deliver: DeliverFn = Arc::new(
        move |actor: &(dyn Any + Send + Sync),
              msg: ErasedMessage,
              reply: Option<ReplyTo>,
              credit: Option<Credit>| {
            let mismatch = |found: &str| {
                ReplyFailure::Remote(RemoteError::TypeMismatch {
                    expected: std::any::type_name::<M>().into(),
                    found: found.into(),
                })
            };
            // The table is built for `A` and the registry decoded this tag to `M`, so
            // neither can fail; answer anyway.
            let Some(actor) = actor.downcast_ref::<ActorRef<A>>() else {
                if let Some(reply) = reply {
                    reply.fail(mismatch("an actor of another type"));
                }
                return;
            };
            let Ok(msg) = msg.downcast::<M>() else {
                if let Some(reply) = reply {
                    reply.fail(mismatch("another type"));
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
                Some(reply) => serve_ask(actor, *msg, reply, credit, timeout),
            }
        },
    );
    Ok((msg_type.tag(), (msg_type.name(), deliver)))
}

/// Serves one ask from the wire with `actor`, giving `credit` back once the answer
/// (or failure) is sent.
///
/// A local actor with an unbounded mailbox (the default) gets it with
/// [`ActorRef::ask_then`]: one push into its mailbox, and the answer is encoded and
/// sent from the actor's task as the handler returns; no task waits and no timer is
/// armed, so the serve timeout does not apply. A handler that never returns keeps the
/// ask's credit until the actor stops (then `Stopped` is answered); the asker's own
/// timeout answers it meanwhile. The serve timeout bounds the paths that need a
/// waiting task: a bounded mailbox (an ask waits for room in it, as a local `ask`
/// does) and an exposed ref to an actor elsewhere.
fn serve_ask<A, M>(
    actor: &ActorRef<A>,
    msg: M,
    reply: ReplyTo,
    credit: Option<Credit>,
    timeout: std::time::Duration,
) where
    A: Actor + Handler<M>,
    M: Message,
{
    if !actor.is_local() || actor.is_bounded() {
        spawn_serve(actor.clone(), msg, reply, credit, timeout);
        return;
    }
    actor.ask_then(msg, move |result| send_served(&reply, result, credit));
}

/// Sends the outcome of a served ask and gives its credit back.
fn send_served<M: Message>(
    reply: &ReplyTo,
    result: Result<M::Reply, AskError<M>>,
    credit: Option<Credit>,
) {
    match result {
        Ok(answer) => reply.answer(&answer),
        Err(e) => reply.fail(failure_of(e)),
    }
    // Served: the credit comes back.
    drop(credit);
}

/// Serves one ask on a task of its own that waits at most `timeout` for the answer.
fn spawn_serve<A, M>(
    actor: ActorRef<A>,
    msg: M,
    reply: ReplyTo,
    credit: Option<Credit>,
    timeout: std::time::Duration,
) where
    A: Actor + Handler<M>,
    M: Message,
{
    let serve = async move {
        let result = actor.ask_timeout(msg, timeout).await;
        send_served(&reply, result, credit);
    };
    // The ask continues the `granary.receive` span (and its trace).
    tokio::spawn(tracing::Instrument::in_current_span(serve));
}

/// The failure reply for an ask that failed on this node.
pub(crate) fn failure_of<M>(e: AskError<M>) -> ReplyFailure {
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

/// Whether an exposed actor's name is also registered in the local actor system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LocalName {
    /// Registered: `RemoteRef::resolve` on this node finds the local actor.
    Register,
    /// Exposed to the network only (`RemoteNode::expose_accepting_remote_only`).
    Skip,
}

pub(crate) fn expose<A: Actor>(
    node: &Arc<NodeInner>,
    name: &str,
    actor: &ActorRef<A>,
    local_name: LocalName,
) -> Result<Exposure<A>, RemoteSetupError> {
    let mut exposed = node.exposed.write();
    if exposed.contains_key(name) {
        return Err(RemoteSetupError::NameTaken(name.to_owned()));
    }
    if local_name == LocalName::Register {
        match node.system.register(name, actor) {
            Ok(()) => {}
            // Already registered locally under this name: fine if it is this very actor.
            Err(_) if node.system.lookup::<A>(name).as_ref() == Some(actor) => {}
            Err(_) => return Err(RemoteSetupError::NameTaken(name.to_owned())),
        }
    }
    let stopper = actor.clone();
    let capacity = node.transport().config().inbound_capacity;
    let entry = Arc::new(Exposed {
        id: actor.id(),
        actor: Box::new(actor.clone()),
        handlers: RwLock::new(Arc::default()),
        stop: Box::new(move || stopper.stop()),
        watchers: Mutex::new(Watchers::default()),
        credits: Credits::new(capacity),
        capacity,
    });
    exposed.insert(name.to_owned(), entry.clone());
    drop(exposed);

    // When the actor stops: unexpose it and tell every watching node.
    let weak: Weak<NodeInner> = Arc::downgrade(node);
    let watched = actor.clone();
    let name = name.to_owned();
    let stopped_entry = entry.clone();
    // A callback, not a task awaiting the stop: an exposed actor costs no task.
    watched.on_stopped(move |reason| {
        let reason = WireStopReason::from(&reason);
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
                granary_core::__tables::shrink_if_sparse(&mut exposed);
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
        // In the encoding the asker's node agreed on (its ask came in it).
        let encoding = self.transport.encoding_for(self.to);
        match self.registry.encode_as(answer, encoding) {
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
