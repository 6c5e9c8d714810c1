//! Who made a change: replica ids and dots.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of one replica (one writer) of a CRDT.
///
/// Every replica that mutates a CRDT must use its own id, and never reuse another's:
/// counters keep one entry per replica, and sets and registers tag each write with a
/// [`Dot`] made from it. The replicator derives it from the node's address and
/// incarnation, so a restarted node is a new replica.
///
/// ```
/// use granary_crdt::ReplicaId;
/// let a = ReplicaId::new(1);
/// assert_eq!(a.get(), 1);
/// assert_eq!(a.to_string(), "r1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct ReplicaId(u64);

impl ReplicaId {
    /// A replica id from a number chosen by the caller (unique per writer).
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number inside.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// One event: the `counter`-th write made by `replica` (counters start at 1).
///
/// Dots name the writes of observed-remove sets and multi-value registers, so a remove
/// can say exactly which adds it has seen (and leave concurrent ones alone).
///
/// ```
/// use granary_crdt::{Dot, ReplicaId};
/// let d = Dot::new(ReplicaId::new(7), 3);
/// assert_eq!((d.replica(), d.counter()), (ReplicaId::new(7), 3));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    replica: ReplicaId,
    counter: u64,
}

impl Dot {
    /// The `counter`-th event of `replica`.
    pub const fn new(replica: ReplicaId, counter: u64) -> Self {
        Self { replica, counter }
    }

    /// Who made the event.
    pub const fn replica(self) -> ReplicaId {
        self.replica
    }

    /// Its sequence number at that replica (from 1).
    pub const fn counter(self) -> u64 {
        self.counter
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}
