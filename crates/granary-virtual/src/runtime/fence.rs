//! Placements held back after a member went Down (see [`Fence`]), and the runtime's
//! calls that fence and ask.

use std::net::SocketAddr;
use std::sync::Arc;

use granary_cluster::HashRing;
use granary_storage::Identity;

use super::{members, IdentityMap, Runtime};

/// Placements held back after a member went Down: a node declared Down may be the
/// minority side of a partition that downs itself only about as late as the
/// majority downed it, so its activations can be live for a moment longer. Until
/// `down_margin` after the Down, the owner does not place an identity that was
/// recorded on the downed node, nor one whose directory owner was the downed node
/// (its entry is lost, so it may have been anywhere).
#[derive(Default)]
pub(crate) struct Fence {
    /// Identities whose recorded host went Down, and until when they wait.
    recorded: IdentityMap<tokio::time::Instant>,
    /// The earliest wait in `recorded`: expired entries are dropped once it passes,
    /// not on every placement (a Down can fence every identity its host had).
    recorded_earliest: Option<tokio::time::Instant>,
    /// Rings from before a member went missing, each with until when the identities
    /// its missing owners held wait. Every such ring is kept until its margin passes:
    /// two members of a minority may be downed one after the other, and the ring
    /// before the second Down no longer names the first one's identities' owner.
    owners: Vec<(Arc<HashRing>, tokio::time::Instant)>,
    /// The ring the last placement saw. The ring changes as soon as the cluster's
    /// view does, before the membership task gets to [`Runtime::note_down`]; a
    /// placement that finds members gone from it since fences their identities itself.
    seen: Option<Arc<HashRing>>,
}

impl Fence {
    /// Fences, until `until`, the identities whose owner on `ring` is no longer alive.
    fn fence_owners_of(&mut self, ring: Arc<HashRing>, until: tokio::time::Instant) {
        let now = tokio::time::Instant::now();
        self.owners.retain(|(_, until)| *until > now);
        self.owners.push((ring, until));
    }

    /// `identity` waits until at least `until` (its recorded host went Down).
    fn record(&mut self, identity: Identity, until: tokio::time::Instant) {
        let entry = self.recorded.entry(identity).or_insert(until);
        *entry = (*entry).max(until);
        self.recorded_earliest = Some(self.recorded_earliest.map_or(until, |e| e.min(until)));
    }

    /// Until when `identity` waits at `now` (forgetting what has passed), if at all:
    /// its recorded host went Down, or its owner on a ring kept here is not alive.
    fn until(
        &mut self,
        identity: &Identity,
        now: tokio::time::Instant,
        is_alive: impl Fn(SocketAddr) -> bool,
    ) -> Option<tokio::time::Instant> {
        if self
            .recorded_earliest
            .is_some_and(|earliest| earliest <= now)
        {
            self.recorded.retain(|_, until| *until > now);
            self.recorded_earliest = self.recorded.values().min().copied();
            super::shrink_if_sparse(&mut self.recorded);
        }
        self.owners.retain(|(_, until)| *until > now);
        let recorded = self.recorded.get(identity).copied();
        let owned = self
            .owners
            .iter()
            .filter(|(ring, _)| {
                ring.owner_of_position(members::ring_position(identity))
                    .is_some_and(|owner| !is_alive(owner.addr))
            })
            .map(|(_, until)| *until)
            .max();
        recorded.max(owned)
    }
}

impl Runtime {
    /// The entries of `lost` were on a host that went Down: each waits the margin.
    pub(crate) fn fence_lost(&self, lost: Vec<Identity>) {
        if lost.is_empty() {
            return;
        }
        let until = tokio::time::Instant::now() + self.config.down_margin;
        let mut fence = self.fence.lock();
        for identity in lost {
            fence.record(identity, until);
        }
    }

    /// A member went Down; `before` is the ring before that change.
    pub(crate) fn note_down(&self, before: Arc<HashRing>) {
        let until = tokio::time::Instant::now() + self.config.down_margin;
        self.fence.lock().fence_owners_of(before, until);
    }

    /// `identity`'s entry names a host this node no longer counts alive, and the
    /// entry was still here: the membership task has not handled that Down yet (it
    /// would have dropped the entry and fenced the identity). Fence it now, for the
    /// whole margin: the host may be the minority side of a partition that stops
    /// hosting only about as late as it was downed.
    pub(crate) fn fence_entry_of_dead_host(&self, identity: &Identity) {
        let until = tokio::time::Instant::now() + self.config.down_margin;
        let mut fence = self.fence.lock();
        if !fence.recorded.contains_key(identity) {
            fence.record(identity.clone(), until);
        }
    }

    /// Notes the current ring for [`Fence::seen`] (every lookup does, so a placement
    /// compares with a recent one): members gone since the last look fence the
    /// identities they owned, from now (later than the Down itself, so never too
    /// short), even before the membership task gets to [`Runtime::note_down`].
    pub(crate) fn note_ring_seen(&self) {
        let ring = self.members.ring();
        let mut fence = self.fence.lock();
        if fence
            .seen
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &ring))
        {
            return;
        }
        if let Some(seen) = fence.seen.replace(ring.clone()) {
            if seen.nodes().any(|(node, _)| !ring.contains(node.addr)) {
                let until = tokio::time::Instant::now() + self.config.down_margin;
                fence.fence_owners_of(seen, until);
            }
        }
    }

    /// Until when a new activation of `identity` must wait (see [`Fence`]).
    pub(crate) fn placement_fence(&self, identity: &Identity) -> Option<tokio::time::Instant> {
        self.note_ring_seen();
        let now = tokio::time::Instant::now();
        let mut fence = self.fence.lock();
        fence.until(identity, now, |host| self.members.is_alive(host))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use granary_cluster::NodeId;

    use super::*;

    fn ring(addrs: &[SocketAddr]) -> Arc<HashRing> {
        let mut ring = HashRing::new();
        for addr in addrs {
            ring.insert(NodeId::new(*addr, 1), 64);
        }
        Arc::new(ring)
    }

    /// Two minority members downed one after the other: the ring before the second
    /// Down no longer names the first one, yet the identities the first one owned
    /// stay fenced for the first Down's whole margin.
    #[test]
    fn a_second_down_keeps_the_fence_of_the_first() {
        let addrs: Vec<SocketAddr> = (1..=5)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
            .collect();
        let (first, second) = (addrs[3], addrs[4]);
        let before_first = ring(&addrs);
        let before_second = ring(&[addrs[0], addrs[1], addrs[2], second]);
        let identity = (0..1000)
            .map(|i| Identity::new("test.Counter", format!("k{i}")))
            .find(|id| {
                let pos = members::ring_position(id);
                before_first.owner_of_position(pos).map(|n| n.addr) == Some(first)
                    && before_second.owner_of_position(pos).map(|n| n.addr) != Some(second)
            })
            .expect("some key the first downed member owned");
        let now = tokio::time::Instant::now();
        let first_until = now + Duration::from_secs(1);
        let second_until = now + Duration::from_millis(1200);
        let mut fence = Fence::default();
        fence.fence_owners_of(before_first, first_until);
        fence.fence_owners_of(before_second, second_until);
        let alive = |host: SocketAddr| host != first && host != second;
        assert_eq!(fence.until(&identity, now, alive), Some(first_until));
        assert_eq!(fence.until(&identity, first_until, alive), None);
    }

    /// A recorded identity waits until its deadline and is forgotten after it; the
    /// later of two deadlines counts.
    #[test]
    fn a_recorded_identity_waits_for_its_latest_deadline_then_is_forgotten() {
        let identity = Identity::new("test.Counter", "k");
        let now = tokio::time::Instant::now();
        let (early, late) = (now + Duration::from_secs(1), now + Duration::from_secs(2));
        let mut fence = Fence::default();
        fence.record(identity.clone(), early);
        fence.record(identity.clone(), late);
        let alive = |_: SocketAddr| true;
        assert_eq!(fence.until(&identity, now, alive), Some(late));
        assert_eq!(fence.until(&identity, early, alive), Some(late));
        assert_eq!(fence.until(&identity, late, alive), None);
        assert!(fence.recorded.is_empty());
    }
}
