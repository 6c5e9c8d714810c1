//! Failure detection sharded on the ring: every Up node probes its `k` nearest ring
//! successors that no one suspects and the suspected ones between them (and the Joining
//! nodes whose future place follows it, and the members that suspect it); with an
//! overlay other than the full mesh, it probes the overlay's connections instead (its
//! active view on peer-to-peer), the members that suspect it and those it suspects, and
//! records the ones whose phi crossed the threshold as suspects in its own row, which
//! gossip carries to everyone as the node's votes and observations (the
//! [`crate::Reachability`] table).

use std::collections::BTreeSet;
use std::time::Instant;

use super::NodeCore;
use crate::membership::{MemberStatus, Reachability};
use crate::message::ClusterMessage;
use crate::node_id::NodeId;
use crate::phi::PhiAccrualDetector;

impl NodeCore {
    pub(crate) fn probe_successors(&mut self, now: Instant) {
        let up = self.own_status() == Some(MemberStatus::Up);
        let targets = if up && self.links.is_some() {
            self.overlay_targets()
        } else if up {
            let k = self.cfg.monitored_successors;
            let mut targets = self.monitored_successors(k);
            // A Joining node is not on the ring yet, but it is in the table and counts
            // as live: the nodes before its future place watch it, so one that crashes
            // before it is Up still goes Down instead of staying Joining forever.
            let joining = self.table.iter().filter(|m| {
                m.status == MemberStatus::Joining
                    && m.id.addr != self.me.addr
                    && self
                        .ring
                        .predecessors(m.id.addr, k)
                        .iter()
                        .any(|p| p.addr == self.me.addr)
            });
            targets.extend(joining.map(|m| m.id));
            // A live member that suspects this node is probed back. A cut link then shows
            // from both ends even where the ring has only one end watch the other, so the
            // downing rule sees the two nodes as indirectly connected instead of counting
            // one lone vote. A crashed node suspects no one new, and across a clean split
            // the suspicions never arrive, so neither case gets extra probes.
            let me = self.me;
            let suspecters: Vec<NodeId> = self
                .table
                .iter()
                .filter(|m| m.status.is_live() && m.id != me && m.suspects.contains(&me))
                .map(|m| m.id)
                .filter(|id| !targets.contains(id))
                .collect();
            targets.extend(suspecters);
            targets
        } else {
            Vec::new()
        };
        self.detectors.retain(|_, (id, _)| targets.contains(id));
        for t in &targets {
            let phi = self.cfg.phi.clone();
            self.detectors
                .entry(t.addr)
                .or_insert_with(|| (*t, PhiAccrualDetector::new(phi, now)));
        }
        self.hb_seq += 1;
        let seq = self.hb_seq;
        for t in &targets {
            self.send(t.addr, ClusterMessage::Heartbeat { seq });
        }
        let suspects: BTreeSet<NodeId> = self
            .detectors
            .values()
            .filter(|(_, fd)| !fd.is_available(now))
            .map(|(id, _)| *id)
            .collect();
        if self.own_row().is_some_and(|r| r.suspects != suspects) {
            if !suspects.is_empty() {
                tracing::debug!(node = %self.me, ?suspects, "suspicions changed");
            }
            let new = self
                .own_row()
                .map_or(0, |r| suspects.difference(&r.suspects).count());
            metrics::counter!("granary_cluster_suspicions_total", "node" => self.me.addr.to_string()).increment(new as u64);
            self.update_own(|row| row.suspects = suspects);
        }
    }

    /// The ring successors this node watches: the `k` nearest that no live member
    /// suspects, and the suspected ones between them (Akka's heartbeat ring). A member
    /// stays watched while it is suspected, so the suspicion lasts until it is Down or
    /// answers; the next one takes its place as a watched reachable member, so a side cut
    /// off from several members learns of each from its own detectors, and the downing
    /// rule's wait for overdue members ([`super::downing::DOUBT_PHI`]) sees them all.
    fn monitored_successors(&self, k: usize) -> Vec<NodeId> {
        let unreachable = Reachability::from_table(&self.table).subjects();
        let mut targets = Vec::new();
        let mut reachable = 0;
        for successor in self.ring.successors(self.me.addr, usize::MAX) {
            if reachable == k {
                break;
            }
            if !unreachable.contains(&successor) {
                reachable += 1;
            }
            targets.push(successor);
        }
        targets
    }

    /// With an overlay: its connections (the active view on peer-to-peer), whoever
    /// suspects this node (probed back, as on the ring), and whoever this node suspects
    /// until it is Down: the overlay drops a silent member from its connections on its
    /// own, and the suspicion must outlive that to count as a vote.
    fn overlay_targets(&self) -> Vec<NodeId> {
        let me = self.me;
        let links = self.links.as_deref().unwrap_or_default();
        let suspected = self.own_row().map(|r| &r.suspects);
        (self.table.iter())
            .filter(|m| m.status.is_live() && m.id != me)
            .filter(|m| {
                links.contains(&m.id.addr)
                    || m.suspects.contains(&me)
                    || suspected.is_some_and(|s| s.contains(&m.id))
            })
            .map(|m| m.id)
            .collect()
    }

    pub(crate) fn on_heartbeat_ack(&mut self, now: Instant, from: NodeId) {
        if let Some((id, fd)) = self.detectors.get_mut(&from.addr) {
            if *id == from {
                fd.heartbeat(now);
            }
        }
    }
}
