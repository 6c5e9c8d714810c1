//! The cluster handle and the task that runs one node's protocol.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::event::{ClusterEvent, EventHub};
use crate::membership::{Member, MemberStatus, Reachability};
use crate::message::{ClusterMessage, Envelope};
use crate::node::{NodeCore, Notice};
use crate::node_id::NodeId;
use crate::overlay::{OverlayDriver, Routes, TICK as OVERLAY_TICK};
use crate::provider::{MembershipProvider, SeedsProvider};
use crate::ring::HashRing;
use crate::transport::remote::RemoteClusterTransport;
use crate::transport::tcp::{TcpClusterTransport, TransportConfig};
use crate::transport::ClusterTransport;
use granary_remote::RemoteNode;

/// Work to do before a leaving node exits, given the ring without it (so the hook can
/// find the new owners of its ranges).
pub type HandoffHook = Arc<dyn Fn(Arc<HashRing>) -> BoxFuture<'static, ()> + Send + Sync>;

/// A `join(addr)` waiting for `addr` to accept, with its deadline.
type PendingJoin = (SocketAddr, Instant, Reply);
type Reply = oneshot::Sender<Result<(), ClusterError>>;

enum Command {
    Join(SocketAddr, oneshot::Sender<Result<(), ClusterError>>),
    Leave(oneshot::Sender<Result<(), ClusterError>>),
    Metadata(String, Option<String>),
    Stop,
}

struct Shared {
    hub: Arc<Mutex<EventHub>>,
    /// The hub's current ring, read without its lock.
    ring: Arc<ArcSwap<HashRing>>,
    handoff: Mutex<Option<HandoffHook>>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
    running: watch::Receiver<bool>,
    /// The granary-remote node the cluster rides on, for [`Cluster::forward`].
    pub(crate) remote: Option<RemoteNode>,
    /// The overlay's connections as of its last step (`None`: the full mesh).
    overlay_links: Mutex<Option<Vec<SocketAddr>>>,
    /// The overlay's next hops (`None`: the full mesh), for [`Cluster::forward`].
    routes: Option<Arc<Routes>>,
}

/// A running cluster node. Clones share the node; dropping every clone stops it the way
/// [`Cluster::stop`] does (no goodbye), so call [`Cluster::leave`] for a graceful exit.
///
/// ```no_run
/// # // no_run: shows the calls; the tests run the same flow over the in-memory transport.
/// use granary_cluster::{Cluster, ClusterConfig, ClusterEvent};
/// use granary_cluster::transport::memory::MemoryNetwork;
/// # async fn demo() -> Result<(), granary_cluster::ClusterError> {
/// let net = MemoryNetwork::new(1);
/// let seed = "127.0.0.1:7000".parse().unwrap();
/// let first = Cluster::start_with_seeds(ClusterConfig::default(), net.bind(seed)?, vec![]).await?;
/// let second = Cluster::start_with_seeds(
///     ClusterConfig::default(),
///     net.bind("127.0.0.1:7001".parse().unwrap())?,
///     vec![seed],
/// )
/// .await?;
/// let mut events = first.subscribe();
/// if let Some(ClusterEvent::Snapshot(s)) = events.recv().await {
///     println!("{} members", s.members.len());
/// }
/// second.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

impl Cluster {
    /// Starts a node that joins through `seeds` (an empty list forms a new cluster).
    pub async fn start_with_seeds<T: ClusterTransport>(
        config: ClusterConfig,
        transport: T,
        seeds: Vec<SocketAddr>,
    ) -> Result<Self, ClusterError> {
        Self::start(config, transport, Arc::new(SeedsProvider::new(seeds))).await
    }

    /// Starts a node on granary-remote's TCP transport (listening on
    /// `transport.listen`, cluster name and secret checked by its handshake) that joins
    /// through `seeds`. To read traffic counters or share the port with application
    /// traffic, bind a [`TcpClusterTransport`] yourself and call [`Cluster::start`].
    pub async fn start_tcp(
        config: ClusterConfig,
        transport: TransportConfig,
        seeds: Vec<SocketAddr>,
    ) -> Result<Self, ClusterError> {
        let transport = TcpClusterTransport::bind(transport).await?;
        Self::start_with_seeds(config, transport, seeds).await
    }

    /// Starts a node on a granary-remote [`RemoteNode`]: the cluster shares the node's
    /// listening port and authenticated connections (membership traffic on its control
    /// channel), joins through `seeds` (an empty list forms a new cluster), and can
    /// [`forward`](Cluster::forward) messages to actors exposed on other members. Use
    /// [`RemoteClusterTransport`] with [`Cluster::start`] for another membership provider.
    ///
    /// ```no_run
    /// // no_run: opens sockets; tests/remote_transport.rs runs the same flow.
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use granary_cluster::{Cluster, ClusterConfig};
    /// use granary_core::ActorSystem;
    /// use granary_remote::{RemoteNode, TransportConfig};
    ///
    /// let config = TransportConfig::new("my-cluster", b"secret".to_vec());
    /// let a = RemoteNode::start(ActorSystem::new(), config.clone()).await?;
    /// let b = RemoteNode::start(ActorSystem::new(), config).await?;
    /// let first = Cluster::start_on_remote(ClusterConfig::default(), &a, vec![]).await?;
    /// let second =
    ///     Cluster::start_on_remote(ClusterConfig::default(), &b, vec![a.local_addr()]).await?;
    /// assert_eq!(second.up_members().len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn start_on_remote(
        config: ClusterConfig,
        node: &RemoteNode,
        seeds: Vec<SocketAddr>,
    ) -> Result<Self, ClusterError> {
        let transport = RemoteClusterTransport::start(node)?;
        Self::start_with_seeds(config, transport, seeds).await
    }

    /// Starts a node: asks `provider` whom to contact, joins (or forms a cluster, or
    /// fails, per [`crate::JoinConfig`]), registers with the provider and returns once
    /// the node is Up.
    pub async fn start<T: ClusterTransport>(
        config: ClusterConfig,
        transport: T,
        provider: Arc<dyn MembershipProvider>,
    ) -> Result<Self, ClusterError> {
        let contacts = discover(&config, provider.as_ref()).await?;
        let addr = transport.local_addr();
        let remote = transport.remote_node();
        let incarnation = config.incarnation.unwrap_or_else(wall_clock_millis);
        let me = NodeId::new(addr, incarnation);
        let hub = Arc::new(Mutex::new(EventHub::new(me)));
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (running_tx, running) = watch::channel(true);
        let (ready_tx, ready_rx) = oneshot::channel();
        let seed = config
            .rng_seed
            .unwrap_or_else(|| xxhash_rust::xxh3::xxh3_64(addr.to_string().as_bytes()));
        let mut overlay = OverlayDriver::new(&config.overlay, me, seed, now(), remote.clone());
        if let Some(overlay) = &mut overlay {
            overlay.join(&contacts, now());
        }
        let ring = hub.lock().shared_ring();
        let shared = Arc::new(Shared {
            hub: hub.clone(),
            ring,
            handoff: Mutex::new(None),
            commands,
            task: Mutex::new(None),
            running,
            remote,
            overlay_links: Mutex::new(overlay.as_ref().map(|o| o.connections())),
            routes: overlay.as_ref().map(|o| o.routes()),
        });
        let mut core = NodeCore::new(config, me, hub, now());
        core.start_join(now(), contacts);
        let registration_provider = provider.clone();
        let runner = Runner {
            core,
            overlay,
            transport,
            commands: command_rx,
            ready: Some(ready_tx),
            shared: Arc::downgrade(&shared),
            provider,
            running: running_tx,
        };
        let task = tokio::spawn(runner.run());
        *shared.task.lock() = Some(task);
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ClusterError::Stopped),
        }
        let cluster = Self { shared };
        // Registered before `start` returns, so the next node to start can find this one.
        if let Some(own) = cluster.own_row() {
            registration_provider.register(&own).await?;
        }
        Ok(cluster)
    }

    /// The members this node's overlay keeps connections to (its active view on
    /// peer-to-peer, the servers of a client, ...); `None` on the full mesh, where any
    /// member may be dialled.
    pub fn overlay_connections(&self) -> Option<Vec<SocketAddr>> {
        self.shared.overlay_links.lock().clone()
    }

    /// The member a message for `node` goes through, when the overlay routes it
    /// (`None`: straight to `node`, always so on the full mesh).
    pub(crate) fn overlay_next_hop(&self, node: SocketAddr) -> Option<SocketAddr> {
        use granary_remote::Router;
        let routes = self.shared.routes.as_ref()?;
        routes.next_hop(node).filter(|hop| *hop != node)
    }

    /// This node's current id (the incarnation changes after a rejoin).
    pub fn local_id(&self) -> NodeId {
        self.shared.hub.lock().local()
    }

    fn own_row(&self) -> Option<Member> {
        self.shared.hub.lock().local_member()
    }

    /// This node's own status: `Up` while it is a full member; `Down` after it was
    /// declared failed or downed itself on a partition's minority side (until it has
    /// rejoined, when the new incarnation is `Up` again). The virtual-actor layer stops
    /// hosting whenever this is not `Up` or `Leaving`.
    pub fn local_status(&self) -> Option<MemberStatus> {
        self.own_row().map(|m| m.status)
    }

    /// Every known member except Removed tombstones (Down rows included, with status).
    pub fn members(&self) -> Vec<Member> {
        self.shared
            .hub
            .lock()
            .members()
            .into_iter()
            .filter(|m| m.status != MemberStatus::Removed)
            .collect()
    }

    /// The live members every member is known to have seen: a member admitted on one
    /// side of a partition after it formed is not among them. Keep-majority counts
    /// these, and a quorum that must intersect the other side's (the virtual runtime's
    /// host lease) should count only their votes. Empty until this node has seen the
    /// members' published views ([`crate::SEEN_METADATA_KEY`]).
    pub fn agreed_members(&self) -> BTreeSet<NodeId> {
        self.shared.hub.lock().agreed()
    }

    /// The unreachability observations this node knows of: which live member suspects
    /// which (each member's suspicions, spread by gossip). Empty while every member
    /// reaches every member it watches.
    ///
    /// ```no_run
    /// # async fn demo(cluster: granary_cluster::Cluster) {
    /// for (observer, subject) in cluster.reachability().edges() {
    ///     println!("{observer} cannot reach {subject}");
    /// }
    /// # }
    /// ```
    pub fn reachability(&self) -> Reachability {
        Reachability::from_members(&self.shared.hub.lock().members())
    }

    /// Every row of the table, Removed tombstones included.
    pub(crate) fn members_with_tombstones(&self) -> Vec<Member> {
        self.shared.hub.lock().members()
    }

    /// The granary-remote node this cluster rides on, when it was started on one
    /// ([`Cluster::start_on_remote`] or a [`RemoteClusterTransport`]).
    pub fn remote_node(&self) -> Option<RemoteNode> {
        self.shared.remote.clone()
    }

    /// The members that are Up.
    pub fn up_members(&self) -> Vec<Member> {
        self.members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Up)
            .collect()
    }

    /// The current ring (Up members).
    pub fn ring(&self) -> Arc<HashRing> {
        self.shared.ring.load_full()
    }

    /// Runs `f` on the current ring without taking a reference to it: cheaper than
    /// [`Cluster::ring`] for a lookup on a hot path (no shared reference count touched,
    /// so two cores asking at once do not contend).
    ///
    /// ```no_run
    /// # async fn demo(cluster: granary_cluster::Cluster) {
    /// use granary_cluster::ring::key_position;
    /// let position = key_position(b"user/42");
    /// let owner = cluster.with_ring(|ring| ring.owner_of_position(position).map(|n| n.addr));
    /// # }
    /// ```
    pub fn with_ring<R>(&self, f: impl FnOnce(&HashRing) -> R) -> R {
        f(&self.shared.ring.load())
    }

    /// Subscribes to cluster events: first a [`ClusterEvent::Snapshot`], then every
    /// change in order.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<ClusterEvent> {
        self.shared.hub.lock().subscribe()
    }

    /// True while the node takes part in the cluster (or is rejoining).
    pub fn is_running(&self) -> bool {
        *self.shared.running.borrow()
    }

    /// Asks the node at `addr` to let this node in; merges the two clusters if this node
    /// is already a member elsewhere. Resolves when `addr` accepted.
    pub async fn join(&self, addr: SocketAddr) -> Result<(), ClusterError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Join(addr, tx))
            .map_err(|_| ClusterError::Stopped)?;
        rx.await.map_err(|_| ClusterError::Stopped)?
    }

    /// Sets (`Some`) or removes (`None`) a key of this node's application metadata. The
    /// change spreads by gossip; every subscriber sees [`crate::MemberEvent::Updated`].
    /// [`crate::SEEN_METADATA_KEY`] and [`crate::ADMITTED_BY_METADATA_KEY`] are the
    /// cluster's own ([`ClusterError::ReservedMetadataKey`]).
    pub fn set_metadata(
        &self,
        key: impl Into<String>,
        value: Option<String>,
    ) -> Result<(), ClusterError> {
        let key = key.into();
        if crate::node::is_reserved_key(&key) {
            return Err(ClusterError::ReservedMetadataKey(key));
        }
        self.shared
            .commands
            .send(Command::Metadata(key, value))
            .map_err(|_| ClusterError::Stopped)
    }

    /// Registers the hand-off hook run by [`Cluster::leave`].
    pub fn set_handoff_hook(&self, hook: HandoffHook) {
        *self.shared.handoff.lock() = Some(hook);
    }

    /// Leaves gracefully: Leaving (off the ring), the hand-off hook, Exiting, Removed;
    /// then the node stops.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Leave(tx))
            .map_err(|_| ClusterError::Stopped)?;
        rx.await.map_err(|_| ClusterError::Stopped)??;
        self.wait_stopped().await;
        Ok(())
    }

    /// Stops the node at once, without telling anyone (as a crash would), and waits for
    /// its task to end so its transport is closed.
    pub async fn stop(&self) {
        let _ = self.shared.commands.send(Command::Stop);
        self.wait_stopped().await;
    }

    async fn wait_stopped(&self) {
        let task = self.shared.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct Runner<T> {
    core: NodeCore,
    /// The configured overlay (`None`: the full mesh).
    overlay: Option<OverlayDriver>,
    transport: T,
    commands: mpsc::UnboundedReceiver<Command>,
    ready: Option<oneshot::Sender<Result<(), ClusterError>>>,
    shared: std::sync::Weak<Shared>,
    provider: Arc<dyn MembershipProvider>,
    running: watch::Sender<bool>,
}

impl<T: ClusterTransport> Runner<T> {
    async fn run(mut self) {
        let cfg = self.core.config().clone();
        let mut gossip = tokio::time::interval(cfg.gossip_interval);
        gossip.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(cfg.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut overlay_tick = tokio::time::interval(OVERLAY_TICK);
        overlay_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut joins: Vec<PendingJoin> = Vec::new();
        let mut leave_reply: Option<oneshot::Sender<Result<(), ClusterError>>> = None;
        let mut handoff: Option<JoinHandle<()>> = None;
        let mut registration: Option<JoinHandle<()>> = None;
        self.flush(&mut joins, &mut leave_reply, &mut registration);
        while !self.core.is_stopped() {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None | Some(Command::Stop) => break,
                    Some(Command::Join(addr, reply)) => {
                        self.core.join_via(now(), addr);
                        joins.push((addr, Instant::now() + cfg.join.timeout, reply));
                    }
                    Some(Command::Metadata(key, value)) => self.core.set_metadata(key, value),
                    Some(Command::Leave(reply)) => {
                        if self.core.begin_leave() {
                            let hook = self.shared.upgrade().and_then(|s| s.handoff.lock().clone());
                            let ring = self.core.ring();
                            handoff = Some(tokio::spawn(async move {
                                if let Some(hook) = hook {
                                    hook(ring).await;
                                }
                            }));
                            leave_reply = Some(reply);
                        } else {
                            let _ = reply.send(Err(ClusterError::Stopped));
                        }
                    }
                },
                envelope = self.transport.recv() => match envelope {
                    Some(Envelope { from, message: ClusterMessage::Overlay { frame } }) => {
                        if let Some(overlay) = &mut self.overlay {
                            overlay.on_frame(from, &frame, now());
                        }
                    }
                    Some(envelope) => self.core.on_message(now(), envelope),
                    None => break,
                },
                _ = overlay_tick.tick(), if self.overlay.is_some() => {
                    if let Some(overlay) = &mut self.overlay {
                        overlay.tick(now());
                        overlay.maintain(self.core.table(), now());
                    }
                }
                _ = gossip.tick() => self.core.on_gossip_tick(now()),
                _ = heartbeat.tick() => self.core.on_heartbeat_tick(now()),
                _ = async { handoff.as_mut().expect("guarded").await }, if handoff.is_some() => {
                    handoff = None;
                    self.core.finish_leave();
                }
            }
            self.flush(&mut joins, &mut leave_reply, &mut registration);
            let deadline = Instant::now();
            joins.retain_mut(|(addr, until, _)| {
                if *until <= deadline {
                    tracing::debug!(%addr, "join request timed out");
                    false
                } else {
                    true
                }
            });
        }
        if let Some(overlay) = &self.overlay {
            overlay.close();
        }
        // Whatever is still waiting learns that the node stopped.
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(ClusterError::Stopped));
        }
        if let Some(reply) = leave_reply.take() {
            let _ = reply.send(Ok(()));
        }
        if let Some(registration) = registration {
            registration.abort();
        }
        let _ = self.running.send(false);
        let last = self.shared.upgrade().and_then(|s| {
            s.hub
                .lock()
                .members()
                .into_iter()
                .find(|m| m.id == self.core.me())
        });
        if let Some(member) = last {
            if let Err(error) = self.provider.unregister(&member).await {
                tracing::warn!(%error, "membership provider unregister failed");
            }
        }
    }

    fn flush(
        &mut self,
        joins: &mut Vec<PendingJoin>,
        leave_reply: &mut Option<oneshot::Sender<Result<(), ClusterError>>>,
        registration: &mut Option<JoinHandle<()>>,
    ) {
        let from = self.core.me();
        if let Some(overlay) = &mut self.overlay {
            let step = overlay.step(from, self.core.table(), now());
            if !step.rows.is_empty() {
                self.core.on_overlay_rows(now(), step.rows);
            }
            overlay.table_changed(self.core.table());
            let links = overlay.connections();
            if let Some(shared) = self.shared.upgrade() {
                let mut known = shared.overlay_links.lock();
                if known.as_ref() != Some(&links) {
                    *known = Some(links.clone());
                }
            }
            self.core.set_links(Some(links));
            for (to, message) in step.sends {
                if let Err(error) = self.transport.send(to, Envelope { from, message }) {
                    tracing::trace!(%error, %to, "overlay message not sent");
                }
            }
        }
        for (to, message) in self.core.take_outgoing() {
            if let Err(error) = self.transport.send(to, Envelope { from, message }) {
                tracing::trace!(%error, %to, "cluster message not sent");
            }
        }
        for notice in self.core.take_notices() {
            match notice {
                Notice::Joined => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    if registration.is_none() {
                        *registration = Some(self.spawn_registration());
                    }
                }
                Notice::NoSeedAnswered => {
                    if let Some(ready) = self.ready.take() {
                        let timeout = self.core.config().join.timeout;
                        let _ = ready.send(Err(ClusterError::NoSeedAnswered(timeout)));
                    }
                }
                Notice::AcceptedBy(addr) => {
                    let mut i = 0;
                    while i < joins.len() {
                        if joins[i].0 == addr {
                            let (_, _, reply) = joins.swap_remove(i);
                            let _ = reply.send(Ok(()));
                        } else {
                            i += 1;
                        }
                    }
                }
                Notice::Stopped => {
                    if let Some(reply) = leave_reply.take() {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        }
    }

    /// Registers the node with the provider now and at every refresh interval.
    fn spawn_registration(&self) -> JoinHandle<()> {
        let provider = self.provider.clone();
        let shared = self.shared.clone();
        let every = self.core.config().provider_refresh_interval;
        tokio::spawn(async move {
            // `start` registered once already; refresh from one interval on.
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let own = shared.hub.lock().local_member();
                drop(shared);
                if let Some(own) = own {
                    if let Err(error) = provider.register(&own).await {
                        tracing::warn!(%error, "membership provider register failed");
                    }
                }
            }
        })
    }
}

/// Asks the provider for contacts, retrying until the join timeout.
async fn discover(
    config: &ClusterConfig,
    provider: &dyn MembershipProvider,
) -> Result<Vec<SocketAddr>, ClusterError> {
    let deadline = Instant::now() + config.join.timeout;
    loop {
        match provider.discover().await {
            Ok(contacts) => return Ok(contacts),
            Err(error) if Instant::now() + config.join.retry_interval < deadline => {
                tracing::warn!(%error, "membership provider discovery failed; retrying");
                tokio::time::sleep(config.join.retry_interval).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn now() -> StdInstant {
    Instant::now().into_std()
}

fn wall_clock_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}
