//! Replication of named CRDTs across the members of a cluster (seed 003 §2.9).
//!
//! A [`Replicator`] runs on every node, on the node's [`RemoteNode`] (its port and
//! authenticated connections) and [`Cluster`] (who the peers are). By default every
//! member holds every named CRDT; [`Replicator::crdt_with_replicas`] (or
//! [`ReplicatorConfig::replicas`]) puts one on the first `n` members of the ring's
//! preference list for its name instead. [`Replicator::crdt`] opens one by name and type
//! and returns a typed [`CrdtHandle`]; updates apply locally at once, and their deltas
//! spread in the background:
//!
//! - every `delta_interval` the local changes of each CRDT since the last round are
//!   numbered (one number per CRDT and round) and kept in a bounded buffer;
//! - each peer (each holder, for a CRDT on a subset) that has not acknowledged our
//!   latest number gets one frame with, per CRDT, the join of the buffered deltas after
//!   its acknowledged number — or the full state when the buffer no longer reaches back
//!   that far (a new peer, or one that was away too long);
//! - the peer merges, answers with the numbers it now holds, and we push again only
//!   after that answer or after `retransmit_after` without one (doubling while the peer
//!   stays silent), so a dropped push or answer costs one retransmission. The
//!   retransmission also goes through one peer that answers, which relays it (and the
//!   answer back): a link cut while a third peer reaches both ends costs one
//!   retransmission delay, not an anti-entropy round.
//!
//! Merge is idempotent, so a retransmitted or relayed delta does no harm; and since each
//! node sends its own changes to every peer, a change reaches everyone its author can
//! reach directly or through one relay. Anti-entropy covers an author that crashed half
//! way: every `anti_entropy_interval` a node sends one peer digests of its quiet CRDTs,
//! and where they differ the two exchange full states. Frames carry the sender's
//! session (its node's incarnation): a restarted peer starts from zero and is sent full
//! states. When the holders of a CRDT on a subset change, nodes that have its state hand
//! it to the new holders, and a node that stops holding it drops it once handed over.
//!
//! Reads and writes take a [`Consistency`]: `Local`, `Majority` or `All`, the latter two
//! with a timeout and [`ReplicatorError::Timeout`] when it runs out (a write stays
//! applied locally and keeps spreading, as in Akka Distributed Data). For a CRDT on a
//! subset they count holders, and a non-holder's reads and updates go to the holders.

mod config;
mod entry;
mod handle;
mod peer;
mod placement;
mod stats;
mod wire;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use granary_cluster::{Cluster, MemberStatus};
use granary_core::ActorRef;
use granary_remote::wire::FrameHeader;
use granary_remote::{Registry, RemoteNode, SendOptions};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

pub use config::{Consistency, Dissemination, ReplicatorConfig};
pub use entry::Replicated;
pub use handle::CrdtHandle;
pub use stats::ReplicatorStats;

use crate::error::ReplicatorError;
use crate::replica::ReplicaId;
use entry::{digest, Entry, ErasedEntry};
use peer::Peer;
use placement::Placement;
use stats::{bump, Counters};
use wire::{CrdtFrame, FrameBody, Inbox, Payload, Update, INBOX};

/// Replicates named CRDTs to the members of a cluster (every member, or a subset by ring).
///
/// ```no_run
/// // no_run: opens sockets; tests/replication_converges.rs runs the same flow.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use granary_cluster::{Cluster, ClusterConfig};
/// use granary_core::ActorSystem;
/// use granary_crdt::{Consistency, ORSet, Replicator, ReplicatorConfig};
/// use granary_remote::{RemoteNode, TransportConfig};
///
/// let node = RemoteNode::start(ActorSystem::new(), TransportConfig::new("c", "s")).await?;
/// let cluster = Cluster::start_on_remote(ClusterConfig::default(), &node, vec![]).await?;
/// let replicator = Replicator::start(&node, &cluster, ReplicatorConfig::default())?;
/// let users = replicator.crdt::<ORSet<String>>("online-users")?;
/// users.update(|set, me| set.add(me, "alice".to_string()))?;
/// let mut changes = users.subscribe()?;
/// changes.changed().await?;
/// let everyone = users.read(Consistency::Local).await?;
/// # let _ = everyone; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Replicator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("addr", &self.shared.me)
            .field("replica", &self.shared.replica)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    me: SocketAddr,
    session: u64,
    replica: ReplicaId,
    config: ReplicatorConfig,
    node: RemoteNode,
    cluster: Cluster,
    send_options: SendOptions,
    core: Mutex<Core>,
    counters: Counters,
    /// Bumped whenever an acknowledgement arrives (writes at Majority/All wait on it).
    acks: watch::Sender<u64>,
    inbox: ActorRef<Inbox>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Everything behind the one lock.
#[derive(Default)]
struct Core {
    entries: HashMap<String, Box<dyn ErasedEntry>>,
    /// Payloads for names not opened on this node yet (applied when opened).
    unopened: HashMap<String, Vec<Payload>>,
    peers: HashMap<SocketAddr, Peer>,
    /// CRDTs held by a subset of the members (the others are held by every member).
    placements: HashMap<String, Placement>,
    reads: HashMap<u64, PendingRead>,
    next_read: u64,
    /// Round-robin position of the anti-entropy rounds.
    next_digest_peer: usize,
    /// Round-robin position among the peers that relay pushes to unreachable ones.
    next_relay: usize,
    stopped: bool,
}

/// True when `peer` holds every change of `entry` made here (nothing waiting, nothing
/// unanswered), so a digest difference is not just our own changes on their way.
fn settled(entry: &dyn ErasedEntry, peer: &Peer, key: &str) -> bool {
    !entry.has_unsealed() && peer.acked(key) >= entry.seq() && !peer.in_flight.contains_key(key)
}

struct PendingRead {
    key: String,
    needed: usize,
    /// This node holds the CRDT, so it counts as one of the replicas read.
    counts_self: bool,
    answered: BTreeSet<SocketAddr>,
    /// A node that does not hold the CRDT collects the holders' states here instead of
    /// merging them into its own entry.
    states: Option<Vec<Vec<u8>>>,
    done: Option<oneshot::Sender<()>>,
}

/// Who holds one CRDT, as this node sees it now.
pub(crate) struct Replicas {
    /// The peers that hold it.
    pub(crate) peers: Vec<SocketAddr>,
    /// Whether this node holds it.
    pub(crate) here: bool,
}

impl Replicas {
    /// How many replicas `consistency` needs, and whether this node is one of them.
    pub(crate) fn needed(&self, consistency: Consistency) -> usize {
        let total = self.peers.len() + usize::from(self.here);
        consistency.needed(total).max(1)
    }
}

impl Replicator {
    /// Starts replicating on `node`, with the peers `cluster` lists (the cluster should
    /// run on the same node: `Cluster::start_on_remote`). Exposes the replicator's inbox
    /// on the node, so at most one replicator runs per node. Must be called inside a
    /// tokio runtime.
    pub fn start(
        node: &RemoteNode,
        cluster: &Cluster,
        config: ReplicatorConfig,
    ) -> Result<Self, ReplicatorError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = node.system().spawn(Inbox { tx });
        if let Err(e) = node
            .expose(INBOX, &inbox)
            .and_then(|exposure| exposure.accept::<CrdtFrame>())
        {
            inbox.stop();
            return Err(ReplicatorError::Setup(e.to_string()));
        }
        let node_id = node.transport().node_id();
        let send_options = match &config.channel {
            Some(name) => SendOptions::channel(name),
            None => SendOptions::data(),
        };
        let shared = Arc::new(Shared {
            me: node.local_addr(),
            session: node_id.incarnation(),
            // The incarnation is unique per node start, so it names this writer.
            replica: ReplicaId::new(node_id.incarnation()),
            config,
            node: node.clone(),
            cluster: cluster.clone(),
            send_options,
            core: Mutex::new(Core::default()),
            counters: Counters::default(),
            acks: watch::channel(0).0,
            inbox,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(Arc::downgrade(&shared), rx));
        *shared.task.lock() = Some(task.abort_handle());
        Ok(Self { shared })
    }

    /// Opens the CRDT named `name` as a `C` (creating it empty if new here), with any
    /// state peers already sent for it merged in, held by as many members as
    /// [`ReplicatorConfig::replicas`] says.
    ///
    /// Fails with [`ReplicatorError::TypeMismatch`] if `name` is open with another type.
    pub fn crdt<C: Replicated>(&self, name: &str) -> Result<CrdtHandle<C>, ReplicatorError> {
        self.crdt_with_replicas(name, self.shared.config.replicas)
    }

    /// Opens the CRDT named `name` as [`crdt`](Self::crdt) does, held by `replicas`
    /// members: `None` every member, `Some(n)` the first `n` of the ring's preference
    /// list for `name` over the Up members. Every node must open a name with the same
    /// `replicas`; the first opening on a node decides.
    ///
    /// On a node outside the list the CRDT keeps no state: [`CrdtHandle::read`] asks the
    /// holders, [`CrdtHandle::update_with`] reads from them, applies the change and sends
    /// it to them (and [`CrdtHandle::update`] refuses with
    /// [`ReplicatorError::NotHolder`]). When the list changes, holders hand their full
    /// state to new holders, and a node that stops holding drops the state once every
    /// holder has acknowledged it.
    ///
    /// ```no_run
    /// // no_run: needs a running replicator; tests/subset_replication.rs runs the flow.
    /// # async fn demo(replicator: granary_crdt::Replicator) -> Result<(), granary_crdt::ReplicatorError> {
    /// use std::time::Duration;
    /// use granary_crdt::{Consistency, GCounter};
    /// let clicks = replicator.crdt_with_replicas::<GCounter>("clicks", Some(2))?;
    /// clicks
    ///     .update_with(Consistency::Local, |c, me| c.increment(me, 1))
    ///     .await?;
    /// let total = clicks.read(Consistency::All(Duration::from_secs(1))).await?;
    /// assert!(total >= 1);
    /// # Ok(()) }
    /// ```
    pub fn crdt_with_replicas<C: Replicated>(
        &self,
        name: &str,
        replicas: Option<usize>,
    ) -> Result<CrdtHandle<C>, ReplicatorError> {
        let mut core = self.shared.core.lock();
        if core.stopped {
            return Err(ReplicatorError::Stopped);
        }
        if let Some(entry) = core.entries.get_mut(name) {
            if !entry.as_any_mut().is::<Entry<C>>() {
                return Err(ReplicatorError::TypeMismatch {
                    name: name.to_owned(),
                    existing: entry.type_name(),
                    requested: std::any::type_name::<C>(),
                });
            }
        } else {
            let mut entry = Entry::<C>::new(self.shared.config.delta_buffer);
            for payload in core.unopened.remove(name).unwrap_or_default() {
                if let Err(error) = entry.apply(&payload) {
                    bump(&self.shared.counters.decode_errors, 1);
                    tracing::warn!(name, %error, "dropped a payload received before the CRDT was opened");
                }
            }
            core.entries.insert(name.to_owned(), Box::new(entry));
            if let Some(n) = replicas {
                core.placements.insert(name.to_owned(), Placement::new(n));
                self.shared.place(&mut core);
            }
        }
        Ok(CrdtHandle::new(self.shared.clone(), name.to_owned()))
    }

    /// This node's replica id (what its updates are tagged with).
    pub fn replica_id(&self) -> ReplicaId {
        self.shared.replica
    }

    /// What the replicator has sent and received so far.
    pub fn stats(&self) -> ReplicatorStats {
        self.shared.counters.snapshot()
    }

    /// Stops replicating: no more pushes or answers; handles fail with
    /// [`ReplicatorError::Stopped`]. The node and the cluster keep running.
    pub fn stop(&self) {
        self.shared.stop();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn stop(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
        self.inbox.stop();
        let mut core = self.core.lock();
        core.stopped = true;
        core.reads.clear();
    }

    /// Peers are the cluster's members other than this node, by address (a member that
    /// is Down is kept until the cluster prunes it: it may be on the other side of a
    /// partition and come back).
    fn refresh_peers(&self, core: &mut Core) {
        let listed: BTreeSet<SocketAddr> = self
            .cluster
            .members()
            .into_iter()
            .filter(|m| m.status != MemberStatus::Removed && m.id.addr != self.me)
            .map(|m| m.id.addr)
            .collect();
        core.peers.retain(|addr, _| listed.contains(addr));
        for addr in listed {
            core.peers.entry(addr).or_default();
        }
    }

    /// Recomputes the holders of the CRDTs replicated to a subset.
    fn place(&self, core: &mut Core) {
        if core.placements.is_empty() {
            return;
        }
        let ring = self.cluster.ring();
        let Core {
            entries,
            placements,
            ..
        } = core;
        for (key, placement) in placements.iter_mut() {
            let has_state = entries.get(key).is_some_and(|e| !e.is_blank());
            placement.refresh(key, &ring, self.me, has_state);
        }
    }

    /// Who holds `key` now: every peer and this node, or its placement's holders.
    fn replicas_of(&self, core: &mut Core, key: &str) -> Replicas {
        self.refresh_peers(core);
        self.place(core);
        match core.placements.get(key) {
            Some(placement) => Replicas {
                peers: placement
                    .holders
                    .iter()
                    .copied()
                    .filter(|addr| *addr != self.me)
                    .collect(),
                here: placement.holding,
            },
            None => Replicas {
                peers: core.peers.keys().copied().collect(),
                here: true,
            },
        }
    }

    /// Numbers the local changes and pushes to every peer that is behind. `forced`
    /// names a CRDT to push now even if a push of it is still unanswered.
    fn flush(&self, forced: Option<&str>) {
        let now = Instant::now();
        let full = self.config.dissemination == Dissemination::FullState;
        let mut out = Vec::new();
        {
            let mut core = self.core.lock();
            if core.stopped {
                return;
            }
            self.refresh_peers(&mut core);
            self.place(&mut core);
            let Core {
                entries,
                peers,
                placements,
                next_relay,
                ..
            } = &mut *core;
            for entry in entries.values_mut() {
                entry.seal();
            }
            // Peers that answer: they relay pushes to peers that do not.
            let mut helpers: Vec<SocketAddr> = peers
                .iter()
                .filter(|(_, p)| p.timeouts == 0 && p.session.is_some() && !p.relayed)
                .map(|(addr, _)| *addr)
                .collect();
            helpers.sort();
            for (addr, peer) in peers.iter_mut() {
                let mut updates = Vec::new();
                let mut timed_out = false;
                for (key, entry) in entries.iter() {
                    if placements.get(key).is_some_and(|p| !p.holds(addr)) {
                        continue;
                    }
                    let seq = entry.seq();
                    let acked = peer.acked(key);
                    if acked >= seq {
                        continue;
                    }
                    if let Some((_, at)) = peer.in_flight.get(key) {
                        let waited = now.saturating_duration_since(*at);
                        let patience = peer.retransmit_delay(self.config.retransmit_after);
                        if forced != Some(key.as_str()) && waited < patience {
                            continue;
                        }
                        timed_out |= waited >= patience;
                    }
                    match entry.outgoing(acked, full) {
                        Ok(Some(payload)) => {
                            updates.push(Update {
                                key: key.clone(),
                                first: acked.saturating_add(1),
                                last: seq,
                                payload,
                            });
                            peer.in_flight.insert(key.clone(), (seq, now));
                        }
                        Ok(None) => {}
                        Err(error) => tracing::warn!(key, %error, "CRDT not pushed"),
                    }
                }
                if timed_out {
                    peer.timeouts = peer.timeouts.saturating_add(1);
                }
                if updates.is_empty() {
                    continue;
                }
                // A push that went unanswered is sent again directly (the link may be
                // back) and through one peer that answers (it may reach `addr` when
                // we do not): a partial partition then costs one retransmission delay,
                // not an anti-entropy round.
                let relay = helpers.iter().filter(|h| *h != addr).count();
                if timed_out && relay > 0 {
                    *next_relay = next_relay.wrapping_add(1);
                    let helper = helpers
                        .iter()
                        .filter(|h| *h != addr)
                        .nth(*next_relay % relay)
                        .copied();
                    if let Some(helper) = helper {
                        out.push((
                            helper,
                            FrameBody::Relay {
                                to: *addr,
                                body: Box::new(FrameBody::Push(updates.clone())),
                            },
                        ));
                    }
                }
                out.push((*addr, FrameBody::Push(updates)));
            }
            self.hand_over(entries, peers, placements, now, &mut out);
        }
        for (addr, body) in out {
            self.send(addr, body);
        }
    }

    /// Sends owed full states to new holders (again after `retransmit_after` without an
    /// acknowledgement), and drops the state of CRDTs this node no longer holds once
    /// every holder has acknowledged it and all of this node's own changes.
    fn hand_over(
        &self,
        entries: &mut HashMap<String, Box<dyn ErasedEntry>>,
        peers: &HashMap<SocketAddr, Peer>,
        placements: &mut HashMap<String, Placement>,
        now: Instant,
        out: &mut Vec<(SocketAddr, FrameBody)>,
    ) {
        let mut owed: HashMap<SocketAddr, Vec<(String, Vec<u8>)>> = HashMap::new();
        for (key, placement) in placements.iter_mut() {
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            let mut state: Option<Vec<u8>> = None;
            for (addr, sent) in placement.handoff.iter_mut() {
                let waited = sent.map(|at| now.saturating_duration_since(at));
                if waited.is_some_and(|w| w < self.config.retransmit_after) {
                    continue;
                }
                if state.is_none() {
                    match entry.encode_state() {
                        Ok(bytes) => state = Some(bytes),
                        Err(error) => {
                            tracing::warn!(key, %error, "state not handed over");
                            break;
                        }
                    }
                }
                if let Some(bytes) = &state {
                    owed.entry(*addr)
                        .or_default()
                        .push((key.clone(), bytes.clone()));
                    *sent = Some(now);
                }
            }
            let handed_over = !placement.holding
                && placement.handoff.is_empty()
                && !entry.is_blank()
                && !entry.has_unsealed()
                && placement
                    .holders
                    .iter()
                    .all(|addr| peers.get(addr).is_some_and(|p| p.acked(key) >= entry.seq()));
            if handed_over {
                tracing::debug!(key, "not a holder any more: state dropped");
                entry.reset_state();
            }
        }
        out.extend(
            owed.into_iter()
                .map(|(addr, states)| (addr, FrameBody::Handoff(states))),
        );
    }

    /// One anti-entropy round: digests of the quiet, settled CRDTs to the next peer.
    fn anti_entropy(&self, quiet_for: Duration) {
        let now = Instant::now();
        let (to, digests) = {
            let mut core = self.core.lock();
            if core.stopped {
                return;
            }
            self.refresh_peers(&mut core);
            let mut addrs: Vec<SocketAddr> = core.peers.keys().copied().collect();
            if addrs.is_empty() {
                return;
            }
            addrs.sort();
            core.next_digest_peer = core.next_digest_peer.wrapping_add(1);
            let to = addrs[core.next_digest_peer % addrs.len()];
            let Some(peer) = core.peers.get(&to) else {
                return;
            };
            let placements = &core.placements;
            let digests: Vec<(String, u64)> = core
                .entries
                .iter()
                .filter(|(key, _)| {
                    placements
                        .get(*key)
                        .is_none_or(|p| p.holding && p.holds(&to))
                })
                .filter(|(key, entry)| {
                    settled(entry.as_ref(), peer, key)
                        && now.saturating_duration_since(entry.last_change()) >= quiet_for
                })
                .filter_map(|(key, entry)| {
                    let bytes = entry.encode_state().ok()?;
                    Some((key.clone(), digest(&bytes)))
                })
                .collect();
            (to, digests)
        };
        if !digests.is_empty() {
            self.send(to, FrameBody::Digest(digests));
        }
    }

    /// Handles one frame from a peer.
    fn on_frame(&self, frame: CrdtFrame) {
        bump(&self.counters.frames_received, 1);
        let CrdtFrame {
            from,
            session,
            via,
            body,
        } = frame;
        if let FrameBody::Relay { to, body } = body {
            // Relay once: never a relayed frame, never a relay inside a relay.
            if via.is_none() && !matches!(*body, FrameBody::Relay { .. }) {
                self.send_frame(
                    to,
                    CrdtFrame {
                        from,
                        session,
                        via: Some(self.me),
                        body: *body,
                    },
                );
            }
            return;
        }
        let mut replies = Vec::new();
        let mut acked = false;
        {
            let mut core = self.core.lock();
            if core.stopped {
                return;
            }
            let Core {
                entries,
                unopened,
                peers,
                placements,
                reads,
                ..
            } = &mut *core;
            let not_held = |key: &str| placements.get(key).is_some_and(|p| !p.holding);
            let peer = peers.entry(from).or_default();
            peer.heard(session);
            // Heard through a relay, the direct link may still be cut: the peer is not
            // picked to relay for us until it is heard from directly.
            peer.relayed = via.is_some();
            match body {
                FrameBody::Push(updates) => {
                    let mut acks = Vec::with_capacity(updates.len());
                    for update in updates {
                        let held = self.merge_update(entries, unopened, peer, &update);
                        acks.push((update.key, held));
                    }
                    replies.push(FrameBody::Ack { of: session, acks });
                }
                FrameBody::Ack { of, acks } => {
                    if of == self.session {
                        for (key, held) in acks {
                            if peer
                                .in_flight
                                .get(&key)
                                .is_some_and(|(sent, _)| *sent <= held)
                            {
                                peer.in_flight.remove(&key);
                            }
                            peer.acked.insert(key, held);
                        }
                        acked = true;
                    }
                }
                // A node that does not hold the key stays silent: the reader counts
                // holders only.
                FrameBody::Read { key, .. } if not_held(&key) => {}
                FrameBody::Read { id, key } => {
                    let state = match entries.get(&key).map(|e| e.encode_state()) {
                        Some(Ok(bytes)) => Some(bytes),
                        Some(Err(error)) => {
                            tracing::warn!(key, %error, "read not answered");
                            return;
                        }
                        None => None,
                    };
                    replies.push(FrameBody::ReadReply { id, state });
                }
                FrameBody::Digest(digests) => {
                    let quiet_for = self.config.anti_entropy_interval.unwrap_or_default();
                    let now = Instant::now();
                    let mut states = Vec::new();
                    for (key, theirs) in digests {
                        let Some(entry) = entries.get(&key).filter(|_| !not_held(&key)) else {
                            continue;
                        };
                        let quiet = now.saturating_duration_since(entry.last_change()) >= quiet_for;
                        if !quiet || !settled(entry.as_ref(), peer, &key) {
                            continue;
                        }
                        if let Ok(bytes) = entry.encode_state() {
                            if digest(&bytes) != theirs {
                                states.push((key, bytes));
                            }
                        }
                    }
                    if !states.is_empty() {
                        replies.push(FrameBody::Repair {
                            states,
                            answer: true,
                        });
                    }
                }
                FrameBody::Repair { states, answer } => {
                    let mut back = Vec::new();
                    for (key, bytes) in states {
                        if not_held(&key) {
                            continue;
                        }
                        let Some(entry) = entries.get_mut(&key) else {
                            continue;
                        };
                        let theirs = digest(&bytes);
                        if let Err(error) = entry.apply(&Payload::Full(bytes)) {
                            bump(&self.counters.decode_errors, 1);
                            tracing::warn!(key, %error, "repair dropped");
                            continue;
                        }
                        // Still different after merging: they lack something we hold.
                        match entry.encode_state() {
                            Ok(mine) if answer && digest(&mine) != theirs => back.push((key, mine)),
                            _ => {}
                        }
                    }
                    if !back.is_empty() {
                        replies.push(FrameBody::Repair {
                            states: back,
                            answer: false,
                        });
                    }
                }
                FrameBody::ReadReply { id, state } => {
                    if let Some(read) = reads.get_mut(&id) {
                        match (&mut read.states, state) {
                            (Some(states), Some(bytes)) => states.push(bytes),
                            (None, Some(bytes)) => {
                                if let Some(entry) = entries.get_mut(&read.key) {
                                    if let Err(error) = entry.apply(&Payload::Full(bytes)) {
                                        bump(&self.counters.decode_errors, 1);
                                        tracing::warn!(key = read.key, %error, "read reply dropped");
                                    }
                                }
                            }
                            (_, None) => {}
                        }
                        read.answered.insert(from);
                        if read.answered.len() + usize::from(read.counts_self) >= read.needed {
                            if let Some(done) = read.done.take() {
                                let _ = done.send(());
                            }
                        }
                    }
                }
                FrameBody::Handoff(states) => {
                    let mut merged = Vec::with_capacity(states.len());
                    for (key, bytes) in states {
                        if not_held(&key) {
                            // Our view of the ring lags or leads the sender's: no
                            // acknowledgement, so it keeps the state and sends again.
                            continue;
                        }
                        match entries.get_mut(&key) {
                            Some(entry) => {
                                if let Err(error) = entry.apply(&Payload::Full(bytes)) {
                                    bump(&self.counters.decode_errors, 1);
                                    tracing::warn!(key, %error, "handed-over state dropped");
                                    continue;
                                }
                            }
                            None => {
                                let pending = unopened.entry(key.clone()).or_default();
                                if pending.len() >= self.config.delta_buffer {
                                    continue;
                                }
                                pending.push(Payload::Full(bytes));
                            }
                        }
                        merged.push(key);
                    }
                    if !merged.is_empty() {
                        replies.push(FrameBody::HandoffAck(merged));
                    }
                }
                FrameBody::HandoffAck(keys) => {
                    for key in keys {
                        if let Some(placement) = placements.get_mut(&key) {
                            placement.handoff.remove(&from);
                        }
                    }
                }
                FrameBody::Relay { .. } => {}
            }
        }
        if acked {
            self.acks.send_modify(|generation| *generation += 1);
        }
        for body in replies {
            match via {
                // `from` does not reach us directly: answer the way it came.
                Some(relay) => self.send(
                    relay,
                    FrameBody::Relay {
                        to: from,
                        body: Box::new(body),
                    },
                ),
                None => self.send(from, body),
            }
        }
    }

    /// Merges one pushed update; returns up to which number we now hold the sender's
    /// changes of that CRDT.
    fn merge_update(
        &self,
        entries: &mut HashMap<String, Box<dyn ErasedEntry>>,
        unopened: &mut HashMap<String, Vec<Payload>>,
        peer: &mut Peer,
        update: &Update,
    ) -> u64 {
        let held = peer.received.get(&update.key).copied().unwrap_or(0);
        let merged = match entries.get_mut(&update.key) {
            Some(entry) => match entry.apply(&update.payload) {
                Ok(()) => true,
                Err(error) => {
                    bump(&self.counters.decode_errors, 1);
                    tracing::warn!(key = update.key, %error, "pushed update dropped");
                    false
                }
            },
            None => {
                let pending = unopened.entry(update.key.clone()).or_default();
                pending.push(update.payload.clone());
                if pending.len() > self.config.delta_buffer {
                    // Too much for a name nobody opened: forget it, and let the sender
                    // start over (with its full state) once it is opened.
                    unopened.remove(&update.key);
                    peer.received.remove(&update.key);
                    return 0;
                }
                true
            }
        };
        // A full state holds everything up to `last`; a delta only extends what we hold
        // if it starts right after it (merging is safe either way).
        let extends =
            matches!(update.payload, Payload::Full(_)) || update.first <= held.saturating_add(1);
        let held = if merged && extends {
            held.max(update.last)
        } else {
            held
        };
        peer.received.insert(update.key.clone(), held);
        held
    }

    /// Encodes and sends one frame; counts its bytes.
    fn send(&self, to: SocketAddr, body: FrameBody) {
        if let FrameBody::Repair { states, .. } = &body {
            bump(&self.counters.repairs_sent, states.len() as u64);
        }
        if let FrameBody::Push(updates) = &body {
            for update in updates {
                let len = update.payload.len() as u64;
                match update.payload {
                    Payload::Delta(_) => {
                        bump(&self.counters.deltas_sent, 1);
                        bump(&self.counters.delta_bytes, len);
                    }
                    Payload::Full(_) => {
                        bump(&self.counters.full_states_sent, 1);
                        bump(&self.counters.full_state_bytes, len);
                    }
                }
            }
        }
        let frame = CrdtFrame {
            from: self.me,
            session: self.session,
            via: None,
            body,
        };
        self.send_frame(to, frame);
    }

    /// Encodes and sends one frame as it is (`from` may be another node's, when
    /// relaying); counts its bytes.
    fn send_frame(&self, to: SocketAddr, frame: CrdtFrame) {
        let encoded = Registry::global()
            .map_err(|e| e.to_string())
            .and_then(|registry| registry.encode(&frame).map_err(|e| e.to_string()));
        let (type_tag, body) = match encoded {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::warn!(%error, "replicator frame not encoded");
                bump(&self.counters.send_failures, 1);
                return;
            }
        };
        let header = FrameHeader::tell(type_tag, INBOX);
        let len = header.frame_len(body.len());
        match self
            .node
            .transport()
            .send(to, header, body, self.send_options)
        {
            Ok(()) => {
                bump(&self.counters.frames_sent, 1);
                bump(&self.counters.bytes_sent, len);
            }
            Err(error) => {
                // Loss is expected; the retransmission timer covers it.
                bump(&self.counters.send_failures, 1);
                tracing::trace!(%to, %error, "replicator frame not sent");
            }
        }
    }

    fn send_all(&self, to: &[SocketAddr], body: &FrameBody) {
        for &addr in to {
            self.send(addr, body.clone());
        }
    }
}

/// The replicator's task: inbound frames and the push rounds.
async fn run(shared: Weak<Shared>, mut inbound: mpsc::UnboundedReceiver<CrdtFrame>) {
    let Some(config) = shared.upgrade().map(|s| s.config.clone()) else {
        return;
    };
    let every = |period: Duration| {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    };
    let mut rounds = every(config.delta_interval);
    let mut repairs = config.anti_entropy_interval.map(every);
    loop {
        tokio::select! {
            frame = inbound.recv() => {
                let Some(frame) = frame else { return };
                let Some(shared) = shared.upgrade() else { return };
                shared.on_frame(frame);
            }
            _ = rounds.tick() => {
                let Some(shared) = shared.upgrade() else { return };
                shared.flush(None);
            }
            _ = async {
                match repairs.as_mut() {
                    Some(ticks) => { ticks.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                let Some(shared) = shared.upgrade() else { return };
                shared.anti_entropy(config.anti_entropy_interval.unwrap_or_default());
            }
        }
    }
}
