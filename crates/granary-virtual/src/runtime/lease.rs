//! The host lease: a member's activations handle messages only while a majority of
//! the Up members (this node included) confirmed, within the last `duration`, that
//! they still count this node as Up.
//!
//! Why: on the minority side of a partition, or on a node the others declared Down
//! while it was too slow to notice, activations must stop handling messages before
//! the majority places the same identities again — whatever this node's own failure
//! detector and scheduler are doing. The majority places such an identity no sooner
//! than `down_margin` after the Down, and the Down comes after the partition plus
//! failure detection plus `stable_after`. A lease is extended from the moment its
//! renewal round *began*, and no round that began after the partition can reach a
//! majority, so the lease lapses at most `duration` after the partition; with
//! `duration ≤ down_margin` that is before the majority places anything. Each
//! activation reads the lease's clock before each message (granary-core's
//! `Actor::admits`), so a late timer or a busy worker cannot stretch it. A refused
//! request fails with "actor stopped" and the caller's retry finds the identity
//! again once the lease is renewed or the identity lives elsewhere.
//!
//! Grants come from the members' views: a member confirms a node only while both
//! are Up in its view. Renewals run every `duration / 4`, each round on its own
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
        let began = Instant::now();
        let mut granted = 1;
        if granted >= need {
            self.lease.extend_from(began);
            return true;
        }
        let wait = self.lease.duration / 2;
        let mut answers: FuturesUnordered<_> = others
            .into_iter()
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
        Reply::Bool(self.members.is_alive(self.me) && self.members.is_alive(from))
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
