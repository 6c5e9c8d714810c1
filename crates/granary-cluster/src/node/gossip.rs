//! Gossip: recent deltas to a few peers per round, biased toward ring neighbours, plus
//! digest-based anti-entropy when tables differ and no deltas are flowing.

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

use super::NodeCore;
use crate::membership::{DigestEntry, Member};
use crate::message::ClusterMessage;
use crate::node_id::NodeId;

impl NodeCore {
    fn refresh_peers(&mut self) {
        if !self.peers_dirty {
            return;
        }
        let me = self.me.addr;
        self.peers = self
            .table
            .iter()
            .filter(|m| m.status.is_live() && m.id.addr != me)
            .map(|m| m.id.addr)
            .collect();
        self.peers_dirty = false;
    }

    /// How often each node re-sends a changed row: multiplier × ⌈log2(N + 1)⌉.
    pub(super) fn retransmit_limit(&self) -> u32 {
        let n = self.peers.len() as u32 + 1;
        let log = 32 - n.leading_zeros();
        self.cfg.retransmit_multiplier.max(1) * log.max(1)
    }

    /// One ring neighbour (taking turns) and random live peers up to the fanout.
    fn pick_targets(&mut self) -> Vec<SocketAddr> {
        let fanout = self.cfg.gossip_fanout.max(1);
        if let Some(links) = &self.links {
            // An overlay: only its connections, at random (membership still reaches
            // every member: each one re-spreads what it learns to its own links).
            let mut linked: Vec<SocketAddr> = (self.peers.iter())
                .filter(|p| links.contains(p))
                .copied()
                .collect();
            while linked.len() > fanout {
                let drop = self.rng.random_range(0..linked.len());
                linked.swap_remove(drop);
            }
            return linked;
        }
        if self.peers.len() <= fanout {
            return self.peers.clone();
        }
        let mut targets = Vec::with_capacity(fanout);
        let k = self.cfg.monitored_successors.max(1);
        let mut neighbours = self.ring.successors(self.me.addr, k);
        neighbours.extend(self.ring.predecessors(self.me.addr, k));
        if !neighbours.is_empty() {
            let pick = neighbours[self.neighbour_cursor % neighbours.len()];
            self.neighbour_cursor = self.neighbour_cursor.wrapping_add(1);
            targets.push(pick.addr);
        }
        while targets.len() < fanout {
            let pick = self.peers[self.rng.random_range(0..self.peers.len())];
            if !targets.contains(&pick) {
                targets.push(pick);
            }
        }
        targets
    }

    /// The least-sent recent rows, counting this send.
    fn pick_deltas(&mut self, limit: u32) -> Vec<Member> {
        let mut order: Vec<(u32, SocketAddr)> = self.recent.iter().map(|(a, c)| (*c, *a)).collect();
        let max = self.cfg.max_deltas_per_message.max(1);
        if order.len() > max {
            order.select_nth_unstable(max - 1);
            order.truncate(max);
        }
        let mut deltas = Vec::with_capacity(order.len());
        for (count, addr) in order {
            if let Some(row) = self.table.get(&addr) {
                deltas.push(row.clone());
            }
            if count + 1 >= limit {
                self.recent.remove(&addr);
            } else {
                self.recent.insert(addr, count + 1);
            }
        }
        deltas
    }

    /// One gossip round.
    pub(crate) fn gossip_round(&mut self) {
        self.synced_this_round = false;
        self.refresh_peers();
        if self.peers.is_empty() {
            self.recent.clear();
            return;
        }
        let limit = self.retransmit_limit();
        for target in self.pick_targets() {
            let deltas = self.pick_deltas(limit);
            let state_hash = self.table.state_hash();
            self.send(target, ClusterMessage::Gossip { state_hash, deltas });
        }
    }

    pub(crate) fn on_gossip(
        &mut self,
        now: Instant,
        from: NodeId,
        state_hash: u64,
        deltas: Vec<Member>,
    ) {
        let mut changed = false;
        for row in deltas {
            changed |= self.apply(row);
        }
        self.check_self(now);
        if !changed
            && state_hash != self.table.state_hash()
            && self.recent.is_empty()
            && !self.synced_this_round
        {
            self.synced_this_round = true;
            let digest = self.table.digest();
            self.send(from.addr, ClusterMessage::SyncDigest { digest });
        }
    }

    pub(crate) fn on_sync_digest(&mut self, from: NodeId, digest: Vec<DigestEntry>) {
        let (rows, wanted) = self.table.diff(&digest);
        if !rows.is_empty() || !wanted.is_empty() {
            self.send(from.addr, ClusterMessage::SyncRows { rows, wanted });
        }
    }

    pub(crate) fn on_sync_rows(
        &mut self,
        now: Instant,
        from: NodeId,
        rows: Vec<Member>,
        wanted: Vec<SocketAddr>,
    ) {
        for row in rows {
            self.apply(row);
        }
        self.check_self(now);
        if !wanted.is_empty() {
            let rows: Vec<Member> = wanted
                .iter()
                .filter_map(|a| self.table.get(a).cloned())
                .collect();
            if !rows.is_empty() {
                self.send(
                    from.addr,
                    ClusterMessage::SyncRows {
                        rows,
                        wanted: Vec::new(),
                    },
                );
            }
        }
    }
}
