//! An observed-remove set where adds win over concurrent removes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::causal_context::CausalContext;
use crate::crdt::{delta_is_state, Crdt};
use crate::replica::{Dot, ReplicaId};

/// An add-wins observed-remove set, dot-based (no tombstones).
///
/// Each add tags the element with a fresh [`Dot`]; a remove removes the dots it has
/// *observed*. A concurrent add made a dot the remove never saw, so the element stays
/// (add wins). The causal context remembers which dots were seen, so removed elements
/// leave no tombstone behind, only a version-vector entry per replica.
///
/// Deltas are tiny: an add ships the element, its new dot and the dots it replaces; a
/// remove ships only the removed dots.
///
/// ```
/// use granary_crdt::{Crdt, ORSet, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x = ORSet::default();
/// x.add(a, "ad-7");
/// let mut y = x.clone();
/// let removed = x.remove(&"ad-7"); // x removes what it saw ...
/// let re_added = y.add(b, "ad-7"); // ... while y adds it again, concurrently
/// x.merge_delta(&re_added);
/// y.merge_delta(&removed);
/// assert_eq!(x, y);
/// assert!(x.contains(&"ad-7"), "the concurrent add wins");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct ORSet<T> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: CausalContext,
}

impl<T> Default for ORSet<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::default(),
        }
    }
}

impl<T: Ord + Clone> ORSet<T> {
    /// Adds `element` on behalf of `replica`; returns the delta.
    pub fn add(&mut self, replica: ReplicaId, element: T) -> Self {
        let dot = self.context.next_dot(replica);
        self.context.insert(dot);
        let replaced = self
            .entries
            .insert(element.clone(), BTreeSet::from([dot]))
            .unwrap_or_default();
        Self {
            entries: BTreeMap::from([(element, BTreeSet::from([dot]))]),
            context: CausalContext::from_dots(replaced.into_iter().chain([dot])),
        }
    }

    /// Removes `element` (the adds this replica has seen); returns the delta, which is
    /// empty when the element was absent.
    pub fn remove(&mut self, element: &T) -> Self {
        let removed = self.entries.remove(element).unwrap_or_default();
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::from_dots(removed),
        }
    }

    /// Removes every element this replica has seen; returns the delta.
    pub fn clear(&mut self) -> Self {
        let removed = std::mem::take(&mut self.entries);
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::from_dots(removed.into_values().flatten()),
        }
    }

    /// Is `element` in the set?
    pub fn contains(&self, element: &T) -> bool {
        self.entries.contains_key(element)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.keys()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set has no element.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The causal context (which adds and removes this state has seen).
    pub fn context(&self) -> &CausalContext {
        &self.context
    }
}

impl<T> Crdt for ORSet<T>
where
    T: Ord + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    type Value = BTreeSet<T>;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        // In place, without allocating for elements the other side leaves alone (a
        // delta names a handful of elements, the state may hold thousands).
        let (entries, context) = (&mut self.entries, &self.context);
        entries.retain(|element, dots| {
            match other.entries.get(element) {
                // A dot the other side has seen but no longer holds was removed there.
                None => dots.retain(|d| !other.context.contains(*d)),
                Some(theirs) => {
                    dots.retain(|d| theirs.contains(d) || !other.context.contains(*d));
                    dots.extend(theirs.iter().filter(|d| !context.contains(**d)));
                }
            }
            !dots.is_empty()
        });
        // Elements only there come in with the dots this side has not seen yet.
        for (element, theirs) in &other.entries {
            if self.entries.contains_key(element) {
                continue;
            }
            let dots: BTreeSet<Dot> = theirs
                .iter()
                .copied()
                .filter(|d| !self.context.contains(*d))
                .collect();
            if !dots.is_empty() {
                self.entries.insert(element.clone(), dots);
            }
        }
        self.context.join(&other.context);
    }

    fn value(&self) -> BTreeSet<T> {
        self.entries.keys().cloned().collect()
    }
}
