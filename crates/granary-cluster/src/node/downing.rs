//! Keep-majority downing (Akka's split-brain resolver strategy).
//!
//! A member is *unreachable* in this node's view when at least one live member suspects
//! it. Once that set has not changed for `stable_after`, the side that can still see a
//! majority of the live members (on a tie: the side holding the lowest address) marks
//! each unreachable member Down if a quorum of its monitors suspects it; a node on the
//! minority side marks itself Down and stops taking part.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::NodeCore;
use crate::membership::{Member, MemberStatus};
use crate::node_id::NodeId;

impl NodeCore {
    pub(crate) fn evaluate_downing(&mut self, now: Instant) {
        if !self.own_status().is_some_and(|s| s.is_live()) {
            return;
        }
        let live: Vec<&Member> = self.table.iter().filter(|m| m.status.is_live()).collect();
        let mut votes: BTreeMap<NodeId, usize> = BTreeMap::new();
        for voter in &live {
            for suspect in &voter.suspects {
                if *suspect == voter.id || *suspect == self.me {
                    continue;
                }
                if live.iter().any(|m| m.id == *suspect) {
                    *votes.entry(*suspect).or_default() += 1;
                }
            }
        }
        let unreachable: BTreeSet<NodeId> = votes.keys().copied().collect();
        if unreachable != self.unreachable {
            self.unreachable = unreachable;
            self.unreachable_since = now;
        }
        if self.unreachable.is_empty()
            || now.saturating_duration_since(self.unreachable_since) < self.cfg.downing.stable_after
        {
            return;
        }
        let total = live.len();
        let reachable = total - self.unreachable.len();
        let lowest = live.iter().map(|m| m.id).min();
        let lowest_reachable = lowest.is_some_and(|l| !self.unreachable.contains(&l));
        let majority = 2 * reachable > total || (2 * reachable == total && lowest_reachable);
        if !majority {
            tracing::warn!(
                node = %self.me, reachable, total,
                "minority side of a partition: downing myself"
            );
            self.become_down(now);
            return;
        }
        let k = self.cfg.monitored_successors;
        let quorum = self.cfg.downing.quorum.max(1);
        let to_down: Vec<Member> = self
            .unreachable
            .iter()
            .filter(|id| {
                let monitors = self.ring.predecessors(id.addr, k).len();
                votes[*id] >= quorum.min(monitors).max(1)
            })
            .filter_map(|id| self.table.get(&id.addr).cloned())
            .collect();
        for mut row in to_down {
            tracing::info!(node = %self.me, down = %row.id, "marking unreachable member Down");
            row.status = MemberStatus::Down;
            row.version += 1;
            self.apply(row);
        }
    }
}
