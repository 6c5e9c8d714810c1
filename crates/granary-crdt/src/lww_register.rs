//! A last-writer-wins register.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::crdt::{delta_is_state, Crdt};
use crate::replica::ReplicaId;

/// A register holding one value; of concurrent writes the one with the highest
/// timestamp wins.
///
/// Timestamps are wall-clock microseconds, but a write always takes a timestamp above
/// the one it overwrites, so a replica never loses to its own past even if its clock
/// steps back. Ties (same timestamp) go to the higher replica id, then to the greater
/// value, which is why `T: Ord`: merge must pick the same winner on every replica.
/// Concurrent writes by clocks that disagree are decided by the clocks — that is the
/// contract of LWW; use [`MVRegister`](crate::MVRegister) to keep all concurrent values.
///
/// ```
/// use granary_crdt::{Crdt, LWWRegister, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x = LWWRegister::default();
/// let mut y = LWWRegister::default();
/// let dx = x.set_at(a, "old", 10);
/// let dy = y.set_at(b, "new", 20);
/// x.merge_delta(&dy);
/// y.merge_delta(&dx);
/// assert_eq!(x.value(), Some("new"));
/// assert_eq!(x, y);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LWWRegister<T> {
    entry: Option<Stamped<T>>,
}

/// A written value with what decides between concurrent writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Stamped<T> {
    timestamp: u64,
    replica: ReplicaId,
    value: T,
}

impl<T> Default for LWWRegister<T> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<T: Ord + Clone> LWWRegister<T> {
    /// Writes `value` now (wall clock, microseconds); returns the delta.
    pub fn set(&mut self, replica: ReplicaId, value: T) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.set_at(replica, value, now)
    }

    /// Writes `value` with timestamp `timestamp` (raised above the current one if needed);
    /// returns the delta.
    pub fn set_at(&mut self, replica: ReplicaId, value: T, timestamp: u64) -> Self {
        let floor = self
            .entry
            .as_ref()
            .map_or(0, |e| e.timestamp.saturating_add(1));
        let stamped = Stamped {
            timestamp: timestamp.max(floor),
            replica,
            value,
        };
        self.entry = Some(stamped.clone());
        Self {
            entry: Some(stamped),
        }
    }

    /// The current value, if any was written.
    pub fn get(&self) -> Option<&T> {
        self.entry.as_ref().map(|e| &e.value)
    }

    /// The timestamp of the current value.
    pub fn timestamp(&self) -> Option<u64> {
        self.entry.as_ref().map(|e| e.timestamp)
    }
}

impl<T> Crdt for LWWRegister<T>
where
    T: Ord + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    type Value = Option<T>;

    delta_is_state!();

    fn merge(&mut self, other: &Self) {
        if other.entry > self.entry {
            self.entry.clone_from(&other.entry);
        }
    }

    fn value(&self) -> Option<T> {
        self.get().cloned()
    }
}
