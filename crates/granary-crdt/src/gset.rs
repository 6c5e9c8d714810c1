//! A grow-only set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::crdt::{delta_is_state, Crdt};

/// A set that only grows; merge is union.
///
/// ```
/// use granary_crdt::{Crdt, GSet};
/// let mut seen = GSet::default();
/// let delta = seen.insert("a".to_string());
/// seen.insert("b".to_string());
/// assert_eq!(seen.value().len(), 2);
/// assert_eq!(delta.value().len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct GSet<T> {
    elements: BTreeSet<T>,
}

impl<T> Default for GSet<T> {
    fn default() -> Self {
        Self {
            elements: BTreeSet::new(),
        }
    }
}

impl<T: Ord + Clone> GSet<T> {
    /// Adds `element`; returns the delta (just that element).
    pub fn insert(&mut self, element: T) -> Self {
        self.elements.insert(element.clone());
        Self {
            elements: BTreeSet::from([element]),
        }
    }

    /// Is `element` in the set?
    pub fn contains(&self, element: &T) -> bool {
        self.elements.contains(element)
    }
}

impl<T> Crdt for GSet<T>
where
    T: Ord + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    type Value = BTreeSet<T>;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        self.elements.extend(other.elements.iter().cloned());
    }

    fn value(&self) -> BTreeSet<T> {
        self.elements.clone()
    }
}
