//! The set of events a state has seen, kept as a version vector plus loose dots.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::replica::{Dot, ReplicaId};

/// Which dots a state (or delta) has seen.
///
/// A full state has usually seen every event of each replica up to some number: that
/// prefix is the `clock` (a version vector). A delta sees only a few scattered events;
/// those are the `cloud`. After every change the context is compacted (cloud dots that
/// extend or fall inside the clock move into it), so two contexts that contain the same
/// dots are always equal — merge laws can be checked with `==`.
///
/// ```
/// use granary_crdt::{CausalContext, Dot, ReplicaId};
/// let r = ReplicaId::new(1);
/// let mut ctx = CausalContext::default();
/// ctx.insert(Dot::new(r, 2));
/// assert!(!ctx.contains(Dot::new(r, 1)));
/// ctx.insert(Dot::new(r, 1));
/// assert!(ctx.contains(Dot::new(r, 2)));
/// assert_eq!(ctx.next_dot(r), Dot::new(r, 3));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    clock: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// A context holding exactly `dots`.
    pub fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = Self::default();
        for dot in dots {
            ctx.insert(dot);
        }
        ctx
    }

    /// Has this context seen `dot`?
    pub fn contains(&self, dot: Dot) -> bool {
        self.seen_up_to(dot.replica()) >= dot.counter() || self.cloud.contains(&dot)
    }

    /// The dot `replica` should use for its next event: one past the highest it has seen.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        let in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |d| d.counter());
        // A counter at `u64::MAX` can only come from a peer's bad delta; stay there
        // rather than overflow.
        Dot::new(
            replica,
            self.seen_up_to(replica).max(in_cloud).saturating_add(1),
        )
    }

    /// Records that `dot` has been seen.
    pub fn insert(&mut self, dot: Dot) {
        let replica = dot.replica();
        let seen = self.seen_up_to(replica);
        if dot.counter() <= seen {
            return;
        }
        if dot.counter() == seen + 1 {
            self.advance(replica, dot.counter());
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Adds every dot of `other` (set union).
    pub fn join(&mut self, other: &Self) {
        for (&replica, &n) in &other.clock {
            if n > self.seen_up_to(replica) {
                self.advance(replica, n);
            }
        }
        for &dot in &other.cloud {
            self.insert(dot);
        }
    }

    fn seen_up_to(&self, replica: ReplicaId) -> u64 {
        self.clock.get(&replica).copied().unwrap_or(0)
    }

    /// Sets `replica`'s clock to `n`, drops the loose dots it now covers and pulls in
    /// those that continue it, so the representation stays canonical (equal dot sets
    /// give equal contexts).
    fn advance(&mut self, replica: ReplicaId, mut n: u64) {
        let covered: Vec<Dot> = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, n))
            .copied()
            .collect();
        for dot in covered {
            self.cloud.remove(&dot);
        }
        // `n` may be `u64::MAX` (a peer's delta says so): nothing can continue it.
        while let Some(next) = n.checked_add(1) {
            if !self.cloud.remove(&Dot::new(replica, next)) {
                break;
            }
            n = next;
        }
        self.clock.insert(replica, n);
    }

    /// How many replicas appear in the clock plus how many loose dots there are.
    pub fn len(&self) -> usize {
        self.clock.len() + self.cloud.len()
    }

    /// True when no dot has been seen.
    pub fn is_empty(&self) -> bool {
        self.clock.is_empty() && self.cloud.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's delta may carry any counter; the fuzzer found a clock at `u64::MAX`
    /// with the dot before it loose, which overflowed while compacting.
    #[test]
    fn counters_at_the_top_of_the_range_neither_overflow_nor_panic() {
        let r = ReplicaId::new(1);
        let mut theirs = CausalContext::default();
        theirs.clock.insert(r, u64::MAX);
        let mut ours = CausalContext::from_dots([Dot::new(r, u64::MAX - 1)]);
        ours.cloud.insert(Dot::new(r, u64::MAX));
        ours.join(&theirs);
        assert!(ours.contains(Dot::new(r, u64::MAX)));
        assert_eq!(ours.next_dot(r), Dot::new(r, u64::MAX));
    }

    #[test]
    fn same_dots_give_equal_contexts_whatever_the_order() {
        let r = ReplicaId::new(1);
        let s = ReplicaId::new(2);
        let a = CausalContext::from_dots([Dot::new(r, 1), Dot::new(r, 3), Dot::new(s, 2)]);
        let mut b = CausalContext::from_dots([Dot::new(s, 2)]);
        b.insert(Dot::new(r, 3));
        b.insert(Dot::new(r, 1));
        assert_eq!(a, b);
        let mut c = a.clone();
        c.insert(Dot::new(r, 2));
        assert_eq!(
            c.cloud.len(),
            1,
            "r1..3 compacted into the clock, s:2 stays loose"
        );
    }

    #[test]
    fn next_dot_looks_past_loose_dots() {
        let r = ReplicaId::new(4);
        let ctx = CausalContext::from_dots([Dot::new(r, 5)]);
        assert_eq!(ctx.next_dot(r), Dot::new(r, 6));
    }
}
