//! A counter that goes up and down.

use serde::{Deserialize, Serialize};

use crate::crdt::{delta_is_state, Crdt};
use crate::gcounter::GCounter;
use crate::replica::ReplicaId;

/// A counter with increments and decrements: two [`GCounter`]s, value = ups − downs.
///
/// ```
/// use granary_crdt::{Crdt, PNCounter, ReplicaId};
/// let r = ReplicaId::new(1);
/// let mut stock = PNCounter::default();
/// stock.increment(r, 5);
/// let delta = stock.decrement(r, 7);
/// assert_eq!(stock.value(), -2);
/// assert_eq!(delta.value(), -7, "the delta carries only the downs");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    ups: GCounter,
    downs: GCounter,
}

impl PNCounter {
    /// Adds `by` on behalf of `replica`; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> Self {
        Self {
            ups: self.ups.increment(replica, by),
            downs: GCounter::default(),
        }
    }

    /// Subtracts `by` on behalf of `replica`; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> Self {
        Self {
            ups: GCounter::default(),
            downs: self.downs.increment(replica, by),
        }
    }
}

impl Crdt for PNCounter {
    /// Ups minus downs; i128 so no sum of two u64 totals can overflow.
    type Value = i128;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        self.ups.merge(&other.ups);
        self.downs.merge(&other.downs);
    }

    fn value(&self) -> i128 {
        i128::from(self.ups.value()) - i128::from(self.downs.value())
    }
}
