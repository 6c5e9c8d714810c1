//! Where a CRDT replicated to a subset of the members lives: its holders on the ring,
//! and the hand-over of its state when they change.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use granary_cluster::HashRing;

/// The placement of one CRDT opened with `replicas: Some(n)`.
pub(crate) struct Placement {
    pub(crate) replicas: usize,
    /// The holders as last computed: the first `replicas` members of the ring's
    /// preference list for the name. Empty until the ring lists anyone.
    pub(crate) holders: BTreeSet<SocketAddr>,
    /// This node is one of them.
    pub(crate) holding: bool,
    /// Peers owed our full state (they became holders while we held it, or we stopped
    /// holding it), with when it was last sent; removed when they acknowledge it.
    pub(crate) handoff: HashMap<SocketAddr, Option<Instant>>,
}

impl Placement {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            replicas: replicas.max(1),
            holders: BTreeSet::new(),
            holding: false,
            handoff: HashMap::new(),
        }
    }

    /// Recomputes the holders of `key` from `ring`. `has_state` says whether this node
    /// has anything of the CRDT (a holder always counts as having it). When the holders
    /// change, a node with state owes it to every new holder, and to every holder when it
    /// stops being one itself. An empty ring changes nothing (this node is not Up yet or
    /// sees nobody): better keep the last holders than drop state.
    pub(crate) fn refresh(&mut self, key: &str, ring: &HashRing, me: SocketAddr, has_state: bool) {
        let holders: BTreeSet<SocketAddr> = ring
            .preference_list(key.as_bytes(), self.replicas)
            .into_iter()
            .map(|node| node.addr)
            .collect();
        if holders.is_empty() || holders == self.holders {
            return;
        }
        let holding = holders.contains(&me);
        if self.holding || has_state {
            for &addr in &holders {
                if addr != me && (!holding || !self.holders.contains(&addr)) {
                    self.handoff.entry(addr).or_insert(None);
                }
            }
        }
        self.handoff.retain(|addr, _| holders.contains(addr));
        self.holding = holding;
        self.holders = holders;
    }

    /// True when `addr` holds the CRDT.
    pub(crate) fn holds(&self, addr: &SocketAddr) -> bool {
        self.holders.contains(addr)
    }
}
