//! The reachability table: who cannot reach whom, as the live members report it.
//!
//! Every member's row carries the set of nodes it currently suspects (`Member::suspects`),
//! written only by that member and versioned with its row, so gossip merges the
//! observations of all members the way it merges the rest of the table: this is Akka's
//! `Reachability` (observer → subject → unreachable, versioned per observer). The downing
//! rule reads it as a directed graph and tells a clean partition or crash from nodes that
//! are only *indirectly connected* (see [`Reachability::indirectly_connected`]).

use std::collections::{BTreeMap, BTreeSet};

use super::member::Member;
use super::table::MembershipTable;
use crate::node_id::NodeId;

/// The unreachability observations of the live members: a set of `(observer, subject)`
/// edges, both ends live, observer ≠ subject.
///
/// ```
/// use granary_cluster::{Member, MemberStatus, MembershipTable, NodeId, Reachability};
/// let node = |port: u16, suspects: &[u16]| {
///     let mut m = Member::new(NodeId::new(([127, 0, 0, 1], port).into(), 1), 8);
///     m.status = MemberStatus::Up;
///     m.suspects = suspects
///         .iter()
///         .map(|p| NodeId::new(([127, 0, 0, 1], *p).into(), 1))
///         .collect();
///     m
/// };
/// // A and C are cut apart; both still reach B.
/// let mut table = MembershipTable::new();
/// for row in [node(1, &[3]), node(2, &[]), node(3, &[1])] {
///     table.merge(row);
/// }
/// let reach = Reachability::from_table(&table);
/// assert_eq!(reach.indirectly_connected().len(), 2);
/// let (down, rest) = reach.resolve_indirectly_connected();
/// // Downing one of them (ties go to the highest address) leaves the rest fully connected.
/// assert_eq!(down.into_iter().map(|n| n.addr.port()).collect::<Vec<_>>(), vec![3]);
/// assert!(rest.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reachability {
    edges: BTreeSet<(NodeId, NodeId)>,
}

impl Reachability {
    /// The observations in `table`: every live row's suspicions of other live members
    /// (of the same incarnation; suspicions of Down or superseded lives are dropped).
    pub fn from_table(table: &MembershipTable) -> Self {
        let mut edges = BTreeSet::new();
        for observer in table
            .iter()
            .filter(|m| m.status.is_live() && !m.suspects.is_empty())
        {
            for subject in &observer.suspects {
                let live = table
                    .get(&subject.addr)
                    .is_some_and(|m| m.id == *subject && m.status.is_live());
                if *subject != observer.id && live {
                    edges.insert((observer.id, *subject));
                }
            }
        }
        Self { edges }
    }

    /// The observations of a set of rows (for example [`crate::Cluster::members`]).
    ///
    /// ```
    /// use granary_cluster::{Member, Reachability};
    /// let rows: Vec<Member> = Vec::new();
    /// assert!(Reachability::from_members(&rows).is_empty());
    /// ```
    pub fn from_members<'a>(rows: impl IntoIterator<Item = &'a Member>) -> Self {
        let mut table = MembershipTable::new();
        for row in rows {
            table.merge(row.clone());
        }
        Self::from_table(&table)
    }

    /// Builds a table from explicit edges (self-edges are dropped).
    ///
    /// ```
    /// use granary_cluster::{NodeId, Reachability};
    /// let a = NodeId::new(([127, 0, 0, 1], 1).into(), 1);
    /// let b = NodeId::new(([127, 0, 0, 1], 2).into(), 1);
    /// let reach = Reachability::from_edges([(a, b), (a, a)]);
    /// assert_eq!(reach.edges().len(), 1);
    /// assert!(reach.is_clean());
    /// ```
    pub fn from_edges(edges: impl IntoIterator<Item = (NodeId, NodeId)>) -> Self {
        Self {
            edges: edges.into_iter().filter(|(o, s)| o != s).collect(),
        }
    }

    /// All `(observer, subject)` edges, ordered.
    pub fn edges(&self) -> &BTreeSet<(NodeId, NodeId)> {
        &self.edges
    }

    /// True when nobody suspects anybody.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// The members that observe some other member as unreachable.
    pub fn observers(&self) -> BTreeSet<NodeId> {
        self.edges.iter().map(|(o, _)| *o).collect()
    }

    /// The members observed as unreachable by at least one member.
    pub fn subjects(&self) -> BTreeSet<NodeId> {
        self.edges.iter().map(|(_, s)| *s).collect()
    }

    /// How many members observe `subject` as unreachable.
    pub fn votes(&self, subject: NodeId) -> usize {
        self.edges.iter().filter(|(_, s)| *s == subject).count()
    }

    /// The members that are observed as unreachable *and* observe others as unreachable
    /// themselves (Akka's test for a cycle in the unreachability graph). A crashed node
    /// reports nothing new and the two sides of a clean partition never see each other's
    /// observations, so this is empty for crashes and clean partitions; it is not when a
    /// link is cut between two nodes that still reach the rest (their observations of each
    /// other travel through third parties).
    pub fn indirectly_connected(&self) -> BTreeSet<NodeId> {
        let observers = self.observers();
        self.subjects()
            .into_iter()
            .filter(|s| observers.contains(s))
            .collect()
    }

    /// True when no member is indirectly connected: a clean partition, crashed nodes, or
    /// nothing at all.
    pub fn is_clean(&self) -> bool {
        self.indirectly_connected().is_empty()
    }

    /// Picks the members to down so that the rest is clean, and returns them with the
    /// observations that remain among the others. Greedy and deterministic: while some
    /// member is indirectly connected, the indirectly connected member with the most
    /// unreachability edges (observed and observing) is taken, ties going to the
    /// highest address, and its edges are dropped. Edges to a member that two or more
    /// observers suspect and that is not indirectly connected itself (crashed, or
    /// across a clean split) do not count. Every node that holds the same table picks the same
    /// members.
    pub fn resolve_indirectly_connected(&self) -> (BTreeSet<NodeId>, Reachability) {
        let mut edges = self.edges.clone();
        let mut downed = BTreeSet::new();
        loop {
            let rest = Reachability {
                edges: std::mem::take(&mut edges),
            };
            let candidates = rest.indirectly_connected();
            if candidates.is_empty() {
                return (downed, rest);
            }
            // A member that several observers suspect and that observes no one (a
            // crash, the far side of a clean split) is left to keep-majority: edges
            // to it say nothing about which end of a cut link to give up (counting
            // them downed a majority-side node, cut from one member, during a 2 | 3
            // split: it observed the minority too). An edge to a member only its
            // observer suspects still counts (the other end of a cut link whose own
            // observation has not arrived yet).
            let mut degree: BTreeMap<NodeId, usize> = BTreeMap::new();
            for (o, s) in &rest.edges {
                if candidates.contains(s) || rest.votes(*s) == 1 {
                    *degree.entry(*o).or_default() += 1;
                    *degree.entry(*s).or_default() += 1;
                }
            }
            let pick = candidates
                .iter()
                .copied()
                .max_by_key(|n| (degree.get(n).copied().unwrap_or(0), *n))
                .unwrap_or_else(|| unreachable!("candidates is not empty"));
            downed.insert(pick);
            edges = rest
                .edges
                .into_iter()
                .filter(|(o, s)| *o != pick && *s != pick)
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u16) -> NodeId {
        NodeId::new(([127, 0, 0, 1], 7000 + i).into(), 1)
    }

    fn ports(set: &BTreeSet<NodeId>) -> Vec<u16> {
        set.iter().map(|n| n.addr.port() - 7000).collect()
    }

    #[test]
    fn a_crash_and_a_clean_partition_are_clean() {
        let crash = Reachability::from_edges([(n(0), n(3)), (n(1), n(3)), (n(2), n(3))]);
        assert!(crash.is_clean());
        assert_eq!(crash.votes(n(3)), 3);
        // The majority's view of a 3 | 2 split: only its own observations.
        let split = Reachability::from_edges(
            [0, 1, 2]
                .into_iter()
                .flat_map(|o| [3, 4].into_iter().map(move |s| (n(o), n(s)))),
        );
        assert!(split.is_clean());
        assert_eq!(ports(&split.subjects()), vec![3, 4]);
        let (down, rest) = split.resolve_indirectly_connected();
        assert!(down.is_empty());
        assert_eq!(rest, split);
    }

    #[test]
    fn a_cut_link_downs_one_end_the_highest_address_on_a_tie() {
        let r = Reachability::from_edges([(n(0), n(2)), (n(2), n(0))]);
        assert_eq!(ports(&r.indirectly_connected()), vec![0, 2]);
        let (down, rest) = r.resolve_indirectly_connected();
        assert_eq!(ports(&down), vec![2]);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_node_cut_from_two_others_is_the_one_downed() {
        // Node 1 cut from 3 and 4, seen from both sides, even though 4 is the highest.
        let r = Reachability::from_edges([(n(1), n(3)), (n(3), n(1)), (n(1), n(4)), (n(4), n(1))]);
        let (down, rest) = r.resolve_indirectly_connected();
        assert_eq!(ports(&down), vec![1]);
        assert!(rest.is_empty());
        // Only one direction of one link observed so far: still node 1.
        let partial = Reachability::from_edges([(n(1), n(3)), (n(4), n(1)), (n(1), n(4))]);
        assert_eq!(ports(&partial.resolve_indirectly_connected().0), vec![1]);
    }

    #[test]
    fn a_crash_next_to_a_cut_link_stays_for_the_clean_rule() {
        // 3 crashed (observed by 0, 1, 2); 0 and 2 also cut apart.
        let r = Reachability::from_edges([
            (n(0), n(3)),
            (n(1), n(3)),
            (n(2), n(3)),
            (n(0), n(2)),
            (n(2), n(0)),
        ]);
        assert_eq!(ports(&r.indirectly_connected()), vec![0, 2]);
        let (down, rest) = r.resolve_indirectly_connected();
        assert_eq!(ports(&down), vec![2]);
        assert!(rest.is_clean());
        assert_eq!(ports(&rest.subjects()), vec![3]);
        assert_eq!(rest.votes(n(3)), 2);
    }

    #[test]
    fn observations_of_a_clean_split_do_not_make_a_node_the_one_downed() {
        // 0 | 1 cut (both ways) during a 2 | 3 split: 0 and 2 observe 3 and 4 (whose
        // own observations do not arrive); 1 has not noticed the split yet. 0 has
        // more edges, but those to 3 and 4 do not count: the tie on the cut link
        // goes to the highest address, 1.
        let mut edges = vec![(n(0), n(1)), (n(1), n(0))];
        for o in [0, 2] {
            edges.extend([(n(o), n(3)), (n(o), n(4))]);
        }
        let r = Reachability::from_edges(edges);
        let (down, rest) = r.resolve_indirectly_connected();
        assert_eq!(ports(&down), vec![1]);
        assert!(rest.is_clean());
        assert_eq!(ports(&rest.subjects()), vec![3, 4]);
    }

    #[test]
    fn two_disjoint_cut_links_down_one_end_of_each() {
        let r = Reachability::from_edges([(n(0), n(2)), (n(2), n(0)), (n(1), n(3)), (n(3), n(1))]);
        let (down, rest) = r.resolve_indirectly_connected();
        assert_eq!(ports(&down), vec![2, 3]);
        assert!(rest.is_empty());
    }

    #[test]
    fn suspicions_of_dead_or_superseded_lives_are_not_edges() {
        let row = |id: NodeId, status, suspects: &[NodeId]| {
            let mut m = Member::new(id, 4);
            m.status = status;
            m.suspects = suspects.iter().copied().collect();
            m
        };
        use crate::membership::MemberStatus::{Down, Up};
        let rows = [
            row(n(0), Up, &[n(1), n(2), n(3).next_incarnation()]),
            row(n(1), Down, &[n(0)]),
            row(n(2), Up, &[n(2)]),
            row(n(3), Up, &[]),
        ];
        let r = Reachability::from_members(&rows);
        // n(1) is Down (neither a subject nor an observer), n(2)'s self-suspicion is
        // dropped, and n(3)'s next life is not the one in the table.
        assert_eq!(
            r.edges().iter().copied().collect::<Vec<_>>(),
            vec![(n(0), n(2))]
        );
    }
}
