//! The membership table: every row this node knows, merged by [`Member::supersedes`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::member::{Member, MemberStatus};
use crate::node_id::NodeId;

/// A compact summary of one row, used by anti-entropy to find what a peer lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The row's node.
    pub id: NodeId,
    /// The row's status.
    pub status: MemberStatus,
    /// The row's version.
    pub version: u64,
}

impl DigestEntry {
    fn key(&self) -> (u64, MemberStatus, u64) {
        (self.id.incarnation, self.status, self.version)
    }
}

/// All known rows, keyed by address, with an order-independent hash of the whole table
/// kept up to date incrementally (so comparing two tables costs one `u64`).
///
/// ```
/// use granary_cluster::{Member, MembershipTable, NodeId};
/// let mut table = MembershipTable::new();
/// let id = NodeId::new("127.0.0.1:7000".parse().unwrap(), 1);
/// assert!(table.merge(Member::new(id, 8)).is_some());
/// assert!(table.merge(Member::new(id, 8)).is_none()); // idempotent
/// assert_eq!(table.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MembershipTable {
    rows: BTreeMap<SocketAddr, Member>,
    hash: u64,
}

impl MembershipTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges one row. Returns the replaced row (`Some(None)` for a new address) when the
    /// incoming row won, `None` when it changed nothing.
    pub fn merge(&mut self, incoming: Member) -> Option<Option<Member>> {
        let addr = incoming.id.addr;
        match self.rows.get(&addr) {
            Some(current) if !incoming.supersedes(current) => None,
            _ => {
                self.hash ^= incoming.digest_hash();
                let old = self.rows.insert(addr, incoming);
                if let Some(old) = &old {
                    self.hash ^= old.digest_hash();
                }
                Some(old)
            }
        }
    }

    /// Replaces the row at the incoming row's address regardless of the merge order;
    /// returns the row it replaced. Breaks convergence if misused: the protocol uses it
    /// only to drop verdicts a node reached while it was cut off from the cluster.
    pub(crate) fn overwrite(&mut self, incoming: Member) -> Option<Member> {
        self.hash ^= incoming.digest_hash();
        let old = self.rows.insert(incoming.id.addr, incoming);
        if let Some(old) = &old {
            self.hash ^= old.digest_hash();
        }
        old
    }

    /// Removes the row at `addr` (pruning a tombstone); returns it.
    pub(crate) fn remove(&mut self, addr: &SocketAddr) -> Option<Member> {
        let old = self.rows.remove(addr)?;
        self.hash ^= old.digest_hash();
        Some(old)
    }

    /// The row for `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Member> {
        self.rows.get(addr)
    }

    /// All rows, ordered by address.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.rows.values()
    }

    /// Number of rows (including Down and Removed tombstones).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Order-independent hash of every row's digest; equal tables have equal hashes.
    pub fn state_hash(&self) -> u64 {
        self.hash
    }

    /// A digest of every row.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.rows
            .values()
            .map(|m| DigestEntry {
                id: m.id,
                status: m.status,
                version: m.version,
            })
            .collect()
    }

    /// Compares a peer's digest with this table: the rows this table has that are newer
    /// than (or missing from) the digest, and the addresses where the digest is newer.
    pub fn diff(&self, digest: &[DigestEntry]) -> (Vec<Member>, Vec<SocketAddr>) {
        let theirs: BTreeMap<SocketAddr, &DigestEntry> =
            digest.iter().map(|d| (d.id.addr, d)).collect();
        let mut newer_here = Vec::new();
        for row in self.rows.values() {
            let mine = (row.id.incarnation, row.status, row.version);
            match theirs.get(&row.id.addr) {
                Some(d) if d.key() >= mine => {}
                _ => newer_here.push(row.clone()),
            }
        }
        let wanted = digest
            .iter()
            .filter(|d| match self.rows.get(&d.id.addr) {
                Some(row) => d.key() > (row.id.incarnation, row.status, row.version),
                None => true,
            })
            .map(|d| d.id.addr)
            .collect();
        (newer_here, wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(port: u16, inc: u64, status: MemberStatus, version: u64) -> Member {
        let mut m = Member::new(
            NodeId::new(SocketAddr::from(([127, 0, 0, 1], port)), inc),
            4,
        );
        m.status = status;
        m.version = version;
        m
    }

    #[test]
    fn merge_order_does_not_matter() {
        let rows = vec![
            row(1, 1, MemberStatus::Joining, 0),
            row(1, 1, MemberStatus::Up, 1),
            row(2, 1, MemberStatus::Up, 1),
            row(1, 1, MemberStatus::Down, 2),
            row(1, 2, MemberStatus::Up, 1),
            row(2, 1, MemberStatus::Up, 5),
        ];
        let mut forward = MembershipTable::new();
        let mut backward = MembershipTable::new();
        for r in &rows {
            forward.merge(r.clone());
        }
        for r in rows.iter().rev() {
            backward.merge(r.clone());
        }
        assert_eq!(forward.state_hash(), backward.state_hash());
        assert_eq!(
            forward
                .get(&row(1, 0, MemberStatus::Up, 0).id.addr)
                .unwrap()
                .id
                .incarnation,
            2
        );
        assert_eq!(
            forward
                .get(&row(2, 0, MemberStatus::Up, 0).id.addr)
                .unwrap()
                .version,
            5
        );
    }

    #[test]
    fn diff_finds_both_directions() {
        let mut a = MembershipTable::new();
        let mut b = MembershipTable::new();
        a.merge(row(1, 1, MemberStatus::Up, 3));
        a.merge(row(2, 1, MemberStatus::Up, 1));
        b.merge(row(2, 1, MemberStatus::Up, 2));
        b.merge(row(3, 1, MemberStatus::Up, 1));
        let (newer_in_a, wanted_by_a) = a.diff(&b.digest());
        let newer_ports: Vec<u16> = newer_in_a.iter().map(|m| m.id.addr.port()).collect();
        let wanted_ports: Vec<u16> = wanted_by_a.iter().map(|a| a.port()).collect();
        assert_eq!(newer_ports, vec![1]);
        assert_eq!(wanted_ports, vec![2, 3]);
    }

    #[test]
    fn removing_a_row_restores_the_hash_without_it() {
        let mut a = MembershipTable::new();
        a.merge(row(1, 1, MemberStatus::Up, 3));
        let before = a.clone();
        a.merge(row(2, 1, MemberStatus::Down, 2));
        assert_ne!(a.state_hash(), before.state_hash());
        assert!(a.remove(&row(2, 0, MemberStatus::Up, 0).id.addr).is_some());
        assert_eq!(a.state_hash(), before.state_hash());
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn equal_tables_have_equal_hashes_and_no_diff() {
        let mut a = MembershipTable::new();
        a.merge(row(1, 1, MemberStatus::Up, 3));
        let b = a.clone();
        assert_eq!(a.state_hash(), b.state_hash());
        let (newer, wanted) = a.diff(&b.digest());
        assert!(newer.is_empty() && wanted.is_empty());
    }
}
