//! One member row and its merge order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::node_id::NodeId;

/// Where a member is in its life cycle. The order of the variants is the merge
/// precedence: a later status always wins over an earlier one for the same incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Asked to join; not yet on the ring.
    Joining,
    /// A full member: on the ring, monitored, owns its ranges.
    Up,
    /// Leaving gracefully: off the ring, handing its work off.
    Leaving,
    /// Hand-off done; about to be removed.
    Exiting,
    /// Declared failed (by its monitors and the downing rule) or downed itself.
    Down,
    /// Left gracefully; a tombstone.
    Removed,
}

impl MemberStatus {
    /// True for the statuses of a node that takes part in the cluster.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Joining | Self::Up | Self::Leaving | Self::Exiting
        )
    }
}

/// What the cluster knows about one node.
///
/// ```
/// use granary_cluster::{Member, MemberStatus, NodeId};
/// let id = NodeId::new("127.0.0.1:7000".parse().unwrap(), 1);
/// let joining = Member::new(id, 8);
/// let mut up = joining.clone();
/// up.status = MemberStatus::Up;
/// up.version += 1;
/// assert!(up.supersedes(&joining));
/// assert!(!joining.supersedes(&up));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Address and incarnation.
    pub id: NodeId,
    /// Life-cycle status.
    pub status: MemberStatus,
    /// Kinds/roles of work this node hosts (for example actor kinds).
    pub roles: BTreeSet<String>,
    /// Vnodes on the hash ring: the node's relative share of the work.
    pub vnodes: u32,
    /// Application metadata.
    pub metadata: BTreeMap<String, String>,
    /// Bumped by the row's writer on every change.
    pub version: u64,
    /// The nodes this member, as a monitor, currently suspects of having failed
    /// (its votes towards their downing).
    pub suspects: BTreeSet<NodeId>,
}

impl Member {
    /// A fresh `Joining` row at version 0 with no roles or metadata.
    pub fn new(id: NodeId, vnodes: u32) -> Self {
        Self {
            id,
            status: MemberStatus::Joining,
            roles: BTreeSet::new(),
            vnodes: vnodes.max(1),
            metadata: BTreeMap::new(),
            version: 0,
            suspects: BTreeSet::new(),
        }
    }

    /// The merge order of two rows for the same address.
    pub fn merge_cmp(&self, other: &Member) -> Ordering {
        (self.id.incarnation, self.status, self.version)
            .cmp(&(other.id.incarnation, other.status, other.version))
            // Equal keys with different content happen only when two nodes declare the
            // same member Down at once from different bases; a content hash picks the
            // same winner everywhere.
            .then_with(|| self.content_hash().cmp(&other.content_hash()))
    }

    /// True when this row should replace `other`.
    pub fn supersedes(&self, other: &Member) -> bool {
        self.merge_cmp(other) == Ordering::Greater
    }

    /// A hash of the fields that [`crate::membership::DigestEntry`] summarizes.
    pub(crate) fn digest_hash(&self) -> u64 {
        let mut bytes = self.id.addr.to_string().into_bytes();
        bytes.extend_from_slice(&self.id.incarnation.to_le_bytes());
        bytes.push(self.status as u8);
        bytes.extend_from_slice(&self.version.to_le_bytes());
        xxh3_64(&bytes)
    }

    fn content_hash(&self) -> u64 {
        postcard::to_allocvec(self)
            .map(|b| xxh3_64(&b))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(inc: u64, status: MemberStatus, version: u64) -> Member {
        let mut m = Member::new(NodeId::new("127.0.0.1:9".parse().unwrap(), inc), 4);
        m.status = status;
        m.version = version;
        m
    }

    #[test]
    fn higher_incarnation_wins_over_any_status() {
        assert!(row(2, MemberStatus::Joining, 0).supersedes(&row(1, MemberStatus::Down, 50)));
    }

    #[test]
    fn later_status_wins_over_higher_version() {
        assert!(row(1, MemberStatus::Down, 3).supersedes(&row(1, MemberStatus::Up, 9)));
    }

    #[test]
    fn higher_version_wins_within_status() {
        assert!(row(1, MemberStatus::Up, 4).supersedes(&row(1, MemberStatus::Up, 3)));
        assert!(!row(1, MemberStatus::Up, 3).supersedes(&row(1, MemberStatus::Up, 3)));
    }

    #[test]
    fn ties_on_keys_break_the_same_way_in_both_directions() {
        let a = row(1, MemberStatus::Down, 3);
        let mut b = a.clone();
        b.suspects
            .insert(NodeId::new("127.0.0.1:1".parse().unwrap(), 1));
        assert_ne!(a.supersedes(&b), b.supersedes(&a));
    }
}
