//! Consistent hash ring with per-node virtual nodes (vnodes).
//!
//! Every node is placed on a 64-bit ring at `vnodes` points; a key belongs to the first
//! point clockwise from the key's hash. A node with twice the vnodes takes about twice the
//! share. Positions use xxh3 (the `xxhash-rust` crate) over the node's address and the
//! vnode index: unlike `std`'s `DefaultHasher`, xxh3 is specified and identical on every
//! platform and Rust version, which matters because all members must compute the same
//! ring. The incarnation is *not* hashed, so a node that rejoins takes back its old ranges.
//!
//! The ring also defines the monitoring order: nodes sorted by their first vnode's
//! position; each node watches the next `k` nodes in that order ([`HashRing::successors`])
//! and is watched by the previous `k` ([`HashRing::predecessors`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use std::ops::Bound::{Excluded, Unbounded};

use imbl::OrdMap;
use xxhash_rust::xxh3::xxh3_64;

use crate::node_id::NodeId;

/// Most vnodes one node may take. Rows arrive from other nodes, so a bad or hostile value
/// must not make every member build billions of points.
pub const MAX_VNODES: u32 = 4096;

/// The position of a key on the ring.
///
/// ```
/// let p = granary_cluster::ring::key_position(b"user-42");
/// assert_eq!(p, granary_cluster::ring::key_position(b"user-42"));
/// ```
pub fn key_position(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The position of vnode `index` of the node at `addr`.
pub fn vnode_position(addr: SocketAddr, index: u32) -> u64 {
    let mut bytes = addr.to_string().into_bytes();
    bytes.push(b'/');
    bytes.extend_from_slice(&index.to_le_bytes());
    xxh3_64(&bytes)
}

/// A consistent hash ring: which node owns which key.
///
/// The ring is a persistent (structurally shared) map from the `imbl` crate, so cloning
/// it is O(1) and adding or removing a node is O(vnodes · log n): every cluster event
/// carries the ring after the change without copying it.
///
/// ```
/// use granary_cluster::{HashRing, NodeId};
/// let a = NodeId::new("127.0.0.1:7001".parse().unwrap(), 1);
/// let b = NodeId::new("127.0.0.1:7002".parse().unwrap(), 1);
/// let mut ring = HashRing::new();
/// ring.insert(a, 16);
/// ring.insert(b, 16);
/// let owner = ring.owner(b"user-42").unwrap();
/// let prefs = ring.preference_list(b"user-42", 2);
/// assert_eq!(prefs[0], owner);
/// assert_eq!(prefs.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashRing {
    /// position -> node for every vnode. Two vnodes hashing to the same 64-bit
    /// position (probability ~2^-64 per pair) keep the lower node id.
    points: OrdMap<u64, NodeId>,
    /// address -> (node, vnode count).
    nodes: OrdMap<SocketAddr, (NodeId, u32)>,
    /// (first vnode position, address) -> node: the monitoring order.
    primaries: OrdMap<(u64, SocketAddr), NodeId>,
    /// `points` as a sorted array, for owner lookups.
    owners: OwnerIndex,
}

/// The vnodes as one sorted array, built by the first owner lookup after a change
/// (and shared by clones until the next): a lookup is then a binary search, where two
/// range iterators over the persistent B-tree cost ~1,000 instructions — 9 % of the
/// instructions of activating a virtual actor, whose lookup, activation and
/// registration each ask for the owner. A cache of `points`, so it takes no part in
/// equality.
#[derive(Clone, Default)]
struct OwnerIndex(OnceLock<Arc<[(u64, NodeId)]>>);

impl PartialEq for OwnerIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for OwnerIndex {}

impl std::fmt::Debug for OwnerIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerIndex")
    }
}

impl HashRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `node` with `vnodes` points (clamped to 1..=[`MAX_VNODES`]), replacing any
    /// node at the same address.
    pub fn insert(&mut self, node: NodeId, vnodes: u32) {
        self.remove(node.addr);
        self.owners = OwnerIndex::default();
        let vnodes = vnodes.clamp(1, MAX_VNODES);
        for i in 0..vnodes {
            let pos = vnode_position(node.addr, i);
            match self.points.get(&pos) {
                Some(existing) if *existing < node => {}
                _ => {
                    self.points.insert(pos, node);
                }
            }
        }
        self.primaries
            .insert((vnode_position(node.addr, 0), node.addr), node);
        self.nodes.insert(node.addr, (node, vnodes));
    }

    /// Removes the node at `addr` (any incarnation); returns whether it was there.
    pub fn remove(&mut self, addr: SocketAddr) -> bool {
        let Some((node, vnodes)) = self.nodes.remove(&addr) else {
            return false;
        };
        self.owners = OwnerIndex::default();
        for i in 0..vnodes {
            let pos = vnode_position(addr, i);
            if self.points.get(&pos) == Some(&node) {
                self.points.remove(&pos);
            }
        }
        self.primaries.remove(&(vnode_position(addr, 0), addr));
        true
    }

    /// Number of nodes on the ring.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no node is on the ring.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True when a node with this address is on the ring.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.nodes.contains_key(&addr)
    }

    /// The node at `addr`, if it is on the ring.
    pub fn node(&self, addr: SocketAddr) -> Option<NodeId> {
        self.nodes.get(&addr).map(|(n, _)| *n)
    }

    /// The nodes on the ring with their vnode counts, ordered by address.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, u32)> + '_ {
        self.nodes.values().copied()
    }

    /// Every vnode as (position, node), ordered by position.
    pub fn vnodes(&self) -> impl Iterator<Item = (u64, NodeId)> + '_ {
        self.points.iter().map(|(p, n)| (*p, *n))
    }

    /// The node that owns `key`.
    pub fn owner(&self, key: &[u8]) -> Option<NodeId> {
        self.owner_of_position(key_position(key))
    }

    /// The node owning ring position `pos`: the first vnode at or after it, wrapping.
    pub fn owner_of_position(&self, pos: u64) -> Option<NodeId> {
        let index =
            (self.owners.0).get_or_init(|| self.points.iter().map(|(p, n)| (*p, *n)).collect());
        let first_at_or_after = index.partition_point(|(p, _)| *p < pos);
        (index.get(first_at_or_after))
            .or_else(|| index.first())
            .map(|(_, n)| *n)
    }

    /// Vnode owners clockwise from `pos` (inclusive), once around the ring.
    fn clockwise(&self, pos: u64) -> impl Iterator<Item = NodeId> + '_ {
        self.points
            .range(pos..)
            .chain(self.points.range(..pos))
            .map(|(_, n)| *n)
    }

    /// Up to `n` distinct nodes for `key`, walking clockwise from its position: the owner
    /// first, then the replicas.
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        let want = n.min(self.nodes.len());
        let mut out: Vec<NodeId> = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        for node in self.clockwise(key_position(key)) {
            if !out.contains(&node) {
                out.push(node);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// The `k` nodes after `addr` in monitoring order (the nodes it watches).
    pub fn successors(&self, addr: SocketAddr, k: usize) -> Vec<NodeId> {
        if !self.contains(addr) {
            return Vec::new();
        }
        let key = (vnode_position(addr, 0), addr);
        let k = k.min(self.nodes.len() - 1);
        let after = self.primaries.range((Excluded(key), Unbounded));
        let before = self.primaries.range(..key);
        after.chain(before).take(k).map(|(_, n)| *n).collect()
    }

    /// The `k` nodes before `addr` in monitoring order (the nodes that watch it). For an
    /// address not on the ring (a Joining node) these are the nodes before the place it
    /// will take, which watch it until it is Up.
    pub fn predecessors(&self, addr: SocketAddr, k: usize) -> Vec<NodeId> {
        let key = (vnode_position(addr, 0), addr);
        let others = self.nodes.len() - usize::from(self.contains(addr));
        let k = k.min(others);
        let before = self.primaries.range(..key).rev();
        let after = self.primaries.range((Excluded(key), Unbounded)).rev();
        before.chain(after).take(k).map(|(_, n)| *n).collect()
    }

    /// Each node's share of the hash space (fractions summing to 1).
    pub fn shares(&self) -> BTreeMap<NodeId, f64> {
        let mut out = BTreeMap::new();
        let Some((last, _)) = self.points.get_max() else {
            return out;
        };
        let mut prev = *last;
        let single = self.points.len() == 1;
        for (pos, node) in self.points.iter() {
            // Range (prev, pos]; a single point covers the whole ring.
            let width = if single {
                u64::MAX as f64
            } else {
                pos.wrapping_sub(prev) as f64
            };
            *out.entry(*node).or_insert(0.0) += width / u64::MAX as f64;
            prev = *pos;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(port: u16) -> NodeId {
        NodeId::new(SocketAddr::from(([127, 0, 0, 1], port)), 1)
    }

    fn keys() -> Vec<Vec<u8>> {
        (0..2000).map(|i| format!("key-{i}").into_bytes()).collect()
    }

    /// The owner index answers what walking the B-tree clockwise answers, at vnode
    /// positions, between them, past the last and before the first, and again after
    /// nodes join and leave (each change rebuilds it; a clone taken before a change
    /// keeps answering for its own ring).
    #[test]
    fn the_owner_is_the_first_vnode_clockwise_through_joins_and_leaves() {
        let walk = |ring: &HashRing, pos: u64| ring.clockwise(pos).next();
        let check = |ring: &HashRing| {
            let mut probes = vec![0, 1, u64::MAX, u64::MAX - 1];
            for (pos, _) in ring.vnodes() {
                probes.extend([pos, pos.wrapping_sub(1), pos.wrapping_add(1)]);
            }
            probes.extend((0..500u64).map(|i| key_position(&i.to_le_bytes())));
            for pos in probes {
                assert_eq!(ring.owner_of_position(pos), walk(ring, pos), "at {pos}");
            }
        };
        let mut ring = HashRing::new();
        check(&ring);
        for p in 1..=4 {
            ring.insert(node(p), 16);
            check(&ring);
        }
        let before = ring.clone();
        assert!(ring.remove(node(2).addr));
        check(&ring);
        check(&before);
        assert_ne!(before, ring);
        ring.insert(node(2), 16);
        check(&ring);
        assert_eq!(before, ring, "the index takes no part in equality");
    }

    #[test]
    fn empty_ring_has_no_owner() {
        let ring = HashRing::new();
        assert_eq!(ring.owner(b"x"), None);
        assert!(ring.preference_list(b"x", 3).is_empty());
        assert!(ring.successors(node(1).addr, 2).is_empty());
    }

    #[test]
    fn preference_list_is_distinct_and_starts_with_owner() {
        let mut ring = HashRing::new();
        for p in 1..=5 {
            ring.insert(node(p), 8);
        }
        for key in keys().iter().take(200) {
            let list = ring.preference_list(key, 3);
            assert_eq!(list.len(), 3);
            assert_eq!(list[0], ring.owner(key).unwrap());
            let mut dedup = list.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), 3);
        }
        assert_eq!(ring.preference_list(b"k", 10).len(), 5);
    }

    #[test]
    fn successors_and_predecessors_are_inverse() {
        let mut ring = HashRing::new();
        for p in 1..=10 {
            ring.insert(node(p), 4);
        }
        for p in 1..=10 {
            let me = node(p);
            for s in ring.successors(me.addr, 3) {
                assert!(ring.predecessors(s.addr, 3).contains(&me));
                assert_ne!(s, me);
            }
        }
        let mut small = HashRing::new();
        small.insert(node(1), 1);
        small.insert(node(2), 1);
        assert_eq!(small.successors(node(1).addr, 5), vec![node(2)]);
    }

    #[test]
    fn absurd_vnode_counts_are_clamped() {
        let mut ring = HashRing::new();
        ring.insert(node(1), u32::MAX);
        assert_eq!(ring.nodes().next().unwrap().1, MAX_VNODES);
        assert_eq!(ring.vnodes().count(), MAX_VNODES as usize);
        ring.insert(node(2), 0);
        assert_eq!(ring.nodes().nth(1).unwrap().1, 1);
    }

    #[test]
    fn rejoining_with_new_incarnation_keeps_positions() {
        let mut ring = HashRing::new();
        ring.insert(node(1), 8);
        ring.insert(node(2), 8);
        let before: Vec<_> = keys().iter().map(|k| ring.owner(k).unwrap().addr).collect();
        ring.insert(node(1).next_incarnation(), 8);
        let after: Vec<_> = keys().iter().map(|k| ring.owner(k).unwrap().addr).collect();
        assert_eq!(before, after);
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn shares_are_proportional_to_vnodes() {
        let mut ring = HashRing::new();
        for p in 1..=4 {
            ring.insert(node(p), 200);
        }
        ring.insert(node(5), 400);
        let shares = ring.shares();
        let total: f64 = shares.values().sum();
        assert!((total - 1.0).abs() < 1e-9);
        let big = shares[&node(5)];
        let small_avg: f64 = (1..=4).map(|p| shares[&node(p)]).sum::<f64>() / 4.0;
        let ratio = big / small_avg;
        assert!((1.7..2.3).contains(&ratio), "ratio {ratio}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn join_moves_only_keys_to_the_new_node(
            ports in proptest::collection::btree_set(1u16..500, 1..12),
            vnodes in 1u32..32,
            newcomer in 500u16..600,
        ) {
            let mut ring = HashRing::new();
            for p in &ports {
                ring.insert(node(*p), vnodes);
            }
            let before: Vec<_> = keys().iter().map(|k| ring.owner(k).unwrap()).collect();
            ring.insert(node(newcomer), vnodes);
            for (k, old) in keys().iter().zip(before) {
                let now = ring.owner(k).unwrap();
                prop_assert!(now == old || now == node(newcomer));
                if now != old {
                    // The key lies in a range that ends at one of the newcomer's vnodes.
                    let pos = key_position(k);
                    let next = ring.owner_of_position(pos).unwrap();
                    prop_assert_eq!(next, node(newcomer));
                }
            }
        }

        #[test]
        fn leave_moves_only_keys_of_the_leaving_node(
            ports in proptest::collection::btree_set(1u16..500, 2..12),
            vnodes in 1u32..32,
            pick in 0usize..100,
        ) {
            let ports: Vec<u16> = ports.into_iter().collect();
            let leaver = node(ports[pick % ports.len()]);
            let mut ring = HashRing::new();
            for p in &ports {
                ring.insert(node(*p), vnodes);
            }
            let before: Vec<_> = keys().iter().map(|k| ring.owner(k).unwrap()).collect();
            ring.remove(leaver.addr);
            for (k, old) in keys().iter().zip(before) {
                let now = ring.owner(k).unwrap();
                prop_assert!(now == old || old == leaver);
                prop_assert_ne!(now, leaver);
            }
        }

        #[test]
        fn shares_follow_vnode_counts(
            counts in proptest::collection::vec(64u32..256, 2..6),
        ) {
            let mut ring = HashRing::new();
            for (i, c) in counts.iter().enumerate() {
                ring.insert(node(i as u16 + 1), *c);
            }
            let total: u32 = counts.iter().sum();
            let shares = ring.shares();
            for (i, c) in counts.iter().enumerate() {
                let expected = *c as f64 / total as f64;
                let got = shares[&node(i as u16 + 1)];
                prop_assert!((got - expected).abs() < expected * 0.35 + 0.02,
                    "node {} expected {} got {}", i, expected, got);
            }
        }
    }
}
