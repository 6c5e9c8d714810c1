//! Downing: keep-majority (Akka's split-brain resolver strategy), with Akka's handling
//! of indirectly connected nodes.
//!
//! The input is the [`Reachability`] table, every live member's suspicions as gossip
//! spread them. A member is *unreachable* in this node's view when at least one live
//! member suspects it. Nothing is decided until the picture has held still for
//! `stable_after`: the set of unreachable members (this node excepted: it knows it is
//! alive) and, when some members are indirectly connected, every single observation.
//! Then, in this order:
//!
//! 1. **Indirectly connected** members (observed as unreachable while observing others
//!    as unreachable: a cut link between nodes that still reach the rest) are resolved
//!    by downing the fewest of them that leave the rest clean
//!    ([`Reachability::resolve_indirectly_connected`]: most edges first, ties to the
//!    highest address), never a majority of the live members (exactly half only when
//!    the lowest address stays). A node that finds itself among them downs itself; the
//!    others mark them Down. Every node with the same table picks the same ones.
//! 2. **Keep-majority** on the observations that remain, over the members both sides
//!    count alike (`agreement.rs`: the members every member has seen, and the others it
//!    cannot reach): the side that can still see a majority of them (on a tie: the side
//!    holding the lowest address; the members downed in step 1 count on this side) marks
//!    each unreachable member Down if a quorum of observers suspects it; a node on the
//!    minority side marks itself Down and stops taking part — unless it is itself not
//!    yet seen by every member and its side would be the majority counting every live
//!    member: then it waits and downs no one.
//!
//! **A late member keeps the picture moving.** Detectors with different histories
//! suspect members that fell silent at the same moment at different times: on the
//! chaos bed a member that had rejoined 1.9 s before was suspected ~0.8 s after a cut,
//! two watched for minutes on a loaded machine ~1.8 and ~2.6 s after it. A side that
//! decided on the first suspicion alone counted the others as reachable: the minority
//! of that 2 | 3 partition marked the three Down one by one as each was suspected,
//! while the three marked the two Down, and when the partition healed every node
//! learned it was Down and the cluster was gone. So nothing is decided while a member
//! this node monitors is overdue ([`DOUBT_PHI`]) without yet being suspected: the clock
//! of `stable_after` starts again until it has answered or joined the unreachable set.

use std::collections::BTreeSet;
use std::time::Instant;

use super::NodeCore;
use crate::membership::{Member, MemberStatus, Reachability};
use crate::node_id::NodeId;

/// The phi at which a monitored member counts as overdue: its heartbeat is later than
/// nine in ten of its past intervals (plus the acceptable pause) would make it. Below
/// the suspicion threshold (8 by default): such a member may be suspected any moment.
pub(crate) const DOUBT_PHI: f64 = 1.0;

/// Whether the `reachable` members are a majority of the `counted` ones, or exactly
/// half holding the lowest address.
fn is_majority(counted: &BTreeSet<NodeId>, reachable: &BTreeSet<NodeId>) -> bool {
    let lowest_reachable = counted.first().is_some_and(|l| reachable.contains(l));
    2 * reachable.len() > counted.len()
        || (2 * reachable.len() == counted.len() && lowest_reachable)
}

impl NodeCore {
    /// Marks `row`'s life Down (a new version of the row, spread by gossip).
    pub(crate) fn mark_down(&mut self, mut row: Member) {
        row.status = MemberStatus::Down;
        row.version += 1;
        self.apply(row);
    }

    /// Keep-majority over every live member, as if all were agreed: what a node not
    /// yet agreed itself uses to tell a side that is short for want of it alone.
    fn majority_of_all_live(&self, unreachable: &BTreeSet<NodeId>) -> bool {
        let live = super::agreement::live_members(&self.table);
        let reachable = live.difference(unreachable).copied().collect();
        is_majority(&live, &reachable)
    }

    pub(crate) fn evaluate_downing(&mut self, now: Instant) {
        if !self.own_status().is_some_and(|s| s.is_live()) {
            return;
        }
        // Which members everyone has seen, worked out on every tick (a node's own view is
        // published the moment its live set changes).
        self.refresh_agreement();
        let reach = Reachability::from_table(&self.table);
        let unreachable: BTreeSet<NodeId> = reach
            .subjects()
            .into_iter()
            .filter(|s| *s != self.me)
            .collect();
        // A crash or a clean split settles once the unreachable set holds still (monitors
        // adding their votes does not restart the clock); indirectly connected members
        // are decided on the whole graph, so every edge must hold still.
        let edges = if reach.is_clean() {
            BTreeSet::new()
        } else {
            reach.edges().clone()
        };
        // A member this node watches that is overdue but suspected by no one yet may be
        // behind the same cut as the unreachable ones (see the module docs).
        let in_doubt = self.detectors.values().any(|(id, fd)| {
            *id != self.me && !unreachable.contains(id) && fd.phi(now) >= DOUBT_PHI
        });
        if unreachable != self.unreachable || edges != self.unreachable_edges || in_doubt {
            self.unreachable = unreachable;
            self.unreachable_edges = edges;
            self.unreachable_since = now;
            self.downing_refused = false;
        }
        if (self.unreachable.is_empty() && self.unreachable_edges.is_empty())
            || now.saturating_duration_since(self.unreachable_since) < self.cfg.downing.stable_after
        {
            return;
        }
        // Only members every member has seen count (see `agreement`).
        let (counted, _) = self.counted_members(&self.unreachable);
        let total = counted.len();
        let lowest = counted.first().copied();

        let (sacrificed, rest) = reach.resolve_indirectly_connected();
        if !sacrificed.is_empty() {
            let kept = counted.iter().filter(|id| !sacrificed.contains(id)).count();
            let keeps_lowest = lowest.is_some_and(|l| !sacrificed.contains(&l));
            if !(2 * kept > total || (2 * kept == total && keeps_lowest)) {
                if !self.downing_refused {
                    self.downing_refused = true;
                    tracing::warn!(
                        node = %self.me, ?sacrificed, total,
                        "indirectly connected members: resolving would down a majority; waiting"
                    );
                }
                return;
            }
            if sacrificed.contains(&self.me) {
                tracing::warn!(
                    node = %self.me, ?sacrificed,
                    "indirectly connected (a link to a member is cut): downing myself"
                );
                self.become_down(now);
                return;
            }
        }

        let unreachable: BTreeSet<NodeId> = rest
            .subjects()
            .into_iter()
            .filter(|s| *s != self.me)
            .collect();
        let (counted, reachable) = self.counted_members(&unreachable);
        if !is_majority(&counted, &reachable) {
            if !self.agreed.contains(&self.me) && self.majority_of_all_live(&unreachable) {
                // A life not every member has seen yet counts for no side, its own
                // included, so its side may fall short only for want of it: it downs no
                // one and leaves the decision to the members that do count (a host lease
                // needs grants from a majority of them, which a short side cannot give).
                // A rejoined node would otherwise go Down again
                // at the first suspicion it saw before the others published views
                // holding it. Short even counting every live member, it downs itself.
                if !self.downing_refused {
                    self.downing_refused = true;
                    tracing::info!(
                        node = %self.me, ?unreachable,
                        "not yet seen by every member: leaving the decision to those that were"
                    );
                }
                return;
            }
            let (reachable, total) = (reachable.len(), counted.len());
            tracing::warn!(
                node = %self.me, reachable, total,
                "minority side of a partition: downing myself"
            );
            self.become_down(now);
            return;
        }
        let k = self.cfg.monitored_successors;
        let quorum = self.cfg.downing.quorum.max(1);
        let confirmed = unreachable.into_iter().filter(|id| {
            let monitors = self.ring.predecessors(id.addr, k).len();
            rest.votes(*id) >= quorum.min(monitors).max(1)
        });
        let to_down: Vec<NodeId> = sacrificed.iter().copied().chain(confirmed).collect();
        for id in to_down {
            let Some(row) = self.table.get(&id.addr).filter(|m| m.id == id).cloned() else {
                continue;
            };
            if sacrificed.contains(&id) {
                tracing::info!(node = %self.me, down = %row.id, "marking indirectly connected member Down");
            } else {
                tracing::info!(node = %self.me, down = %row.id, "marking unreachable member Down");
            }
            self.mark_down(row);
        }
    }
}
