//! The host lease: a member's activations handle messages only while a majority of
//! the Up members (this node included) confirmed, within the last `duration`, that
//! they still count this node as Up.
//!
//! Why: on the minority side of a partition, on a node the others declared Down
//! while it was too slow to notice, or on one behind a one-way cut that still
//! reaches most members, activations must stop handling messages before the
//! majority places the same identities again — whatever this node's own failure
//! detector and scheduler are doing. A lease is extended from the moment its renewal
//! round *began*, and a member grants it only while the node is in its ring, and
//! records when it did ([`LeaseGrants`]). An owner places a departed node's
//! identities only after a majority of the ring has answered that the node is gone
//! for them, and one `duration` after the latest grant they report (`fence.rs`):
//! every round that succeeded had a grant from one of them, so began before it, and
//! the lease has lapsed by then. (With a full partition the round also cannot reach
//! a majority after the partition, so the lease lapses at most `duration` after it.)
//! Each activation reads the lease's clock before each
//! message (granary-core's `Actor::admits`), so a late timer or a busy worker cannot
//! stretch it. A refused request fails with "actor stopped" and the caller's retry
//! finds the identity again once the lease is renewed or the identity lives
//! elsewhere.
//!
//! Grants come from the members' views: a member confirms a node only while both
//! are Up in its view. Only the grants of members every member is known to have seen
//! count (`Cluster::agreed_members`; a node that forms a cluster agrees with itself at
//! once, a joiner counts the members agreed in its own view as their views reach it): a
//! member admitted on this node's side after a partition formed is unknown to the
//! other side, and counting its grant let the two sides' majorities miss each other
//! (chaos seed 2940). Renewals run every `duration / 4`, each round on its own
//! task, so a slow or dead member (not yet Down) never delays the next round.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::Runtime;
use crate::protocol::{Reply, Request};

/// Until when this node may let its activations handle messages.
pub(crate) struct HostLease {
    base: Instant,
    /// Nanoseconds after `base` at which the lease lapses; 0 = never granted.
    until: AtomicU64,
    /// How long a renewal stays valid, from the start of its round.
    pub(crate) duration: Duration,
}

impl HostLease {
    pub(crate) fn new(duration: Duration) -> Self {
        Self {
            base: Instant::now(),
            until: AtomicU64::new(0),
            duration,
        }
    }

    fn nanos_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the lease holds at this moment.
    pub(crate) fn is_valid(&self) -> bool {
        let until = self.until.load(Ordering::Acquire);
        until != 0 && self.nanos_at(Instant::now()) < until
    }

    /// Whether the lease holds for a quarter of its length more: what a state write
    /// needs to start, so that it lands before an owner can place the identity
    /// again (one lease after the last grant) unless the store takes that long.
    /// Renewals run every quarter, so a node whose renewals succeed stays above it.
    pub(crate) fn holds_for_a_write(&self) -> bool {
        self.remaining()
            .is_some_and(|left| left >= self.duration / 4)
    }

    /// How long the lease still holds if no renewal succeeds (`None`: it does not).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let until = self.until.load(Ordering::Acquire);
        let now = self.nanos_at(Instant::now());
        (until != 0 && now < until).then(|| Duration::from_nanos(until - now))
    }

    /// A majority confirmed this node in a round that began at `began`.
    fn extend_from(&self, began: Instant) {
        // +1 keeps a lease granted at `base` itself distinct from "never granted".
        let until = self.nanos_at(began + self.duration).saturating_add(1);
        self.until.fetch_max(until, Ordering::AcqRel);
    }
}

impl Runtime {
    /// One renewal round: asks every other Up member to confirm this node, and
    /// extends the lease from the moment the round began once a majority of the
    /// ring (this node included) has. Returns whether it did.
    pub(crate) async fn renew_lease(self: &Arc<Self>) -> bool {
        let ring = self.members.ring();
        if !ring.contains(self.me) {
            return false;
        }
        let others: Vec<SocketAddr> = ring
            .nodes()
            .map(|(node, _)| node.addr)
            .filter(|addr| *addr != self.me)
            .collect();
        let members = others.len() + 1;
        let need = members / 2 + 1;
        // Only members everyone has seen vote: one admitted on this side of a partition
        // after it formed is unknown to the other side, whose quorum cannot meet it.
        let voters = self.members.grant_voters();
        let votes = |addr: &SocketAddr| voters.as_ref().is_none_or(|v| v.contains(addr));
        let began = Instant::now();
        let mut granted = usize::from(votes(&self.me));
        if granted >= need {
            self.lease.extend_from(began);
            return true;
        }
        let wait = self.lease.duration / 2;
        let mut answers: FuturesUnordered<_> = others
            .into_iter()
            .filter(|addr| votes(addr))
            .map(|addr| self.rpc.call_within(self, addr, Request::Lease, wait))
            .collect();
        while let Some(answer) = answers.next().await {
            if matches!(answer, Ok(Reply::Bool(true))) {
                granted += 1;
                if granted == need {
                    self.lease.extend_from(began);
                }
            }
        }
        granted >= need
    }

    /// Serves a renewal: confirms `from` while both it and this node are Up here.
    pub(crate) fn grant_lease(&self, from: SocketAddr) -> Reply {
        Reply::Bool(
            self.grants
                .grant(from, |addr| self.members.is_alive(addr), self.me),
        )
    }

    /// Serves a departure question (`fence.rs`): `host` is still in this node's ring
    /// (`Bool(false)`), or it is gone and this node last granted it a lease this many
    /// microseconds ago (`Count`; `u64::MAX` if never).
    pub(crate) fn answer_departed(&self, host: SocketAddr) -> Reply {
        match self
            .grants
            .departed(host, |addr| self.members.is_alive(addr))
        {
            None => Reply::Bool(false),
            Some(since) => Reply::Count(u64::try_from(since.as_micros()).unwrap_or(u64::MAX)),
        }
    }
}

/// When this node last granted each member a lease renewal. A member gone from the
/// ring is granted nothing more; what this node answers about it is how long ago
/// its last grant was, and the check of the ring and the record of a grant happen
/// under one lock, so no grant can follow an answer that the member is gone.
#[derive(Default)]
pub(crate) struct LeaseGrants {
    last: parking_lot::Mutex<std::collections::HashMap<SocketAddr, Instant>>,
}

impl LeaseGrants {
    /// Grants `from` a renewal if it and `me` are alive, and records when.
    fn grant(
        &self,
        from: SocketAddr,
        is_alive: impl Fn(SocketAddr) -> bool,
        me: SocketAddr,
    ) -> bool {
        let mut last = self.last.lock();
        if !(is_alive(me) && is_alive(from)) {
            return false;
        }
        if last.len() >= 64 && !last.contains_key(&from) {
            // Forget members gone from the ring, whose grants no one asks about
            // once their departure is confirmed (the table stays about ring-sized).
            let now = Instant::now();
            last.retain(|addr, at| {
                is_alive(*addr) || now.duration_since(*at) < Duration::from_secs(60)
            });
        }
        last.insert(from, Instant::now());
        true
    }

    /// `None` while `host` is alive; else how long ago it was last granted a
    /// renewal here (`Duration::MAX` if never).
    fn departed(
        &self,
        host: SocketAddr,
        is_alive: impl Fn(SocketAddr) -> bool,
    ) -> Option<Duration> {
        let last = self.last.lock();
        if is_alive(host) {
            return None;
        }
        Some(last.get(&host).map_or(Duration::MAX, Instant::elapsed))
    }
}

/// Renews the lease every `duration / 4` for as long as the runtime lives.
pub(crate) async fn renew_loop(runtime: std::sync::Weak<Runtime>) {
    let Some(period) = runtime.upgrade().map(|rt| rt.lease.duration / 4) else {
        return;
    };
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        tokio::spawn(async move {
            rt.renew_lease().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A member answers "gone" only once the node left its ring, with the age of its
    /// last grant, and grants nothing after that.
    #[test]
    fn no_grant_follows_an_answer_that_the_node_is_gone() {
        let (me, node, stranger) = (
            SocketAddr::from(([127, 0, 0, 1], 7001)),
            SocketAddr::from(([127, 0, 0, 1], 7002)),
            SocketAddr::from(([127, 0, 0, 1], 7003)),
        );
        let in_ring = Cell::new(true);
        let alive = |addr: SocketAddr| addr == me || (addr == node && in_ring.get());
        let grants = LeaseGrants::default();
        assert_eq!(grants.departed(node, alive), None);
        assert!(grants.grant(node, alive, me));
        assert_eq!(grants.departed(node, alive), None);
        in_ring.set(false);
        let since = grants.departed(node, alive).expect("gone");
        assert!(since < Duration::from_secs(5), "{since:?}");
        assert!(!grants.grant(node, alive, me));
        assert!(grants.departed(node, alive).expect("gone") >= since);
        // Never granted: as old as can be.
        assert_eq!(grants.departed(stranger, alive), Some(Duration::MAX));
    }

    /// A state write needs a quarter of the lease left; admitting a message needs
    /// only the lease.
    #[test]
    fn a_write_needs_a_quarter_of_the_lease_left() {
        let lease = HostLease::new(Duration::from_secs(8));
        assert!(!lease.holds_for_a_write(), "never granted");
        lease.extend_from(Instant::now());
        assert!(lease.is_valid() && lease.holds_for_a_write());
        let lease = HostLease::new(Duration::from_secs(8));
        // A round that began 7 s ago: 1 s left, under a quarter (2 s).
        lease.extend_from(Instant::now() - Duration::from_secs(7));
        assert!(lease.is_valid(), "still admits messages");
        assert!(!lease.holds_for_a_write(), "but no longer writes");
    }
}
