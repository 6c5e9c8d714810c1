//! Pruning Down and Removed rows after [`ClusterConfig::tombstone_ttl`], so the table
//! does not grow with churn.
//!
//! Each node times the tombstones it holds from the first heartbeat tick that saw them
//! and prunes each one `tombstone_ttl` later. A pruned life is remembered (address and
//! incarnation only) for another `tombstone_ttl`, during which gossip carrying that life
//! or an older one is ignored: peers that have not pruned yet cannot resurrect the row,
//! and by the time the memory expires every node has pruned it too. A join request is
//! the node itself asking again and is always heard (see `on_join_request`).
//!
//! [`ClusterConfig::tombstone_ttl`]: crate::ClusterConfig::tombstone_ttl

use std::net::SocketAddr;
use std::time::Instant;

use super::NodeCore;
use crate::membership::Member;

impl NodeCore {
    /// Times new tombstones, prunes expired ones and expires old memories of pruned lives.
    pub(crate) fn sweep_tombstones(&mut self, now: Instant) {
        let ttl = self.cfg.tombstone_ttl;
        let me = self.me.addr;
        let tombstones: Vec<SocketAddr> = self
            .table
            .iter()
            .filter(|m| !m.status.is_live() && m.id.addr != me)
            .map(|m| m.id.addr)
            .collect();
        self.tombstones.retain(|addr, _| tombstones.contains(addr));
        for addr in tombstones {
            let since = *self.tombstones.entry(addr).or_insert(now);
            if now.saturating_duration_since(since) >= ttl {
                self.prune(addr, now);
            }
        }
        self.forgotten
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
    }

    fn prune(&mut self, addr: SocketAddr, now: Instant) {
        self.tombstones.remove(&addr);
        let Some(row) = self.table.remove(&addr) else {
            return;
        };
        tracing::debug!(node = %self.me, pruned = %row.id, status = ?row.status, "tombstone pruned");
        self.forgotten.insert(addr, (row.id.incarnation, now));
        self.recent.remove(&addr);
        self.peers_dirty = true;
        self.hub.lock().forget(&addr);
    }

    /// True when `row` is a pruned life (or an older one) that gossip must not bring back.
    pub(crate) fn is_forgotten(&self, row: &Member) -> bool {
        self.forgotten
            .get(&row.id.addr)
            .is_some_and(|(incarnation, _)| row.id.incarnation <= *incarnation)
    }
}
