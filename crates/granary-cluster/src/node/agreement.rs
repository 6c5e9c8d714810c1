//! Agreement: which members every member is known to have seen, so that both sides of
//! a partition count the same members when they decide which side keeps the majority.
//!
//! Keep-majority is only safe when both sides count against the same membership. A
//! node admitted on one side after the partition formed — a downed node rejoining
//! through a member the other side can no longer reach — is live in one side's table
//! and unknown to the other's: the one side counts five members, the other four, and
//! both can find themselves the majority (the chaos bed's seed 2940 did exactly that).
//! Akka avoids it by moving a joiner Up only once every member has seen it
//! (convergence) and by not counting joiners in its split-brain resolver; this module
//! is that rule for a cluster whose joiners are Up as soon as one member accepts them.
//!
//! Every member publishes, in its own row's metadata under [`SEEN_METADATA_KEY`], a hash
//! of the live lives (address and incarnation) in its table, and each node remembers the
//! last [`SEEN_HISTORY`] live sets it held itself, by hash. A live member becomes
//! *agreed* when every other live member's published hash names one of those sets and
//! each such set holds it: every member has had it in its table. It stays agreed for
//! that life (a member that died before publishing the newest set still names an older
//! one; a hash this node never held itself confirms nothing new). The downing rule
//! (`downing.rs`) then counts
//!
//! - every agreed member that is still live (agreed members reachable or not), and
//! - every other live member it holds unreachable (the other side may count it),
//!
//! and the reachable side's share is only its agreed members: a member not everyone has
//! seen helps no side, and can only count against the side that cannot reach it. A
//! member agreed anywhere has been seen by every member, so each side either counts it
//! as agreed or holds it live and unreachable; the two sides cannot both hold a
//! majority (nor both win a tie: they then count the very same members and the lowest
//! address is on one side only).
//!
//! A joiner's row also names the member that admitted it ([`ADMITTED_BY_METADATA_KEY`]):
//! that member has known it from the start, so its view need not have caught up (a
//! member killed right after admitting a joiner would otherwise leave the joiner
//! uncounted for as long as the dead member stays live in the tables).
//!
//! A row without the key (a node of a version before this rule) is taken as agreeing,
//! which is what such a cluster decided before; every row a node of this version writes
//! carries it from the start. The key is re-published as soon as the live set changes;
//! in clusters of up to [`EAGER_PUSH_MEMBERS`] the new row goes to every member at
//! once, in larger ones it is gossiped for one round only (every member republishes on
//! every membership change: N rows instead of one; anti-entropy carries it to whoever
//! that round missed); [`crate::MemberEvent::Updated`] is not raised for
//! it. The virtual runtime's host lease counts only agreed members' grants
//! ([`crate::Cluster::agreed_members`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use xxhash_rust::xxh3::xxh3_64;

use super::NodeCore;
use crate::membership::{Member, MembershipTable};
use crate::message::ClusterMessage;
use crate::node_id::NodeId;

/// The metadata key under which each member publishes the hash of the live members it
/// knows (reserved: [`crate::Cluster::set_metadata`] refuses it).
pub const SEEN_METADATA_KEY: &str = "granary.seen";

/// The metadata key under which a joiner's row names the member that admitted it
/// (`address#incarnation`): that member has known it since, whatever view it published
/// last (reserved like [`SEEN_METADATA_KEY`]).
pub const ADMITTED_BY_METADATA_KEY: &str = "granary.admitted_by";

/// The keys the cluster writes in its members' metadata.
pub(crate) fn is_reserved_key(key: &str) -> bool {
    key == SEEN_METADATA_KEY || key == ADMITTED_BY_METADATA_KEY
}

/// The member that admitted `member`, as its row names it.
fn admitted_by(member: &Member) -> Option<NodeId> {
    let value = member.metadata.get(ADMITTED_BY_METADATA_KEY)?;
    let (addr, incarnation) = value.rsplit_once('#')?;
    Some(NodeId::new(addr.parse().ok()?, incarnation.parse().ok()?))
}

/// Up to this many members, a changed view is pushed to every member at once (see
/// [`NodeCore::record_live_set`]); beyond, it spreads with gossip.
pub(crate) const EAGER_PUSH_MEMBERS: usize = 16;

/// How many of its own past live sets a node remembers to read others' hashes by.
pub(crate) const SEEN_HISTORY: usize = 32;

/// This node's recent live sets, by their published hash (newest last).
#[derive(Debug, Default)]
pub(crate) struct SeenHistory {
    sets: VecDeque<(String, BTreeSet<NodeId>)>,
}

impl SeenHistory {
    /// Remembers `members` under `hash` as the newest set.
    fn record(&mut self, hash: &str, members: &BTreeSet<NodeId>) {
        if self.sets.back().is_some_and(|(h, _)| h == hash) {
            return;
        }
        self.sets.retain(|(h, _)| h != hash);
        if self.sets.len() >= SEEN_HISTORY {
            self.sets.pop_front();
        }
        self.sets.push_back((hash.to_string(), members.clone()));
    }

    /// The set published as `hash`, if this node held it.
    fn get(&self, hash: &str) -> Option<&BTreeSet<NodeId>> {
        self.sets.iter().find(|(h, _)| h == hash).map(|(_, s)| s)
    }
}

/// The lives `table` holds live, in address order.
pub(crate) fn live_members(table: &MembershipTable) -> BTreeSet<NodeId> {
    table
        .iter()
        .filter(|m| m.status.is_live())
        .map(|m| m.id)
        .collect()
}

/// `member`'s metadata without the cluster's own keys.
pub(crate) fn application_metadata(member: &Member) -> impl Iterator<Item = (&String, &String)> {
    (member.metadata.iter()).filter(|(k, _)| !is_reserved_key(k))
}

/// Whether `new` differs from `old` (the same life's row) only in its version and its
/// published view ([`SEEN_METADATA_KEY`]).
pub(crate) fn only_the_view_changed(old: &Member, new: &Member) -> bool {
    old.id == new.id
        && old.status == new.status
        && old.roles == new.roles
        && old.vnodes == new.vnodes
        && old.suspects == new.suspects
        && old.metadata.get(SEEN_METADATA_KEY) != new.metadata.get(SEEN_METADATA_KEY)
        && application_metadata(old).eq(application_metadata(new))
}

/// The published form of a set of lives: a hex hash of their addresses and incarnations.
pub(crate) fn seen_hash(members: &BTreeSet<NodeId>) -> String {
    let mut bytes = Vec::with_capacity(members.len() * 26);
    for id in members {
        match id.addr.ip() {
            IpAddr::V4(ip) => bytes.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => bytes.extend_from_slice(&ip.octets()),
        }
        bytes.extend_from_slice(&id.addr.port().to_le_bytes());
        bytes.extend_from_slice(&id.incarnation.to_le_bytes());
    }
    format!("{:016x}", xxh3_64(&bytes))
}

impl NodeCore {
    /// Remembers the live set after a row changed whether, or as whom, a member is live,
    /// and publishes it at once: a member that dies a moment after learning of a joiner
    /// has then most likely sent a view holding it (its last view is all the others
    /// will ever have of it, and without the joiner in it the joiner counts for no side).
    ///
    /// In a cluster of at most [`EAGER_PUSH_MEMBERS`] members the new view, with the row
    /// that changed it, also goes to every member at once rather than with the next
    /// gossip round: a member killed a moment after a join has then almost surely
    /// shown the others that it knew the joiner, which decides whether the joiner
    /// counts (in a small cluster, whether the survivors hold the majority).
    pub(crate) fn record_live_set(&mut self, changed: SocketAddr) {
        let live = live_members(&self.table);
        let hash = seen_hash(&live);
        self.seen_history.record(&hash, &live);
        if !self.publish_view(hash) {
            return;
        }
        let peers: Vec<SocketAddr> = (live.iter())
            .map(|id| id.addr)
            .filter(|a| *a != self.me.addr)
            .collect();
        if peers.len() + 1 > EAGER_PUSH_MEMBERS {
            return;
        }
        let mut rows = vec![self.me.addr];
        if changed != self.me.addr {
            rows.push(changed);
        }
        let deltas: Vec<Member> = (rows.iter())
            .filter_map(|a| self.table.get(a).cloned())
            .collect();
        let state_hash = self.table.state_hash();
        for peer in peers {
            let deltas = deltas.clone();
            self.send(peer, ClusterMessage::Gossip { state_hash, deltas });
        }
    }

    /// Writes `view` into this node's own row if it holds another one; whether it did.
    fn publish_view(&mut self, view: String) -> bool {
        let own = self.own_row().filter(|r| r.status.is_live());
        if own.is_none_or(|r| r.metadata.get(SEEN_METADATA_KEY) == Some(&view)) {
            return false;
        }
        self.update_own(|row| {
            row.metadata.insert(SEEN_METADATA_KEY.to_string(), view);
        });
        true
    }

    /// Publishes the hash of this node's live members if it changed (when its own row
    /// came back live, say), and adds to the agreed members those every member has now
    /// seen.
    pub(crate) fn refresh_agreement(&mut self) {
        if !std::mem::take(&mut self.agreement_stale) {
            return;
        }
        let live = live_members(&self.table);
        let hash = seen_hash(&live);
        self.seen_history.record(&hash, &live);
        self.publish_view(hash);
        // Once every member has had a life in its table, it stays agreed for that life.
        // A member knows what its view holds and every joiner it admitted itself. Rows
        // are taken by view (most members show the same one), so this stays linear in
        // the members however many there are.
        let admitters: HashMap<NodeId, NodeId> = (self.table.iter())
            .filter(|m| m.status.is_live())
            .filter_map(|m| Some((m.id, admitted_by(m)?)))
            .collect();
        let mut by_view: HashMap<&String, Vec<NodeId>> = HashMap::new();
        let others = (self.table.iter()).filter(|m| m.status.is_live() && m.id != self.me);
        for row in others {
            if let Some(view) = row.metadata.get(SEEN_METADATA_KEY) {
                by_view.entry(view).or_default().push(row.id);
            }
        }
        let mut seen_by_all = live.clone();
        for (view, rows) in &by_view {
            let seen = self.seen_history.get(view);
            // Outside the view, a member is still known to the one row showing it
            // that admitted it.
            let only_admitter = |id: &NodeId| match rows.as_slice() {
                [row] => admitters.get(id) == Some(row),
                _ => false,
            };
            seen_by_all.retain(|id| seen.is_some_and(|s| s.contains(id)) || only_admitter(id));
        }
        self.agreed.retain(|id| live.contains(id));
        self.agreed.extend(seen_by_all);
        self.hub.lock().set_agreed(&self.agreed);
    }

    /// The members the downing rule counts when `unreachable` are cut off, and those of
    /// them on this node's side (see the module docs).
    pub(crate) fn counted_members(
        &self,
        unreachable: &BTreeSet<NodeId>,
    ) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let live = live_members(&self.table);
        let counted: BTreeSet<NodeId> = live
            .iter()
            .filter(|id| self.agreed.contains(id) || unreachable.contains(id))
            .copied()
            .collect();
        let reachable = counted
            .iter()
            .filter(|id| !unreachable.contains(id))
            .copied()
            .collect();
        (counted, reachable)
    }
}
