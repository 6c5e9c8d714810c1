//! Remote actors: typed refs over the wire, remote tell/ask/stop/watch.
//!
//! A [`RemoteNode`] joins an [`ActorSystem`] to a [`Transport`]. On the serving side,
//! [`RemoteNode::expose`] makes a local actor reachable under a name and lists the message
//! types it accepts from the wire. On the calling side, [`RemoteNode::remote_ref`] (or
//! `ActorRef::<A>::remote(&node, addr, name)` with [`ActorRefRemoteExt`]) forges a typed
//! [`ActorRef`] without asking anyone; it plugs into `granary-core` through its
//! `RemoteTarget` hook, so callers use the same `tell`/`ask`/`stop`/`watch` as locally.
//!
//! What travels: the message is encoded once with the [`Registry`] (tag + body, in the
//! encoding the peer agreed on: [`Transport::encoding_for`](crate::Transport::encoding_for))
//! and sent on the data channel; the serving node decodes it on its reader task, checks
//! that the named actor exists and accepts that type, and delivers it. Every failure is
//! typed: an ask gets `RemoteError::{NoSuchActor, TypeMismatch, Decode, Unreachable, ..}`
//! or `AskError::Timeout`; a tell that cannot be delivered becomes a `DeadLetter` on the
//! serving node's event stream (or a `SendError::Remote` at the caller when it cannot
//! even leave).

mod contract_ref;
mod credits;
mod door;
mod exposed;
mod inbound;
mod outbound;
mod protocol;
mod refusals;
mod relay;
mod remote_ref;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use granary_core::{Actor, ActorId, ActorRef, ActorSystem, RemoteError, RemoteTarget};
use parking_lot::{Mutex, RwLock};
use thiserror::Error;
use tokio::task::AbortHandle;

pub use contract_ref::ContractActorRef;
pub use door::{Delivery, Door, DoorCredit, Opened, Refused, Replier};
pub use exposed::{Acceptance, Exposure};
pub use remote_ref::{ActorRefRemoteExt, RemoteRef};

use crate::contract::{Contract, ServedBy};
use crate::error::{RegistryError, SendError as TransportSendError, TransportError};
use crate::registry::{type_tag, Registry};
use crate::transport::{PeerEvent, Transport, TransportConfig};
use door::{DoorEntry, Doors};
use exposed::Exposed;
use outbound::{PendingAsk, RemoteActor};
use refusals::RefusalBook;
use watch::WatchTable;

/// Setting up the remote layer failed.
#[derive(Debug, Error)]
pub enum RemoteSetupError {
    /// The message registry has conflicts (reported at start-up).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A message or reply type used remotely was never registered.
    #[error("type {0} is not registered with register_message!")]
    Unregistered(&'static str),
    /// The name is already exposed or registered in the actor system.
    #[error("name {0:?} is already taken")]
    NameTaken(String),
}

pub(crate) struct NodeInner {
    system: ActorSystem,
    registry: &'static Registry,
    transport: OnceLock<Transport>,
    exposed: RwLock<foldhash::HashMap<String, Arc<Exposed>>>,
    /// Endpoints serving every name under a prefix, tried when no actor is exposed
    /// under the exact name.
    doors: RwLock<Doors>,
    pending: Mutex<foldhash::HashMap<u64, PendingAsk>>,
    next_correlation: AtomicU64,
    watches: Mutex<WatchTable>,
    /// Why the last handshake with a peer we dialled was refused (reported instead of a
    /// bare "unreachable" while it stays unreachable).
    refusals: Mutex<RefusalBook>,
    /// Asks relayed for dial-out peers, waiting for their host's reply.
    relays: Mutex<relay::Relays>,
    serve_timeout: Duration,
    events_task: Mutex<Option<AbortHandle>>,
}

impl NodeInner {
    fn transport(&self) -> &Transport {
        // Set right after bind; inbound frames that arrive earlier are dropped before
        // reaching any code that calls this (see `inbound::on_frame`).
        self.transport
            .get()
            .unwrap_or_else(|| unreachable!("the transport is set when start returns"))
    }

    fn is_started(&self) -> bool {
        self.transport.get().is_some()
    }

    fn next_correlation(&self) -> u64 {
        self.next_correlation.fetch_add(1, Ordering::Relaxed)
    }

    /// The core error for a transport send failure towards `addr`.
    fn send_error(&self, addr: SocketAddr, e: TransportSendError) -> RemoteError {
        match e {
            TransportSendError::Unreachable { .. } => self.unreachable(addr),
            TransportSendError::Backpressure { peer } => {
                RemoteError::Backpressure(peer.to_string())
            }
            TransportSendError::FrameTooLarge { len, max } => {
                RemoteError::FrameTooLarge { len, max }
            }
            other => RemoteError::Other(other.to_string()),
        }
    }

    fn unreachable(&self, addr: SocketAddr) -> RemoteError {
        match self.refusals.lock().get(addr) {
            Some(reason) => RemoteError::Unauthorized(reason.to_owned()),
            None => RemoteError::Unreachable,
        }
    }

    fn on_peer_event(&self, event: PeerEvent) {
        match event {
            PeerEvent::Connected { node } => {
                self.refusals.lock().remove(node.addr());
            }
            // An inbound refusal is keyed by the other side's ephemeral port and explains
            // nothing about our sends: only refusals of our own dials are kept.
            PeerEvent::Refused {
                addr,
                reason,
                inbound: false,
            } => {
                self.refusals.lock().insert(addr, &reason);
            }
            PeerEvent::Refused { inbound: true, .. } => {}
            PeerEvent::Unreachable { addr, .. } => {
                // Its queues were dropped, so no pending ask can be answered any more.
                self.fail_pending(addr);
                self.node_lost(addr);
                relay::node_lost(self, addr);
            }
            // A dial-out transport's replies come back on the connections it opened:
            // once the control connection is gone, those queued at the peer for us are
            // lost with it, so the asks waiting for them fail now (and are resent by
            // callers that resend) instead of at their timeout.
            PeerEvent::Disconnected { node, .. } if self.transport().is_dial_out() => {
                self.fail_pending(node.addr());
            }
            // The old incarnation's actors are gone. Pending asks are left alone: those
            // still queued when it restarted go to the new incarnation and may be
            // answered; the others end with their timeout.
            PeerEvent::Restarted { old, .. } => self.node_lost(old.addr()),
            PeerEvent::Disconnected { .. } | PeerEvent::ProtocolViolation { .. } => {}
        }
    }

    /// Fail every ask waiting for an answer from `addr`.
    fn fail_pending(&self, addr: SocketAddr) {
        let error = self.unreachable(addr);
        let failed: Vec<PendingAsk> = {
            let mut pending = self.pending.lock();
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.addr == addr)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id))
                .collect()
        };
        for p in failed {
            p.fail(error.clone());
        }
    }

    /// The node at `addr` is gone: notify watchers of its actors, forget its watches on
    /// our actors.
    fn node_lost(&self, addr: SocketAddr) {
        watch::node_lost(self, addr);
        for exposed in self.exposed.read().values() {
            exposed.forget_watcher(addr);
        }
        for door in self.doors.read().iter() {
            door.forget_node(addr);
        }
    }
}

/// An actor system reachable over the network.
///
/// ```no_run
/// // no_run: opens sockets; tests/remote_actors.rs runs the same flow.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use granary_core::prelude::*;
/// use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
/// register_message!(Add, "doc.Add");
///
/// struct Counter(u64);
/// impl Actor for Counter {}
/// impl Handler<Add> for Counter {
///     async fn handle(&mut self, m: Add, _: &mut Context<Self>) -> u64 { self.0 += m.0; self.0 }
/// }
///
/// let server = RemoteNode::start(ActorSystem::new(), TransportConfig::new("c", "s")).await?;
/// let counter = server.system().spawn(Counter(0));
/// server.expose("counter", &counter)?.accept::<Add>()?;
///
/// let client = RemoteNode::start(ActorSystem::new(), TransportConfig::new("c", "s")).await?;
/// let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
/// assert_eq!(remote.ask(Add(2)).await?, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNode")
            .field("transport", self.inner.transport())
            .finish_non_exhaustive()
    }
}

impl RemoteNode {
    /// Check the message registry, bind the transport and start serving `system`.
    pub async fn start(
        system: ActorSystem,
        config: TransportConfig,
    ) -> Result<Self, RemoteSetupError> {
        Self::start_with(system, config, false).await
    }

    /// [`RemoteNode::start`] on a transport that listens nowhere and only dials out
    /// ([`Transport::dial_out`]): the nodes it reaches answer on the connections it
    /// opened. Reach actors on hosts it has no connection to through a gateway with
    /// [`RemoteNode::remote_ref_via`].
    pub async fn start_dial_out(
        system: ActorSystem,
        config: TransportConfig,
    ) -> Result<Self, RemoteSetupError> {
        Self::start_with(system, config, true).await
    }

    async fn start_with(
        system: ActorSystem,
        config: TransportConfig,
        dial_out: bool,
    ) -> Result<Self, RemoteSetupError> {
        let registry = Registry::global().map_err(|e| RemoteSetupError::Registry(e.clone()))?;
        let inner = Arc::new(NodeInner {
            system,
            registry,
            transport: OnceLock::new(),
            exposed: RwLock::new(foldhash::HashMap::default()),
            doors: RwLock::new(Doors::default()),
            pending: Mutex::new(foldhash::HashMap::default()),
            next_correlation: AtomicU64::new(1),
            watches: Mutex::new(HashMap::new()),
            refusals: Mutex::new(RefusalBook::new()),
            relays: Mutex::new(relay::Relays::default()),
            serve_timeout: Duration::from_secs(30),
            events_task: Mutex::new(None),
        });
        // Weak: the transport's handler must not keep the node alive forever.
        let weak: Weak<NodeInner> = Arc::downgrade(&inner);
        let handler = Arc::new(inbound::Inbound { node: weak });
        let transport = if dial_out {
            Transport::dial_out(config, handler).await?
        } else {
            Transport::bind_arc(config, handler).await?
        };
        // granary-core's series of this system carry the node's address, as the
        // transport's do (several nodes in one process keep apart).
        let node = transport.local_addr().to_string();
        if !inner.system.set_node_label(&node) {
            tracing::debug!(
                %node,
                label = inner.system.node_label(),
                "actor system already labelled: its metrics keep that node label"
            );
        }
        let mut events = transport.subscribe();
        let _ = inner.transport.set(transport);
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "remote layer missed peer events");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                inner.on_peer_event(event);
            }
        });
        *inner.events_task.lock() = Some(task.abort_handle());
        Ok(Self { inner })
    }

    /// The actor system served.
    pub fn system(&self) -> &ActorSystem {
        &self.inner.system
    }

    /// The transport underneath (for channels, faults, stats).
    pub fn transport(&self) -> &Transport {
        self.inner.transport()
    }

    /// The address peers reach this node at.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport().local_addr()
    }

    /// Make `actor` reachable from other nodes under `name` (also registered in the actor
    /// system's name registry). List accepted message types with [`Exposure::accept`].
    pub fn expose<A: Actor>(
        &self,
        name: &str,
        actor: &ActorRef<A>,
    ) -> Result<Exposure<A>, RemoteSetupError> {
        exposed::expose(&self.inner, name, actor, exposed::LocalName::Register)
    }

    /// A table of accepted message types for many actors of type `A`, built once:
    /// list them with [`Acceptance::accept`], then expose each actor with
    /// [`RemoteNode::expose_accepting`]. For many short-lived actors of one type (one
    /// per identity, say), cheaper than an [`Exposure`] each.
    pub fn acceptance<A: Actor>(&self) -> Acceptance<A> {
        Acceptance::new(&self.inner)
    }

    /// [`RemoteNode::expose`] with the message types of `acceptance` (shared, not
    /// copied).
    pub fn expose_accepting<A: Actor>(
        &self,
        name: &str,
        actor: &ActorRef<A>,
        acceptance: &Acceptance<A>,
    ) -> Result<(), RemoteSetupError> {
        exposed::expose(&self.inner, name, actor, exposed::LocalName::Register)?.share(acceptance);
        Ok(())
    }

    /// [`RemoteNode::expose_accepting`] for the network only: the name is not also
    /// registered in the local actor system, so [`RemoteRef::resolve`] on this node
    /// gives a ref through the transport rather than the local actor. For many
    /// short-lived actors that this process reaches by other means (granary-virtual's
    /// activations, found in its own table), which then cost no name-registry entry.
    pub fn expose_accepting_remote_only<A: Actor>(
        &self,
        name: &str,
        actor: &ActorRef<A>,
        acceptance: &Acceptance<A>,
    ) -> Result<(), RemoteSetupError> {
        exposed::expose(&self.inner, name, actor, exposed::LocalName::Skip)?.share(acceptance);
        Ok(())
    }

    /// Serves every name that starts with `prefix` and has no actor exposed under it
    /// exactly, through `door` (one endpoint for a whole family of actors, such as
    /// granary-virtual's activations of one kind: no table entry, credits or watchers
    /// per actor). A frame for such a name is decoded as for an exposed actor and
    /// handed to [`Door::deliver`] with the rest of the name; a name under several
    /// doors goes to the one with the longest prefix. Names on the wire are the same
    /// as for exposed actors, so callers cannot tell the difference.
    ///
    /// The door checks the message types itself (each delivery carries the decoded
    /// message). Its names share `TransportConfig::inbound_capacity` credits.
    /// `Err(NameTaken)` if a door has this prefix already.
    pub fn expose_door(&self, prefix: &str, door: Arc<dyn Door>) -> Result<(), RemoteSetupError> {
        let capacity = self.transport().config().inbound_capacity;
        let node = Arc::downgrade(&self.inner);
        let entry = Arc::new(DoorEntry::new(node, prefix, door, capacity));
        if self.inner.doors.write().add(entry) {
            Ok(())
        } else {
            Err(RemoteSetupError::NameTaken(prefix.to_owned()))
        }
    }

    /// How many actors are exposed here under an exact name (with
    /// [`RemoteNode::expose`] and its variants; names served by a door do not count).
    pub fn exposed_count(&self) -> usize {
        self.inner.exposed.read().len()
    }

    /// The prefixes of the doors open here ([`RemoteNode::expose_door`]), longest
    /// first.
    pub fn door_prefixes(&self) -> Vec<String> {
        self.inner.doors.read().prefixes()
    }

    /// Messages from the wire that wait for the actor exposed as `name` (queued in its
    /// mailbox, or asks being served): at most `TransportConfig::inbound_capacity`
    /// (`docs/wire.md`, "Flow control"). For a name served by a door, those of all
    /// the door's names together (they share its credits). `None` when nothing is
    /// exposed under `name` and no door serves it.
    pub fn inbound_backlog(&self, name: &str) -> Option<usize> {
        if let Some(exposed) = self.inner.exposed.read().get(name) {
            return Some(exposed.backlog());
        }
        self.inner.doors.read().find(name).map(|d| d.backlog())
    }

    /// A serializable ref to the actor exposed here under `name`.
    pub fn remote_ref_to<A: Actor>(&self, name: &str) -> RemoteRef<A> {
        RemoteRef::new(self.local_addr(), name)
    }

    /// Forge a typed ref to the actor exposed under `name` on the node at `addr`.
    pub fn remote_ref<A: Actor>(&self, addr: SocketAddr, name: &str) -> ActorRef<A> {
        ActorRef::from_remote(self.remote_target(addr, name))
    }

    /// Forge a typed ref to the actor exposed under `name` on the node at `host`,
    /// reached through the node at `via`: frames go to `via`, which relays them to
    /// `host` and the replies back (`docs/wire.md`, "Dial-out peers"). For a dial-out
    /// client that keeps connections to a few gateways instead of every host. The ref's
    /// id is the one [`RemoteNode::remote_ref`] gives the same actor; `stop`, `watch`
    /// and `unwatch` are not relayed (the gateway knows no actor by the relayed name).
    pub fn remote_ref_via<A: Actor>(
        &self,
        via: SocketAddr,
        host: SocketAddr,
        name: &str,
    ) -> ActorRef<A> {
        ActorRef::from_remote(self.remote_target_via(via, host, name))
    }

    /// The actor exposed under `name` at `addr` with its type erased: what
    /// [`RemoteNode::remote_ref`] wraps. For refs typed by something other than the
    /// actor type ([`ContractActorRef`], granary-virtual's contract refs); send to it
    /// with `granary_core::ask_target` and `granary_core::tell_target`.
    pub fn remote_target(&self, addr: SocketAddr, name: &str) -> Arc<dyn RemoteTarget> {
        Arc::new(RemoteActor::new(self.inner.clone(), addr, name))
    }

    /// [`RemoteNode::remote_target`] through the gateway `via`, as
    /// [`RemoteNode::remote_ref_via`].
    pub fn remote_target_via(
        &self,
        via: SocketAddr,
        host: SocketAddr,
        name: &str,
    ) -> Arc<dyn RemoteTarget> {
        if via == host {
            return self.remote_target(host, name);
        }
        Arc::new(RemoteActor::relayed(self.inner.clone(), via, host, name))
    }

    /// Forge a ref to the actor exposed under `name` on the node at `addr`, typed by the
    /// contract `C` it serves: the caller needs the contract's crate, not the actor's
    /// (see [`ContractActorRef`]).
    pub fn contract_ref<C: Contract>(&self, addr: SocketAddr, name: &str) -> ContractActorRef<C> {
        ContractActorRef::new(self.remote_target(addr, name), addr, name)
    }

    /// Make `actor` reachable from other nodes under `name`, accepting every message of
    /// the contract `C` (and no other). Compiles only when `A` has a handler for each
    /// of them (`C: ServedBy<A>`). `Err` if a message or reply type is not registered
    /// for the wire or the name is taken; nothing is exposed then.
    pub fn expose_contract<C: ServedBy<A>, A: Actor>(
        &self,
        name: &str,
        actor: &ActorRef<A>,
    ) -> Result<(), RemoteSetupError> {
        let acceptance = C::accept_messages(self.acceptance())?;
        self.expose_accepting(name, actor, &acceptance)
    }

    /// Answers every ask this node relays to `host` (for a client, see
    /// [`RemoteNode::remote_ref_via`]) with `RemoteError::Unreachable` now, as it does
    /// by itself once the transport declares `host` unreachable; returns how many.
    ///
    /// For the owner of a failure detector that decides sooner than the transport's
    /// heartbeat timeout (a cluster member that saw `host` go Down): a relayed ask to a
    /// host that is paused or cut off otherwise waits for that timeout, although its
    /// client would resend it elsewhere at once. Like any `Unreachable`, the host may
    /// have handled the ask; a later reply from it is dropped.
    ///
    /// Asks and tells relayed to `host` later are not sent on either: an ask is
    /// answered `Unreachable` at once, a tell dropped, until
    /// [`RemoteNode::relay_to_again`] says the host is back (a cluster's Down is final
    /// for that life of the node; it comes back by joining again).
    pub fn fail_relayed_to(&self, host: SocketAddr) -> usize {
        relay::host_down(&self.inner, host)
    }

    /// Relays to `host` again after [`RemoteNode::fail_relayed_to`]: for the owner of
    /// the failure detector once `host` is a member again (it rejoined, or its row left
    /// the view). A no-op for a host that was never failed.
    pub fn relay_to_again(&self, host: SocketAddr) {
        relay::host_back(&self.inner, host);
    }

    /// Remote asks sent from this node still waiting for their reply. An ask leaves this
    /// count when it is answered, times out, fails, or its future is dropped.
    pub fn pending_asks(&self) -> usize {
        self.inner.pending.lock().len()
    }

    /// Close every connection and stop serving.
    pub fn shutdown(&self) {
        if let Some(task) = self.inner.events_task.lock().take() {
            task.abort();
        }
        self.transport().shutdown();
        let pending: Vec<PendingAsk> = self.inner.pending.lock().drain().map(|(_, p)| p).collect();
        for p in pending {
            p.fail(RemoteError::Other("remote node shut down".into()));
        }
    }
}

/// The id a remote ref carries: a non-zero node part from the address, a local part from
/// the name, so two forged refs to one actor are equal.
pub(crate) fn remote_actor_id(addr: SocketAddr, name: &str) -> ActorId {
    ActorId::new(type_tag(&addr.to_string()) | 1, type_tag(name))
}
