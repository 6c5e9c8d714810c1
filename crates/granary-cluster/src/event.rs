//! Cluster events and the hub that fans them out to subscribers.
//!
//! Each subscriber has its own unbounded channel, filled under the same lock that
//! updates the hub's view, so the first event is always a snapshot and every later
//! change follows it in order with consecutive sequence numbers (no gaps, no lag).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::membership::{Member, MemberStatus};
use crate::node::application_metadata;
use crate::node_id::NodeId;
use crate::ring::HashRing;

/// The state a subscriber starts from.
#[derive(Clone, Debug)]
pub struct ClusterSnapshot {
    /// Sequence number of the last change included.
    pub seq: u64,
    /// The local node's current id.
    pub local: NodeId,
    /// Every known member except Removed tombstones, ordered by address.
    pub members: Vec<Member>,
    /// The ring (Up members).
    pub ring: Arc<HashRing>,
}

/// What happened to one member.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberEvent {
    /// A node appeared (usually as Joining).
    Joined(Member),
    /// A node became Up and took its place on the ring.
    Up(Member),
    /// A node started leaving gracefully.
    Leaving(Member),
    /// A leaving node finished its hand-off.
    Exiting(Member),
    /// A node was declared failed, or downed itself on the minority side.
    Down(Member),
    /// A node left gracefully.
    Removed(Member),
    /// A node at a known address came back with a new incarnation.
    IncarnationChanged {
        /// The id of the previous life.
        previous: NodeId,
        /// The new row.
        member: Member,
    },
    /// A member's roles, vnodes or metadata changed.
    Updated(Member),
}

impl MemberEvent {
    /// The row the event is about.
    pub fn member(&self) -> &Member {
        match self {
            Self::Joined(m)
            | Self::Up(m)
            | Self::Leaving(m)
            | Self::Exiting(m)
            | Self::Down(m)
            | Self::Removed(m)
            | Self::Updated(m)
            | Self::IncarnationChanged { member: m, .. } => m,
        }
    }
}

/// An event delivered to subscribers.
#[derive(Clone, Debug)]
pub enum ClusterEvent {
    /// Always the first event of a subscription.
    Snapshot(ClusterSnapshot),
    /// One change, with the ring after it.
    Change {
        /// Consecutive sequence number (snapshot's `seq` + 1 for the first change).
        seq: u64,
        /// What changed.
        event: MemberEvent,
        /// The ring after the change.
        ring: Arc<HashRing>,
    },
}

/// The events a row change produces, in order.
pub(crate) fn events_for(old: Option<&Member>, new: &Member) -> Vec<MemberEvent> {
    let status_event = |m: &Member| match m.status {
        MemberStatus::Joining => None,
        MemberStatus::Up => Some(MemberEvent::Up(m.clone())),
        MemberStatus::Leaving => Some(MemberEvent::Leaving(m.clone())),
        MemberStatus::Exiting => Some(MemberEvent::Exiting(m.clone())),
        MemberStatus::Down => Some(MemberEvent::Down(m.clone())),
        MemberStatus::Removed => Some(MemberEvent::Removed(m.clone())),
    };
    match old {
        None if !new.status.is_live() => Vec::new(),
        None => {
            let mut out = vec![MemberEvent::Joined(new.clone())];
            out.extend(status_event(new));
            out
        }
        Some(old) if old.id.incarnation != new.id.incarnation => {
            let mut out = vec![MemberEvent::IncarnationChanged {
                previous: old.id,
                member: new.clone(),
            }];
            out.extend(status_event(new));
            out
        }
        Some(old) if old.status != new.status => status_event(new).into_iter().collect(),
        // The cluster's own keys (a member's republished view, `SEEN_METADATA_KEY`; who
        // admitted it) are bookkeeping, not an update to report.
        Some(old)
            if old.roles != new.roles
                || old.vnodes != new.vnodes
                || !application_metadata(old).eq(application_metadata(new)) =>
        {
            vec![MemberEvent::Updated(new.clone())]
        }
        Some(_) => Vec::new(),
    }
}

/// The shared view behind the handle's `members()` and `subscribe()`.
pub(crate) struct EventHub {
    seq: u64,
    local: NodeId,
    members: BTreeMap<SocketAddr, Member>,
    /// The ring after the last published change, shared with [`crate::Cluster::ring`]
    /// so that reading it (every directory lookup and activation does) takes no lock.
    ring: Arc<ArcSwap<HashRing>>,
    subscribers: Vec<mpsc::UnboundedSender<ClusterEvent>>,
    /// The live members every member is known to have seen (`node/agreement.rs`).
    agreed: BTreeSet<NodeId>,
}

impl EventHub {
    pub(crate) fn new(local: NodeId) -> Self {
        Self {
            seq: 0,
            local,
            members: BTreeMap::new(),
            ring: Arc::new(ArcSwap::from_pointee(HashRing::new())),
            subscribers: Vec::new(),
            agreed: BTreeSet::new(),
        }
    }

    /// The members every member is known to have seen.
    pub(crate) fn agreed(&self) -> BTreeSet<NodeId> {
        self.agreed.clone()
    }

    /// Records the members every member is known to have seen.
    pub(crate) fn set_agreed(&mut self, agreed: &BTreeSet<NodeId>) {
        if self.agreed != *agreed {
            self.agreed.clone_from(agreed);
        }
    }

    pub(crate) fn snapshot(&self) -> ClusterSnapshot {
        ClusterSnapshot {
            seq: self.seq,
            local: self.local,
            members: self
                .members
                .values()
                .filter(|m| m.status != MemberStatus::Removed)
                .cloned()
                .collect(),
            ring: self.ring.load_full(),
        }
    }

    pub(crate) fn subscribe(&mut self) -> mpsc::UnboundedReceiver<ClusterEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Cannot fail: we hold the receiver.
        let _ = tx.send(ClusterEvent::Snapshot(self.snapshot()));
        self.subscribers.push(tx);
        rx
    }

    pub(crate) fn local(&self) -> NodeId {
        self.local
    }

    /// The cell holding the current ring, for readers that take no lock (the
    /// handle's `Cluster::ring` and `Cluster::with_ring`).
    pub(crate) fn shared_ring(&self) -> Arc<ArcSwap<HashRing>> {
        self.ring.clone()
    }

    pub(crate) fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// The local node's current row.
    pub(crate) fn local_member(&self) -> Option<Member> {
        self.members
            .get(&self.local.addr)
            .filter(|m| m.id == self.local)
            .cloned()
    }

    pub(crate) fn set_local(&mut self, local: NodeId) {
        self.local = local;
    }

    /// Drops a pruned tombstone from the view (its Down or Removed event was published
    /// when it happened; pruning is not a membership change).
    pub(crate) fn forget(&mut self, addr: &SocketAddr) {
        self.members.remove(addr);
    }

    /// Records a row change and publishes its events with the ring after it.
    pub(crate) fn publish(&mut self, old: Option<&Member>, new: &Member, ring: &Arc<HashRing>) {
        self.members.insert(new.id.addr, new.clone());
        self.ring.store(ring.clone());
        for event in events_for(old, new) {
            self.seq += 1;
            let seq = self.seq;
            self.subscribers.retain(|s| {
                s.send(ClusterEvent::Change {
                    seq,
                    event: event.clone(),
                    ring: ring.clone(),
                })
                .is_ok()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(inc: u64, status: MemberStatus) -> Member {
        let mut m = Member::new(NodeId::new("127.0.0.1:5".parse().unwrap(), inc), 1);
        m.status = status;
        m
    }

    #[test]
    fn first_sight_of_an_up_member_is_joined_then_up() {
        let ev = events_for(None, &member(1, MemberStatus::Up));
        assert!(matches!(
            ev.as_slice(),
            [MemberEvent::Joined(_), MemberEvent::Up(_)]
        ));
    }

    #[test]
    fn tombstones_seen_first_produce_no_event() {
        assert!(events_for(None, &member(1, MemberStatus::Down)).is_empty());
    }

    #[test]
    fn new_incarnation_reports_previous_id() {
        let ev = events_for(
            Some(&member(1, MemberStatus::Down)),
            &member(2, MemberStatus::Up),
        );
        match ev.as_slice() {
            [MemberEvent::IncarnationChanged { previous, .. }, MemberEvent::Up(_)] => {
                assert_eq!(previous.incarnation, 1)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn subscriber_gets_snapshot_then_consecutive_changes() {
        let mut hub = EventHub::new(member(1, MemberStatus::Up).id);
        let ring = Arc::new(HashRing::new());
        hub.publish(None, &member(1, MemberStatus::Joining), &ring);
        let mut rx = hub.subscribe();
        hub.publish(
            Some(&member(1, MemberStatus::Joining)),
            &member(1, MemberStatus::Up),
            &ring,
        );
        let ClusterEvent::Snapshot(s) = rx.try_recv().unwrap() else {
            panic!("first event must be a snapshot")
        };
        assert_eq!(s.seq, 1);
        let ClusterEvent::Change { seq, .. } = rx.try_recv().unwrap() else {
            panic!("expected change")
        };
        assert_eq!(seq, 2);
    }
}
