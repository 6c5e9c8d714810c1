//! A grow-only counter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crdt::{delta_is_state, Crdt};
use crate::replica::ReplicaId;

/// A counter that only goes up: one running total per replica, the value is their sum.
///
/// Merge takes the maximum per replica. A delta of `increment` is the one entry that
/// changed, so it is a few bytes whatever the number of replicas.
///
/// ```
/// use granary_crdt::{Crdt, GCounter, ReplicaId};
/// let mut views = GCounter::default();
/// let delta = views.increment(ReplicaId::new(1), 10);
/// assert_eq!(views.value(), 10);
/// assert_eq!(delta.value(), 10);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    totals: BTreeMap<ReplicaId, u64>,
}

impl GCounter {
    /// Adds `by` on behalf of `replica` (saturating at `u64::MAX`) and returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Self {
        let total = self.totals.entry(replica).or_insert(0);
        *total = total.saturating_add(by);
        Self {
            totals: BTreeMap::from([(replica, *total)]),
        }
    }

    /// What `replica` has added so far.
    pub fn of(&self, replica: ReplicaId) -> u64 {
        self.totals.get(&replica).copied().unwrap_or(0)
    }
}

impl Crdt for GCounter {
    type Value = u64;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        for (&replica, &n) in &other.totals {
            let mine = self.totals.entry(replica).or_insert(0);
            *mine = (*mine).max(n);
        }
    }

    fn value(&self) -> u64 {
        self.totals
            .values()
            .fold(0u64, |sum, &n| sum.saturating_add(n))
    }
}
