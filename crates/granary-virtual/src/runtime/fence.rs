//! Placements held back after a member went Down (see [`Fence`]), the confirmation
//! that lets them go ahead, and the runtime's calls that fence and ask.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use granary_cluster::HashRing;
use granary_storage::Identity;
use tokio::time::Instant;

use super::{members, IdentityMap, Runtime};
use crate::protocol::{Reply, Request};

/// How long a new activation of an identity must wait (see [`Fence`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Until this moment.
    Until(Instant),
    /// Until a majority has confirmed that a member it may have lived on is gone.
    Unconfirmed,
}

impl Wait {
    /// The longer of two waits.
    fn max(self, other: Wait) -> Wait {
        match (self, other) {
            (Wait::Until(a), Wait::Until(b)) => Wait::Until(a.max(b)),
            _ => Wait::Unconfirmed,
        }
    }
}

/// Placements held back after a member departed (went Down, or left the ring).
///
/// The departed member may still be running — the minority side of a partition, or
/// a node behind a one-way cut that still reaches most members — and its activations
/// handle messages for as long as its host lease holds (`lease.rs`). A member grants
/// that lease only while the departed node is in its ring, so once a majority of the
/// ring has answered that the node is gone for them (`confirm_departure`), every
/// renewal that succeeded had a grant from one of them, and the lease lapses at most
/// one lease length after the latest grant they report. Until then the owner does
/// not place an identity that was recorded on the departed node, nor one whose
/// directory owner the departed node was (its entry is lost, so it may have been
/// anywhere). A member that departs *unsettled* — before it said it re-registered
/// its activations for this node's ring (`handoff.rs`) — may hold an activation of
/// any identity this node owns without an entry here, so until its departure passes
/// this node places no identity at all.
///
/// Besides, the owner waits `down_margin` after it noted the departure, the rule
/// that alone keeps a full partition's sides apart (both down the other after the
/// same `stable_after`) even where the two sides' views of the ring differ so much
/// that the two majorities need not overlap. Counting from the Down alone (as
/// before) assumed the departed node lost its lease about when the others downed
/// it, which a one-way cut breaks: the node behind it kept renewing through members
/// that had not yet heard of the Down.
pub(crate) struct Fence {
    /// Each departed member, with until when its identities wait.
    departures: HashMap<SocketAddr, Departure>,
    /// Identities whose recorded host departed, with that host.
    recorded: IdentityMap<SocketAddr>,
    /// Rings from before a member departed: the identities a departed owner held on
    /// one of them wait for that owner's departure. Every such ring is kept while one
    /// of its departed members still fences: two members of a minority may be downed
    /// one after the other, and the ring before the second Down no longer names the
    /// first one's identities' owner.
    owners: Vec<Arc<HashRing>>,
    /// The ring the last placement saw. The ring changes as soon as the cluster's
    /// view does, before the membership task gets to [`Runtime::note_down`]; a
    /// placement that finds members gone from it since fences their identities itself.
    seen: Option<Arc<HashRing>>,
    /// Bumped whenever a departure is confirmed (wakes the placements waiting on one).
    confirmations: tokio::sync::watch::Sender<u64>,
}

/// One departed member.
#[derive(Clone, Copy, Debug)]
struct Departure {
    /// The life that departed, when known (a Down names it; an entry found on a dead
    /// host does not).
    incarnation: Option<u64>,
    /// `down_margin` after the departure was first noted: the wait that alone keeps
    /// a full partition's two sides apart (each side downs the other after the same
    /// `stable_after`), whatever the two sides' views of the ring.
    not_before: Instant,
    /// `None` until a majority confirmed the departure; then until when its lease
    /// may hold.
    until: Option<Instant>,
    /// It departed before it said it re-registered its activations for the ring it
    /// departed from: every placement here waits for it.
    unsettled: bool,
}

impl Departure {
    /// Until when it fences; `None`: until it is confirmed.
    fn until(&self) -> Option<Instant> {
        self.until.map(|until| until.max(self.not_before))
    }
}

impl Default for Fence {
    fn default() -> Self {
        Self {
            departures: HashMap::new(),
            recorded: IdentityMap::default(),
            owners: Vec::new(),
            seen: None,
            confirmations: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Fence {
    /// Notes that `host` (life `incarnation`, if known) departed. Returns whether its
    /// departure must now be confirmed: it was not being fenced, or an earlier life
    /// of it was.
    fn depart(
        &mut self,
        host: SocketAddr,
        incarnation: Option<u64>,
        not_before: Instant,
        unsettled: bool,
    ) -> bool {
        match self.departures.get_mut(&host) {
            Some(known)
                if known.incarnation.is_none()
                    || incarnation.is_none()
                    || known.incarnation == incarnation =>
            {
                known.incarnation = known.incarnation.or(incarnation);
                false
            }
            _ => {
                self.departures.insert(
                    host,
                    Departure {
                        incarnation,
                        not_before,
                        until: None,
                        unsettled,
                    },
                );
                true
            }
        }
    }

    /// A majority confirmed `host`'s departure: its identities wait until `until`.
    fn confirm(&mut self, host: SocketAddr, until: Instant) {
        if let Some(departure) = self.departures.get_mut(&host) {
            departure.until = Some(until);
            self.confirmations.send_modify(|n| *n += 1);
        }
    }

    /// The identities whose owner on `ring` departed wait for that departure.
    fn fence_owners_of(&mut self, ring: Arc<HashRing>) {
        if !self.owners.iter().any(|kept| Arc::ptr_eq(kept, &ring)) {
            self.owners.push(ring);
        }
    }

    /// `identity`'s recorded host departed.
    fn record(&mut self, identity: Identity, host: SocketAddr) {
        self.recorded.insert(identity, host);
    }

    /// How long `host`'s departure still fences at `now`, if at all.
    fn wait_for(&self, host: SocketAddr, now: Instant) -> Option<Wait> {
        match self.departures.get(&host)?.until() {
            None => Some(Wait::Unconfirmed),
            Some(until) if until > now => Some(Wait::Until(until)),
            Some(_) => None,
        }
    }

    /// Forgets the departures that no longer fence at `now`, and with them the
    /// identities and rings that waited only for them.
    fn forget_passed(&mut self, now: Instant, is_alive: &impl Fn(SocketAddr) -> bool) {
        let before = self.departures.len();
        self.departures
            .retain(|_, d| d.until().is_none_or(|until| until > now));
        if self.departures.len() == before {
            return;
        }
        let departures = &self.departures;
        self.recorded
            .retain(|_, host| departures.contains_key(host));
        super::shrink_if_sparse(&mut self.recorded);
        self.owners.retain(|ring| {
            ring.nodes()
                .any(|(node, _)| !is_alive(node.addr) && departures.contains_key(&node.addr))
        });
    }

    /// How long `identity` waits at `now`, if at all: its recorded host departed, its
    /// owner on a ring kept here did, or a member departed unsettled.
    fn until(
        &mut self,
        identity: &Identity,
        now: Instant,
        is_alive: impl Fn(SocketAddr) -> bool,
    ) -> Option<Wait> {
        self.forget_passed(now, &is_alive);
        let recorded = self
            .recorded
            .get(identity)
            .and_then(|host| self.wait_for(*host, now));
        let owned = self
            .owners
            .iter()
            .filter_map(|ring| {
                ring.owner_of_position(members::ring_position(identity))
                    .filter(|owner| !is_alive(owner.addr))
                    .and_then(|owner| self.wait_for(owner.addr, now))
            })
            .reduce(Wait::max);
        let unsettled = (self.departures.iter())
            .filter(|(_, departure)| departure.unsettled)
            .filter_map(|(host, _)| self.wait_for(*host, now))
            .reduce(Wait::max);
        [recorded, owned, unsettled]
            .into_iter()
            .flatten()
            .reduce(Wait::max)
    }
}

impl Runtime {
    /// Notes `host`'s departure and, if it is new, starts confirming it among the
    /// members of `ring` (a ring with `host` in it, when known) and the current ones.
    /// It is unsettled if `host` had not said it re-registered for that ring.
    fn depart(
        self: &Arc<Self>,
        fence: &mut Fence,
        host: SocketAddr,
        incarnation: Option<u64>,
        ring: Option<Arc<HashRing>>,
    ) {
        let not_before = Instant::now() + self.config.down_margin;
        let ring = ring.or_else(|| fence.seen.clone());
        let unsettled = ring
            .as_deref()
            .is_some_and(|ring| ring.contains(host) && !self.rebuilt_for(host, ring));
        if fence.depart(host, incarnation, not_before, unsettled) {
            tracing::debug!(%host, ?incarnation, unsettled, "departure noted: placements it may concern wait");
            tokio::spawn(confirm_departure(Arc::downgrade(self), host, ring));
        }
    }

    /// The entries of `lost` were on hosts that departed: each waits for its host.
    pub(crate) fn fence_lost(self: &Arc<Self>, lost: Vec<(Identity, SocketAddr)>) {
        if lost.is_empty() {
            return;
        }
        let mut fence = self.fence.lock();
        for (identity, host) in lost {
            self.depart(&mut fence, host, None, None);
            fence.record(identity, host);
        }
    }

    /// `host` (life `incarnation`) went Down; `before` is the ring before that change.
    pub(crate) fn note_down(
        self: &Arc<Self>,
        before: Arc<HashRing>,
        host: SocketAddr,
        incarnation: u64,
    ) {
        let mut fence = self.fence.lock();
        self.depart(&mut fence, host, Some(incarnation), Some(before.clone()));
        fence.fence_owners_of(before);
    }

    /// `identity`'s entry names `host`, which this node no longer counts alive, and
    /// the entry was still here: the membership task has not handled that Down yet
    /// (it would have dropped the entry and fenced the identity). Fence it now: the
    /// host may be the minority side of a partition, still hosting.
    pub(crate) fn fence_entry_of_dead_host(
        self: &Arc<Self>,
        identity: &Identity,
        host: SocketAddr,
    ) {
        let mut fence = self.fence.lock();
        self.depart(&mut fence, host, None, None);
        if !fence.recorded.contains_key(identity) {
            fence.record(identity.clone(), host);
        }
    }

    /// Notes the current ring for [`Fence::seen`] (every lookup does, so a placement
    /// compares with a recent one): members gone since the last look fence the
    /// identities they owned, even before the membership task gets to
    /// [`Runtime::note_down`].
    pub(crate) fn note_ring_seen(self: &Arc<Self>) {
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
            let gone: Vec<_> = seen
                .nodes()
                .filter(|(node, _)| !ring.contains(node.addr))
                .map(|(node, _)| (node.addr, node.incarnation))
                .collect();
            if !gone.is_empty() {
                for (addr, incarnation) in gone {
                    self.depart(&mut fence, addr, Some(incarnation), Some(seen.clone()));
                }
                fence.fence_owners_of(seen);
            }
        }
    }

    /// How long a new activation of `identity` must wait (see [`Fence`]), and a
    /// receiver that changes when a departure is confirmed.
    pub(crate) fn placement_fence(
        self: &Arc<Self>,
        identity: &Identity,
    ) -> Option<(Wait, tokio::sync::watch::Receiver<u64>)> {
        self.note_ring_seen();
        let now = Instant::now();
        let mut fence = self.fence.lock();
        let wait = fence.until(identity, now, |host| self.members.is_alive(host))?;
        Some((wait, fence.confirmations.subscribe()))
    }
}

/// Asks the members, round after round, whether `host` is gone from their ring, until
/// a majority (this node included) says so; then fences its identities until one
/// lease length after the latest grant those members gave it. The majority is of the
/// ring with `host` in it, as `host` counts its lease's. Ends early if the address is
/// alive again: a new life holds it, so the departed process is gone (two cannot
/// listen on one address).
async fn confirm_departure(
    runtime: Weak<Runtime>,
    host: SocketAddr,
    ring_with_host: Option<Arc<HashRing>>,
) {
    loop {
        let Some(rt) = runtime.upgrade() else { return };
        if rt.members.is_alive(host) {
            rt.fence.lock().confirm(host, Instant::now());
            return;
        }
        let round = rt.lease.duration / 4;
        let began = Instant::now();
        if let Some(until) = departure_confirmed(&rt, host, ring_with_host.as_deref()).await {
            tracing::debug!(%host, wait = ?until.saturating_duration_since(Instant::now()), "departure confirmed by a majority");
            rt.fence.lock().confirm(host, until);
            return;
        }
        drop(rt);
        tokio::time::sleep_until(began + round.max(Duration::from_millis(10))).await;
    }
}

/// One confirmation round: once a majority of this node's ring plus `host` counts
/// `host` gone, until when its identities still wait: one lease length after the
/// latest moment (on this node's clock, never earlier than the truth) at which one
/// of them granted it a lease; `None` if no majority said so.
///
/// Why that bounds `host`'s lease: a renewal needs the grants of more than half the
/// ring, and the confirming members are the other half and more, so every renewal
/// that succeeded had a grant from one of them — given no later than that member's
/// last grant, and after the renewal round began. Its lease lapses one lease length
/// after the round began, so before one lease length after the latest last grant.
async fn departure_confirmed(
    rt: &Arc<Runtime>,
    host: SocketAddr,
    ring_with_host: Option<&HashRing>,
) -> Option<Instant> {
    // The members `host` may count: those of a ring it was in, those departed whose
    // departure still fences (gone from this node's ring, they may still grant it
    // from its side of a cut), and today's.
    let departed: Vec<SocketAddr> = rt.fence.lock().departures.keys().copied().collect();
    let mut others: Vec<SocketAddr> = rt
        .members
        .ring()
        .nodes()
        .chain(ring_with_host.into_iter().flat_map(HashRing::nodes))
        .map(|(node, _)| node.addr)
        .chain(departed)
        .filter(|addr| *addr != rt.me && *addr != host)
        .collect();
    others.sort_unstable();
    others.dedup();
    // The ring is this node, the others and `host`; `host` counts itself in its
    // renewals, so they need the grants of `members / 2` others, and
    // `members - members / 2` confirming members meet every such set.
    let members = others.len() + 2;
    let need = members - members / 2;
    let granted_at = |since_us: u64, now: Instant| now.checked_sub(Duration::from_micros(since_us));
    let Reply::Count(mine) = rt.answer_departed(host) else {
        return None;
    };
    // The latest grant seen so far (`None`: none, or one before this clock began).
    let mut latest = granted_at(mine, Instant::now());
    let until =
        |latest: Option<Instant>| latest.map_or_else(Instant::now, |t| t + rt.lease.duration);
    let mut confirmed = 1;
    if confirmed >= need {
        return Some(until(latest));
    }
    let wait = rt.lease.duration / 2;
    let mut answers: FuturesUnordered<_> = others
        .into_iter()
        .map(|addr| {
            rt.rpc
                .call_within(rt, addr, Request::Departed { host }, wait)
        })
        .collect();
    while let Some(answer) = answers.next().await {
        if let Ok(Reply::Count(since_us)) = answer {
            // Received now, so granted no later than `since_us` before now.
            latest = latest.max(granted_at(since_us, Instant::now()));
            confirmed += 1;
            if confirmed >= need {
                return Some(until(latest));
            }
        }
    }
    None
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
    /// wait for the first departure: unconfirmed, then until its deadline.
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
        let now = Instant::now();
        let first_until = now + Duration::from_secs(1);
        let second_until = now + Duration::from_millis(1200);
        let mut fence = Fence::default();
        assert!(fence.depart(first, Some(1), now, false));
        fence.fence_owners_of(before_first);
        assert!(fence.depart(second, Some(1), now, false));
        fence.fence_owners_of(before_second);
        let alive = |host: SocketAddr| host != first && host != second;
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Unconfirmed));
        fence.confirm(second, second_until);
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Unconfirmed));
        fence.confirm(first, first_until);
        assert_eq!(
            fence.until(&identity, now, alive),
            Some(Wait::Until(first_until))
        );
        assert_eq!(fence.until(&identity, first_until, alive), None);
        // The first departure is forgotten once passed, the second not yet (and both
        // rings name the second member as an owner).
        assert!(!fence.departures.contains_key(&first));
        assert!(fence.departures.contains_key(&second));
        assert_eq!(fence.owners.len(), 2);
        assert_eq!(fence.until(&identity, second_until, alive), None);
        assert!(fence.departures.is_empty());
        assert!(fence.owners.is_empty());
    }

    /// A recorded identity waits for its host's departure to be confirmed, then until
    /// the confirmation's deadline, and is forgotten after it.
    #[test]
    fn a_recorded_identity_waits_for_the_confirmation_then_is_forgotten() {
        let identity = Identity::new("test.Counter", "k");
        let host = SocketAddr::from(([127, 0, 0, 1], 7001));
        let now = Instant::now();
        let until = now + Duration::from_secs(1);
        let mut fence = Fence::default();
        let confirmations = fence.confirmations.subscribe();
        assert!(fence.depart(host, None, now, false));
        fence.record(identity.clone(), host);
        let alive = |_: SocketAddr| true;
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Unconfirmed));
        assert!(!confirmations.has_changed().expect("sender alive"));
        fence.confirm(host, until);
        assert!(confirmations.has_changed().expect("sender alive"));
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Until(until)));
        assert_eq!(fence.until(&identity, until, alive), None);
        assert!(fence.recorded.is_empty());
        assert!(fence.departures.is_empty());
    }

    /// A confirmed departure still fences until `down_margin` after it was noted.
    #[test]
    fn a_confirmed_departure_waits_out_the_margin_too() {
        let host = SocketAddr::from(([127, 0, 0, 1], 7001));
        let now = Instant::now();
        let (confirmed, margin) = (
            now + Duration::from_millis(200),
            now + Duration::from_secs(1),
        );
        let mut fence = Fence::default();
        assert!(fence.depart(host, Some(1), margin, false));
        fence.confirm(host, confirmed);
        assert_eq!(fence.wait_for(host, now), Some(Wait::Until(margin)));
        fence.confirm(host, now + Duration::from_secs(2));
        assert_eq!(
            fence.wait_for(host, now),
            Some(Wait::Until(now + Duration::from_secs(2)))
        );
    }

    /// A member that departed before it said it re-registered holds back every
    /// placement, not only those of identities it held or owned, until its departure
    /// passes; one that had said so holds back none of them.
    #[test]
    fn an_unsettled_departure_fences_every_identity() {
        let (unsettled, settled) = (
            SocketAddr::from(([127, 0, 0, 1], 7001)),
            SocketAddr::from(([127, 0, 0, 1], 7002)),
        );
        let identity = Identity::new("test.Counter", "anything");
        let now = Instant::now();
        let until = now + Duration::from_secs(1);
        let alive = |host: SocketAddr| host != unsettled && host != settled;
        let mut fence = Fence::default();
        assert!(fence.depart(settled, Some(1), now, false));
        assert_eq!(fence.until(&identity, now, alive), None);
        assert!(fence.depart(unsettled, Some(1), now, true));
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Unconfirmed));
        fence.confirm(unsettled, until);
        assert_eq!(fence.until(&identity, now, alive), Some(Wait::Until(until)));
        assert_eq!(fence.until(&identity, until, alive), None);
    }

    /// The same departure noted twice (by the Down, by an entry on the dead host) is
    /// confirmed once; a later life's departure is confirmed again, even while the
    /// earlier one still fences.
    #[test]
    fn a_later_life_departing_is_confirmed_again() {
        let host = SocketAddr::from(([127, 0, 0, 1], 7001));
        let now = Instant::now();
        let mut fence = Fence::default();
        assert!(fence.depart(host, None, now, false));
        assert!(!fence.depart(host, Some(3), now, false));
        assert!(!fence.depart(host, Some(3), now, false));
        fence.confirm(host, now + Duration::from_secs(1));
        assert!(!fence.depart(host, None, now, false));
        assert!(fence.depart(host, Some(4), now, false));
        assert_eq!(fence.wait_for(host, now), Some(Wait::Unconfirmed));
    }
}
