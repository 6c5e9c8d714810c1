//! A multi-value register.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::causal_context::CausalContext;
use crate::crdt::{delta_is_state, Crdt};
use crate::replica::{Dot, ReplicaId};

/// A register that keeps every concurrently written value until a later write
/// (which has seen them) replaces them all.
///
/// A read returns one value when writes were ordered, and several when they were
/// concurrent, leaving the choice to the application.
///
/// ```
/// use granary_crdt::{Crdt, MVRegister, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x = MVRegister::default();
/// let mut y = MVRegister::default();
/// let dx = x.set(a, "red");
/// let dy = y.set(b, "blue");
/// x.merge_delta(&dy);
/// y.merge_delta(&dx);
/// assert_eq!(x.value(), vec!["red", "blue"]); // concurrent: both kept
/// let dz = x.set(a, "green");                 // has seen both: replaces both
/// y.merge_delta(&dz);
/// assert_eq!(y.value(), vec!["green"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MVRegister<T> {
    values: BTreeMap<Dot, T>,
    context: CausalContext,
}

impl<T> Default for MVRegister<T> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            context: CausalContext::default(),
        }
    }
}

impl<T: Clone> MVRegister<T> {
    /// Writes `value`, replacing every value this replica has seen; returns the delta.
    pub fn set(&mut self, replica: ReplicaId, value: T) -> Self {
        let dot = self.context.next_dot(replica);
        self.context.insert(dot);
        let replaced = std::mem::replace(&mut self.values, BTreeMap::from([(dot, value.clone())]));
        Self {
            values: BTreeMap::from([(dot, value)]),
            context: CausalContext::from_dots(replaced.into_keys().chain([dot])),
        }
    }

    /// The current values, ordered by the dot that wrote them.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.values()
    }
}

impl<T> Crdt for MVRegister<T>
where
    T: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    type Value = Vec<T>;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        self.values
            .retain(|dot, _| other.values.contains_key(dot) || !other.context.contains(*dot));
        for (dot, value) in &other.values {
            if !self.values.contains_key(dot) && !self.context.contains(*dot) {
                self.values.insert(*dot, value.clone());
            }
        }
        self.context.join(&other.context);
    }

    fn value(&self) -> Vec<T> {
        self.values.values().cloned().collect()
    }
}
