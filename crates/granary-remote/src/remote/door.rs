//! Doors: one endpoint that serves every name under a prefix.
//!
//! An exposed actor ([`super::exposed`]) costs the node a table entry, a credit
//! semaphore, a watcher set and a stop callback, which is right for a few long-lived
//! actors and too much for a family of many short-lived ones (granary-virtual's
//! activations, one per identity). A [`Door`] stands for the whole family: the
//! remote layer looks a recipient name up exactly first, and only when nothing is
//! exposed under it, hands the decoded message to the door whose prefix the name
//! starts with (the longest such prefix). The door resolves the rest of the name in
//! its own table and delivers, or refuses with a typed error that the remote layer
//! sends back to the asker (or publishes as a tell's dead letter). Names on the wire
//! do not change: a caller cannot tell a door from an exposed actor.
//!
//! Flow control: a door has `TransportConfig::inbound_capacity` credits for all the
//! names it serves together (`docs/wire.md`, "Flow control").

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use granary_core::{ActorId, AskError, Message, RemoteError, StopReason};
use parking_lot::Mutex;

use super::credits::Credits;
use super::exposed::{failure_of, Credit, ReplyTo};
use super::protocol::{ReplyFailure, SystemMessage, WireStopReason};
use super::{remote_actor_id, NodeInner};
use crate::registry::ErasedMessage;

/// Serves every name under one prefix, for
/// [`RemoteNode::expose_door`](super::RemoteNode::expose_door).
///
/// Each method gets the `rest` of the recipient's name: the name without the prefix.
/// They run on the transport's reader task, so they must not block (enqueue and
/// return; an ask is answered later through its [`Replier`]).
pub trait Door: Send + Sync + 'static {
    /// Hands `delivery` to the actor named by `rest`, or gives it back with why not:
    /// the remote layer answers an ask with that error, and publishes a tell as a
    /// dead letter.
    fn deliver(&self, rest: &str, delivery: Delivery) -> Result<(), Refused>;

    /// Stops the actor named by `rest`, if it lives (a remote `ActorRef::stop`).
    fn stop(&self, rest: &str);

    /// Runs `stopped` once the actor named by `rest` stops (at once if it is
    /// stopping already); `false`, with `stopped` dropped unrun, if no such actor
    /// lives. A remote `ActorRef::watch` of a name under the door goes through it.
    fn on_stopped(&self, rest: &str, stopped: Box<dyn FnOnce(StopReason) + Send>) -> bool;
}

/// One decoded message from the wire for a name under a [`Door`], with what its
/// delivery needs: the answer an ask is owed and the door's flow-control credit.
pub struct Delivery {
    msg: ErasedMessage,
    reply: Option<ReplyTo>,
    credit: Option<Credit>,
    serve_timeout: Duration,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("ask", &self.reply.is_some())
            .field("credit", &self.credit.is_some())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The decoded message: `message().type_id()` says its type.
    pub fn message(&self) -> &(dyn Any + Send) {
        &*self.msg
    }

    /// Whether the sender waits for an answer (an ask) or not (a tell).
    pub fn is_ask(&self) -> bool {
        self.reply.is_some()
    }

    /// Takes the message as `M`; `Err(self)`, unchanged, if it is another type.
    // Gives the delivery back by value, as `Box::downcast` does.
    #[allow(clippy::result_large_err)]
    pub fn open<M: Send + 'static>(self) -> Result<Opened<M>, Self> {
        match self.msg.downcast::<M>() {
            Ok(message) => Ok(Opened {
                message: *message,
                replier: self.reply.map(|to| Replier {
                    to,
                    serve_timeout: self.serve_timeout,
                }),
                credit: self.credit.map(|held| DoorCredit { _held: held }),
            }),
            Err(msg) => Err(Self { msg, ..self }),
        }
    }
}

/// A [`Delivery`] opened as its message type.
#[derive(Debug)]
pub struct Opened<M> {
    /// The message.
    pub message: M,
    /// Where the answer goes: `Some` for an ask.
    pub replier: Option<Replier>,
    /// The door's flow-control credit: keep it until the actor took the message (a
    /// tell: `ActorRef::tell_holding`) or the ask is answered, then drop it. `None`
    /// for a message that came without one (the control channel).
    pub credit: Option<DoorCredit>,
}

/// One of a door's flow-control credits; dropping it gives it back.
pub struct DoorCredit {
    /// Held only to be dropped.
    _held: Credit,
}

impl std::fmt::Debug for DoorCredit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DoorCredit")
    }
}

/// The answer owed to one ask that came through a [`Door`]. Dropped without an
/// answer, the asker waits until its own timeout.
///
/// The cheapest way to serve the ask with a local actor is
/// [`ActorRef::ask_then`](granary_core::ActorRef::ask_then) with the replier and the
/// credit moved into the callback, `actor.ask_then(message, move |result| {
/// replier.reply(result); drop(credit) })`: one push into the actor's mailbox, and the
/// answer sent from the actor's task, with no task waiting and no timer.
pub struct Replier {
    to: ReplyTo,
    serve_timeout: Duration,
}

impl std::fmt::Debug for Replier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replier")
            .field("to", &self.to.to)
            .field("correlation", &self.to.correlation)
            .finish()
    }
}

impl Replier {
    /// How long the serving side gives the actor to answer (the remote layer's serve
    /// timeout, 30 s) when a task waits for the answer: ask the actor with it
    /// (`ActorRef::ask_timeout`). An ask served with `ActorRef::ask_then` has no serve
    /// timeout: the asker's own timeout answers it if the handler never returns.
    pub fn serve_timeout(&self) -> Duration {
        self.serve_timeout
    }

    /// Sends `answer` (a registered reply type; anything else answers `Encode`).
    pub fn answer(self, answer: &(dyn Any + Send)) {
        self.to.answer(answer);
    }

    /// Sends why the ask failed on this node, as a local ask would report it.
    pub fn fail<M>(self, error: AskError<M>) {
        self.to.fail(failure_of(error));
    }

    /// Sends the outcome of a local ask: the answer, or why it failed (as
    /// [`Replier::answer`] and [`Replier::fail`] do). Fits the callback of
    /// `ActorRef::ask_then`.
    pub fn reply<M: Message>(self, result: Result<M::Reply, AskError<M>>) {
        match result {
            Ok(answer) => self.to.answer(&answer),
            Err(error) => self.to.fail(failure_of(error)),
        }
    }
}

/// A delivery a [`Door`] gives back, and why (boxed: refusals are the rare path,
/// and a `Result` carrying one stays small).
#[derive(Debug)]
pub struct Refused(Box<Refusal>);

#[derive(Debug)]
struct Refusal {
    delivery: Delivery,
    /// `None`: no actor has the name.
    error: Option<RemoteError>,
}

impl Refused {
    /// `delivery` was not delivered because of `error`.
    pub fn new(delivery: Delivery, error: RemoteError) -> Self {
        Self(Box::new(Refusal {
            delivery,
            error: Some(error),
        }))
    }

    /// No actor has the name (any more): answered as `RemoteError::NoSuchActor` with
    /// the id that a remote ref to the name has, as for a name nothing is exposed
    /// under. A caller that locates its actors again (granary-virtual's) does so.
    pub fn no_such_actor(delivery: Delivery) -> Self {
        Self(Box::new(Refusal {
            delivery,
            error: None,
        }))
    }

    /// Answers the refusal itself, for a door that took a delivery from
    /// [`Door::deliver`] and found only later, on a task of its own, that it cannot
    /// deliver it (a refusal returned from `deliver` is answered by the remote layer).
    /// An ask gets the error (`NoSuchActor(id)` for [`Refused::no_such_actor`]); a
    /// tell has nobody to answer, so the error is returned for the door to report
    /// (as a dead letter, say). Returns the error and whether it was a tell.
    pub fn answer(self, id: ActorId) -> (RemoteError, bool) {
        let Refusal { delivery, error } = *self.0;
        let error = error.unwrap_or(RemoteError::NoSuchActor(id));
        let is_tell = match delivery.reply {
            Some(reply) => {
                reply.fail(ReplyFailure::Remote(error.clone()));
                false
            }
            None => true,
        };
        (error, is_tell)
    }
}

/// A door as the node keeps it.
pub(crate) struct DoorEntry {
    pub(crate) prefix: String,
    door: Arc<dyn Door>,
    /// Free places for messages from the wire, for all the door's names together.
    pub(crate) credits: Arc<Credits>,
    capacity: usize,
    /// Nodes watching a name under the door, by name (only names being watched).
    watchers: Mutex<HashMap<String, HashSet<SocketAddr>>>,
    /// The node, to tell watchers about stops (weak: the node owns its doors).
    node: Weak<NodeInner>,
}

impl DoorEntry {
    pub(crate) fn new(
        node: Weak<NodeInner>,
        prefix: &str,
        door: Arc<dyn Door>,
        capacity: usize,
    ) -> Self {
        Self {
            node,
            prefix: prefix.to_owned(),
            door,
            credits: Credits::new(capacity),
            capacity,
            watchers: Mutex::new(HashMap::new()),
        }
    }

    /// The rest of `name` under this door's prefix.
    fn rest<'n>(&self, name: &'n str) -> &'n str {
        &name[self.prefix.len()..]
    }

    /// Hands one decoded message for `name` to the door. Returns the error to
    /// report if the door refused it (an ask's failure reply is sent here).
    pub(crate) fn deliver(
        &self,
        name: &str,
        msg: ErasedMessage,
        reply: Option<ReplyTo>,
        credit: Option<Credit>,
        serve_timeout: Duration,
    ) -> Result<(), RemoteError> {
        let delivery = Delivery {
            msg,
            reply,
            credit,
            serve_timeout,
        };
        let Err(Refused(refused)) = self.door.deliver(self.rest(name), delivery) else {
            return Ok(());
        };
        let error = refused.error.unwrap_or_else(|| {
            let addr = self.node.upgrade().map(|n| n.transport().local_addr());
            let id = addr.map_or(ActorId::new(0, 0), |addr| remote_actor_id(addr, name));
            RemoteError::NoSuchActor(id)
        });
        if let Some(reply) = refused.delivery.reply {
            reply.fail(ReplyFailure::Remote(error.clone()));
        }
        Err(error)
    }

    /// Messages from the wire that wait for one of the door's names or are served.
    pub(crate) fn backlog(&self) -> usize {
        self.capacity - self.credits.available()
    }

    pub(crate) fn stop(&self, name: &str) {
        self.door.stop(self.rest(name));
    }

    /// Registers `watcher` for `name`; `Err(reason)` if nothing lives under it.
    pub(crate) fn add_watcher(
        self: &Arc<Self>,
        name: &str,
        watcher: SocketAddr,
    ) -> Result<(), WireStopReason> {
        let first = {
            let mut watchers = self.watchers.lock();
            let nodes = watchers.entry(name.to_owned()).or_default();
            nodes.insert(watcher);
            nodes.len() == 1
        };
        if !first {
            return Ok(());
        }
        let entry = Arc::downgrade(self);
        let watched = name.to_owned();
        let alive = self.door.on_stopped(
            self.rest(name),
            Box::new(move |reason| {
                if let Some(entry) = entry.upgrade() {
                    entry.stopped(&watched, WireStopReason::from(&reason));
                }
            }),
        );
        if alive {
            return Ok(());
        }
        self.watchers.lock().remove(name);
        Err(WireStopReason::NotAlive)
    }

    /// The actor named `name` stopped: tells every node watching it.
    fn stopped(&self, name: &str, reason: WireStopReason) {
        let Some(nodes) = self.watchers.lock().remove(name) else {
            return;
        };
        let Some(node) = self.node.upgrade() else {
            return;
        };
        for addr in nodes {
            let msg = SystemMessage::Terminated {
                name: name.to_owned(),
                reason: reason.clone(),
            };
            if let Err(e) = super::inbound::send_system(&node, addr, &msg) {
                tracing::debug!(%addr, error = %e, "could not tell a watcher about a stop");
            }
        }
    }

    /// Forgets `watcher`'s watch on `name`.
    pub(crate) fn forget_watcher(&self, name: &str, watcher: SocketAddr) {
        let mut watchers = self.watchers.lock();
        if let Some(nodes) = watchers.get_mut(name) {
            nodes.remove(&watcher);
            if nodes.is_empty() {
                watchers.remove(name);
            }
        }
    }

    /// Forgets every watch of the node at `addr` (it is gone).
    pub(crate) fn forget_node(&self, addr: SocketAddr) {
        self.watchers.lock().retain(|_, nodes| {
            nodes.remove(&addr);
            !nodes.is_empty()
        });
    }
}

/// The doors of a node, longest prefix first.
#[derive(Default)]
pub(crate) struct Doors {
    by_length: Vec<Arc<DoorEntry>>,
}

impl Doors {
    /// Adds `entry`; `false` if a door has that prefix already.
    pub(crate) fn add(&mut self, entry: Arc<DoorEntry>) -> bool {
        if self.by_length.iter().any(|d| d.prefix == entry.prefix) {
            return false;
        }
        self.by_length.push(entry);
        self.by_length
            .sort_by_key(|d| std::cmp::Reverse(d.prefix.len()));
        true
    }

    /// The door serving `name` (the one with the longest prefix of it). A node has
    /// a door per family of names (granary-virtual: one per hosted kind), so a scan
    /// is cheaper than hashing every prefix of the name.
    pub(crate) fn find(&self, name: &str) -> Option<&Arc<DoorEntry>> {
        self.by_length.iter().find(|d| name.starts_with(&d.prefix))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<DoorEntry>> {
        self.by_length.iter()
    }

    pub(crate) fn prefixes(&self) -> Vec<String> {
        self.by_length.iter().map(|d| d.prefix.clone()).collect()
    }
}
