//! A map from keys to CRDTs, with observed-remove keys.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::crdt::Crdt;
use crate::orset::ORSet;
use crate::replica::ReplicaId;

/// A map whose values are CRDTs themselves: `ORMap<String, GCounter>` counts per key,
/// `ORMap<DeviceId, LWWRegister<Status>>` keeps one register per device.
///
/// The keys are an add-wins [`ORSet`]; each key's value merges with the value's own
/// merge. An update re-adds its key, so an update concurrent with a remove of the same
/// key wins (the key stays, with the updated value).
///
/// Removing a key hides it but keeps its inner state: a later update of that key merges
/// into what the key held before (for a counter, the count continues). This is what
/// keeps merge a lattice join for any value type; when a fresh value is wanted, use a
/// fresh key (for example with a generation number).
///
/// Its delta is an [`ORMapDelta`]: the key-set delta plus the value deltas of the keys
/// that changed.
///
/// ```
/// use granary_crdt::{Crdt, GCounter, ORMap, ReplicaId};
/// let r = ReplicaId::new(1);
/// let mut clicks: ORMap<String, GCounter> = ORMap::default();
/// clicks.update(r, "ad-1".to_string(), |c| c.increment(r, 2));
/// let delta = clicks.update(r, "ad-2".to_string(), |c| c.increment(r, 5));
/// let mut other: ORMap<String, GCounter> = ORMap::default();
/// other.merge_delta(&delta);
/// assert_eq!(other.value().get("ad-2"), Some(&5));
/// assert_eq!(clicks.value().len(), 2);
/// clicks.remove(&"ad-1".to_string());
/// assert_eq!(clicks.get(&"ad-1".to_string()), None);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
pub struct ORMap<K, V> {
    keys: ORSet<K>,
    values: BTreeMap<K, V>,
}

/// The delta of an [`ORMap`]: which keys were added or removed, and the value deltas.
///
/// ```
/// use granary_crdt::{GCounter, ORMap, ORMapDelta, ReplicaId};
/// let r = ReplicaId::new(1);
/// let mut m: ORMap<u32, GCounter> = ORMap::default();
/// let delta: ORMapDelta<u32, GCounter> = m.update(r, 7, |c| c.increment(r, 1));
/// assert_eq!(delta.changed_keys().collect::<Vec<_>>(), vec![&7]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, D: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, D: Deserialize<'de>"
))]
pub struct ORMapDelta<K, D> {
    keys: ORSet<K>,
    values: BTreeMap<K, D>,
}

impl<K, D> Default for ORMapDelta<K, D> {
    fn default() -> Self {
        Self {
            keys: ORSet::default(),
            values: BTreeMap::new(),
        }
    }
}

impl<K, D> ORMapDelta<K, D> {
    /// The keys whose values this delta changes.
    pub fn changed_keys(&self) -> impl Iterator<Item = &K> {
        self.values.keys()
    }
}

impl<K, V> Default for ORMap<K, V> {
    fn default() -> Self {
        Self {
            keys: ORSet::default(),
            values: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Crdt> ORMap<K, V> {
    /// Mutates the value under `key` (created empty if absent) with `mutate`, which
    /// returns the value's delta, and (re-)adds `key`; returns the map delta.
    pub fn update(
        &mut self,
        replica: ReplicaId,
        key: K,
        mutate: impl FnOnce(&mut V) -> V::Delta,
    ) -> ORMapDelta<K, V::Delta> {
        let keys = self.keys.add(replica, key.clone());
        let value_delta = mutate(self.values.entry(key.clone()).or_default());
        ORMapDelta {
            keys,
            values: BTreeMap::from([(key, value_delta)]),
        }
    }

    /// Removes `key` (as far as this replica has seen it); returns the delta.
    pub fn remove(&mut self, key: &K) -> ORMapDelta<K, V::Delta> {
        ORMapDelta {
            keys: self.keys.remove(key),
            values: BTreeMap::new(),
        }
    }

    /// The value under `key`, if the key is present.
    pub fn get(&self, key: &K) -> Option<&V> {
        if self.keys.contains(key) {
            self.values.get(key)
        } else {
            None
        }
    }

    /// Is `key` present?
    pub fn contains_key(&self, key: &K) -> bool {
        self.keys.contains(key)
    }

    /// The present keys with their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.keys
            .iter()
            .filter_map(|k| self.values.get(k).map(|v| (k, v)))
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is present.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl<K, V> Crdt for ORMap<K, V>
where
    K: Ord + Clone + Debug + Send + Sync + 'static,
    V: Crdt,
{
    type Delta = ORMapDelta<K, V::Delta>;
    /// Each present key with its value's value.
    type Value = BTreeMap<K, V::Value>;

    fn merge(&mut self, other: &Self) {
        self.keys.merge(&other.keys);
        for (key, value) in &other.values {
            self.values.entry(key.clone()).or_default().merge(value);
        }
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.keys.merge(&delta.keys);
        for (key, value_delta) in &delta.values {
            self.values
                .entry(key.clone())
                .or_default()
                .merge_delta(value_delta);
        }
    }

    fn join_deltas(into: &mut Self::Delta, delta: &Self::Delta) {
        into.keys.merge(&delta.keys);
        for (key, value_delta) in &delta.values {
            V::join_deltas(into.values.entry(key.clone()).or_default(), value_delta);
        }
    }

    fn value(&self) -> BTreeMap<K, V::Value> {
        self.iter().map(|(k, v)| (k.clone(), v.value())).collect()
    }
}
