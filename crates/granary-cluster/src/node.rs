//! The protocol core of one node: a synchronous state machine.
//!
//! The runtime ([`crate::cluster`]) feeds it incoming envelopes and timer ticks with the
//! current time and sends what it queues in `out`. Keeping the core free of I/O and clocks
//! makes every rule testable and lets a thousand nodes share one process.
//!
//! The rules live in one file each: [`join`] (seeds, accept, rejoin), [`gossip`] (deltas,
//! peer choice, anti-entropy), [`failure`] (ring-sharded phi-accrual probing and
//! suspicion votes, probing back whoever suspects this node), [`downing`] (keep-majority
//! and indirectly connected nodes, over the members [`agreement`] says everyone has
//! seen), [`leave`] and [`tombstones`] (pruning Down and Removed rows).

mod agreement;
mod downing;
mod failure;
mod gossip;
mod join;
mod leave;
mod tombstones;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::ClusterConfig;
use crate::event::EventHub;
use crate::membership::{Member, MemberStatus, MembershipTable};
use crate::message::{ClusterMessage, Envelope};
use crate::node_id::NodeId;
use crate::phi::PhiAccrualDetector;
use crate::ring::HashRing;

pub(crate) use agreement::application_metadata;
pub(crate) use agreement::is_reserved_key;
pub use agreement::{ADMITTED_BY_METADATA_KEY, SEEN_METADATA_KEY};
pub(crate) use join::{Admission, JoinState};

/// What the node is doing.
#[derive(Debug)]
pub(crate) enum Mode {
    /// Asking contacts to let it in (first join or rejoin after Down).
    Joining(JoinState),
    /// A member of the cluster.
    Active,
    /// Done: left, failed to join, or downed without rejoin.
    Stopped,
}

/// Things the runtime must react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The node became a member (joined or formed a cluster).
    Joined,
    /// No seed answered and the policy is to fail.
    NoSeedAnswered,
    /// A join request to this address was accepted.
    AcceptedBy(SocketAddr),
    /// The node stopped taking part.
    Stopped,
}

/// Protocol state of one node.
pub(crate) struct NodeCore {
    cfg: ClusterConfig,
    me: NodeId,
    mode: Mode,
    table: MembershipTable,
    ring: Arc<HashRing>,
    /// Live peers (not me), rebuilt lazily when the table changed.
    peers: Vec<SocketAddr>,
    peers_dirty: bool,
    /// Rows to disseminate, with how often each was sent.
    recent: BTreeMap<SocketAddr, u32>,
    detectors: HashMap<SocketAddr, (NodeId, PhiAccrualDetector)>,
    hb_seq: u64,
    /// What downing waits to see stable (see [`downing`]): the unreachable members and,
    /// when some are indirectly connected, every observation.
    unreachable: BTreeSet<NodeId>,
    unreachable_edges: BTreeSet<(NodeId, NodeId)>,
    unreachable_since: Instant,
    /// A resolution that would down a majority was refused (logged once per picture).
    downing_refused: bool,
    /// The live members every member was last seen to know (see [`agreement`]).
    agreed: BTreeSet<NodeId>,
    /// This node's recent live sets, to read others' published hashes by.
    seen_history: agreement::SeenHistory,
    /// A row changed since [`NodeCore::refresh_agreement`] last looked.
    agreement_stale: bool,
    /// Downs while cut off in a row (each less than `join::CUT_DOWN_MEMORY` after the
    /// previous one), and when the last was: `DowningConfig::rejoin_backoff` doubles.
    cut_downs: u32,
    last_cut_down: Option<Instant>,
    /// When this node first saw each tombstone it holds (see [`tombstones`]).
    tombstones: HashMap<SocketAddr, Instant>,
    /// Pruned lives: address → (incarnation, when pruned).
    forgotten: HashMap<SocketAddr, (u64, Instant)>,
    neighbour_cursor: usize,
    synced_this_round: bool,
    /// The overlay's connections (`None`: the full mesh): gossip goes only to them and
    /// the failure detector probes them instead of ring successors.
    links: Option<Vec<SocketAddr>>,
    rng: SmallRng,
    hub: Arc<Mutex<EventHub>>,
    out: Vec<(SocketAddr, ClusterMessage)>,
    notices: Vec<Notice>,
    /// Joiners this member admits one at a time (`join.rs`).
    admission: Admission,
}

impl NodeCore {
    pub(crate) fn new(
        cfg: ClusterConfig,
        me: NodeId,
        hub: Arc<Mutex<EventHub>>,
        now: Instant,
    ) -> Self {
        let seed = cfg
            .rng_seed
            .unwrap_or_else(|| xxh3_64(me.addr.to_string().as_bytes()));
        Self {
            cfg,
            me,
            mode: Mode::Stopped,
            table: MembershipTable::new(),
            ring: Arc::new(HashRing::new()),
            peers: Vec::new(),
            peers_dirty: true,
            recent: BTreeMap::new(),
            detectors: HashMap::new(),
            hb_seq: 0,
            unreachable: BTreeSet::new(),
            unreachable_edges: BTreeSet::new(),
            unreachable_since: now,
            downing_refused: false,
            agreed: BTreeSet::new(),
            agreement_stale: true,
            seen_history: agreement::SeenHistory::default(),
            cut_downs: 0,
            last_cut_down: None,
            tombstones: HashMap::new(),
            forgotten: HashMap::new(),
            neighbour_cursor: 0,
            synced_this_round: false,
            links: None,
            rng: SmallRng::seed_from_u64(seed),
            hub,
            out: Vec::new(),
            notices: Vec::new(),
            admission: Admission::default(),
        }
    }

    /// The node's current id.
    pub(crate) fn me(&self) -> NodeId {
        self.me
    }

    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.mode, Mode::Stopped)
    }

    pub(crate) fn ring(&self) -> Arc<HashRing> {
        self.ring.clone()
    }

    pub(crate) fn take_outgoing(&mut self) -> Vec<(SocketAddr, ClusterMessage)> {
        std::mem::take(&mut self.out)
    }

    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Sets the overlay's connections (see `links`); `None` for the full mesh.
    pub(crate) fn set_links(&mut self, links: Option<Vec<SocketAddr>>) {
        self.links = links;
    }

    /// This node's table.
    pub(crate) fn table(&self) -> &MembershipTable {
        &self.table
    }

    /// Rows another member broadcast through the overlay: merged as gossip deltas.
    pub(crate) fn on_overlay_rows(&mut self, now: Instant, rows: Vec<Member>) {
        if !matches!(self.mode, Mode::Active) {
            return;
        }
        for row in rows {
            self.apply(row);
        }
        self.check_self(now);
    }

    pub(crate) fn own_row(&self) -> Option<&Member> {
        self.table.get(&self.me.addr).filter(|m| m.id == self.me)
    }

    fn own_status(&self) -> Option<MemberStatus> {
        self.own_row().map(|m| m.status)
    }

    /// A fresh row for this node with the configured roles, vnodes and metadata.
    fn fresh_row(&self, status: MemberStatus, version: u64) -> Member {
        let mut row = Member::new(self.me, self.cfg.vnodes);
        row.roles = self.cfg.roles.clone();
        row.metadata = self.cfg.metadata.clone();
        // A new row carries the node's view from the start: a row without one reads as
        // a node from before views were published, which agrees with everything.
        let view = agreement::seen_hash(&agreement::live_members(&self.table));
        row.metadata.insert(SEEN_METADATA_KEY.to_string(), view);
        row.status = status;
        row.version = version;
        row
    }

    /// Changes one key of this node's metadata (kept across rejoins).
    pub(crate) fn set_metadata(&mut self, key: String, value: Option<String>) {
        match &value {
            Some(v) => self.cfg.metadata.insert(key.clone(), v.clone()),
            None => self.cfg.metadata.remove(&key),
        };
        if self
            .own_row()
            .is_some_and(|r| r.metadata.get(&key) != value.as_ref())
        {
            self.update_own(|row| match value {
                Some(v) => {
                    row.metadata.insert(key, v);
                }
                None => {
                    row.metadata.remove(&key);
                }
            });
        }
    }

    /// Writes a new version of this node's own row.
    fn update_own(&mut self, change: impl FnOnce(&mut Member)) {
        if let Some(row) = self.own_row() {
            let mut row = row.clone();
            change(&mut row);
            row.version += 1;
            self.apply(row);
        }
    }

    /// Merges a row; on change updates the ring, the gossip queue and subscribers.
    fn apply(&mut self, row: Member) -> bool {
        self.merge_row(row, true)
    }

    /// Merges a row; `spread` queues it for gossip when it changed something. Rows that
    /// are old news to the cluster (a joiner's copy of the table) are not re-spread.
    fn merge_row(&mut self, row: Member, spread: bool) -> bool {
        if self.is_forgotten(&row) {
            return false;
        }
        let addr = row.id.addr;
        let Some(old) = self.table.merge(row) else {
            return false;
        };
        self.after_change(addr, old, spread)
    }

    /// Replaces a row against the merge order. Only for a rejoining node discarding the
    /// Down verdicts it reached on its own while it was cut off (see `on_join_accept`).
    fn overwrite_row(&mut self, row: Member) -> bool {
        let addr = row.id.addr;
        let old = self.table.overwrite(row);
        self.after_change(addr, old, false)
    }

    /// Ring, gossip queue and subscribers after the row at `addr` changed from `old`.
    fn after_change(&mut self, addr: SocketAddr, old: Option<Member>, spread: bool) -> bool {
        let Some(new) = self.table.get(&addr).cloned() else {
            return false;
        };
        let was_on_ring = old.as_ref().filter(|m| m.status == MemberStatus::Up);
        let on_ring = (new.status == MemberStatus::Up).then_some(&new);
        let ring_key = |m: Option<&Member>| m.map(|m| (m.id, m.vnodes));
        if ring_key(was_on_ring) != ring_key(on_ring) {
            let ring = Arc::make_mut(&mut self.ring);
            ring.remove(addr);
            if let Some(m) = on_ring {
                ring.insert(m.id, m.vnodes);
            }
        }
        if spread {
            if old
                .as_ref()
                .is_some_and(|old| agreement::only_the_view_changed(old, &new))
            {
                // A member's republished view (every member republishes on every
                // membership change): one round's worth of sends, not the full
                // retransmit count; anti-entropy reaches whoever this misses.
                let once =
                    (self.retransmit_limit()).saturating_sub(self.cfg.gossip_fanout.max(1) as u32);
                let sent = self.recent.entry(addr).or_insert(once);
                *sent = (*sent).min(once);
            } else {
                self.recent.insert(addr, 0);
            }
        }
        self.peers_dirty = true;
        self.agreement_stale = true;
        let was_live = old.as_ref().filter(|m| m.status.is_live()).map(|m| m.id);
        if was_live != new.status.is_live().then_some(new.id) {
            self.record_live_set(addr);
        }
        self.hub.lock().publish(old.as_ref(), &new, &self.ring);
        true
    }

    fn send(&mut self, to: SocketAddr, message: ClusterMessage) {
        self.out.push((to, message));
    }

    /// Handles one incoming envelope.
    pub(crate) fn on_message(&mut self, now: Instant, envelope: Envelope) {
        let Envelope { from, message } = envelope;
        match (&self.mode, message) {
            (Mode::Joining(_), ClusterMessage::JoinAccept { members }) => {
                self.on_join_accept(now, from, members)
            }
            // Monitors watch a Joining node too (see `failure`): answer while joining.
            (Mode::Joining(_), ClusterMessage::Heartbeat { seq }) => {
                self.send(from.addr, ClusterMessage::HeartbeatAck { seq })
            }
            // A rejoining node notes who else asks to join (see `join::Reformation`).
            (Mode::Joining(_), ClusterMessage::JoinRequest { member }) => {
                self.on_join_request_while_joining(now, from, &member)
            }
            // A node waiting out its rejoin backoff probes the members it was cut from.
            (Mode::Joining(_), ClusterMessage::HeartbeatAck { seq }) => {
                self.on_rejoin_probe_ack(from, seq)
            }
            (Mode::Active, message) => {
                self.tell_if_down(from);
                match message {
                    ClusterMessage::JoinRequest { member } => {
                        self.on_join_request(now, from, member)
                    }
                    ClusterMessage::JoinAccept { members } => {
                        self.on_join_accept(now, from, members)
                    }
                    ClusterMessage::Gossip { state_hash, deltas } => {
                        self.on_gossip(now, from, state_hash, deltas)
                    }
                    ClusterMessage::SyncDigest { digest } => self.on_sync_digest(from, digest),
                    ClusterMessage::SyncRows { rows, wanted } => {
                        self.on_sync_rows(now, from, rows, wanted)
                    }
                    ClusterMessage::Heartbeat { seq } => {
                        self.send(from.addr, ClusterMessage::HeartbeatAck { seq })
                    }
                    ClusterMessage::HeartbeatAck { .. } => self.on_heartbeat_ack(now, from),
                    // The runtime hands overlay frames to the overlay, never here.
                    ClusterMessage::Overlay { .. } => {}
                }
            }
            // Joining nodes wait for an accept; stopped ones ignore everything.
            _ => {}
        }
        // The row of the joiner admitted last may have come Up with this message.
        self.admit_held(now);
    }

    /// A sender we hold as Down (or superseded) is told so, so that a wrongly downed node
    /// learns it and rejoins with a new incarnation.
    fn tell_if_down(&mut self, from: NodeId) {
        if let Some(row) = self.table.get(&from.addr) {
            let superseded = row.id.incarnation > from.incarnation;
            let downed = row.id == from && !row.status.is_live();
            if superseded || downed {
                let deltas = vec![row.clone()];
                let state_hash = self.table.state_hash();
                self.send(from.addr, ClusterMessage::Gossip { state_hash, deltas });
            }
        }
    }

    /// Gossip timer.
    pub(crate) fn on_gossip_tick(&mut self, now: Instant) {
        match self.mode {
            Mode::Joining(_) => self.retry_join(now),
            Mode::Active => {
                self.gossip_round();
                self.admit_held(now);
            }
            Mode::Stopped => {}
        }
    }

    /// Heartbeat timer.
    pub(crate) fn on_heartbeat_tick(&mut self, now: Instant) {
        if matches!(self.mode, Mode::Active) {
            self.probe_successors(now);
            self.evaluate_downing(now);
            self.sweep_tombstones(now);
        }
    }

    /// After merging others' rows: are we still who we think we are?
    fn check_self(&mut self, now: Instant) {
        if !matches!(self.mode, Mode::Active) {
            return;
        }
        let fine = match self.table.get(&self.me.addr) {
            Some(row) => row.id == self.me && row.status.is_live(),
            None => false,
        };
        if !fine {
            self.become_down(now);
        }
    }
}

#[cfg(test)]
mod tests;
