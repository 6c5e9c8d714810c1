//! The `Crdt` trait every replicated data type implements.

use std::fmt::Debug;

/// A delta-state CRDT (Almeida, Shoker, Baquero: "Delta State Replicated Data Types").
///
/// States form a join-semilattice: [`merge`](Crdt::merge) is commutative, associative and
/// idempotent, so replicas that have received the same updates in any order, any number of
/// times, hold equal states. Each mutation (the inherent methods of each type, such as
/// [`GCounter::increment`](crate::GCounter::increment)) changes the state *and returns a
/// delta*: a small value that carries just that change. Deltas join with each other
/// ([`join_deltas`](Crdt::join_deltas)) into one delta for a batch, and merge into any
/// state ([`merge_delta`](Crdt::merge_delta)); applying the mutation to a state `X` gives
/// the same result as `X.merge_delta(delta)`. That is what lets the replicator send a few
/// bytes per change instead of the whole state.
///
/// Every type here uses a state of its own type as its delta (a delta is a small state),
/// which the `Delta` type names, except [`ORMap`](crate::ORMap), whose delta carries its
/// values' deltas. States and deltas implement serde's traits whenever their element
/// types do (the trait itself does not ask for it, so `ORSet<&str>` works in memory);
/// the replicator puts them on the wire with postcard.
///
/// ```
/// use granary_crdt::{Crdt, GCounter, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x = GCounter::default();
/// let mut y = GCounter::default();
/// let dx = x.increment(a, 2);
/// let dy = y.increment(b, 3);
/// x.merge_delta(&dy);
/// y.merge_delta(&dx);
/// assert_eq!(x, y);
/// assert_eq!(x.value(), 5);
/// ```
pub trait Crdt: Clone + Default + PartialEq + Debug + Send + Sync + 'static {
    /// What a mutation returns and the replicator ships between nodes.
    type Delta: Clone + Default + PartialEq + Debug + Send + Sync + 'static;

    /// What readers see (a number, a set, a map of values...).
    type Value: Clone + PartialEq + Debug + Send + Sync + 'static;

    /// Joins `other` into `self` (least upper bound).
    fn merge(&mut self, other: &Self);

    /// Joins a delta into `self`.
    fn merge_delta(&mut self, delta: &Self::Delta);

    /// Joins `delta` into `into`, so one delta carries both changes.
    fn join_deltas(into: &mut Self::Delta, delta: &Self::Delta);

    /// The current value.
    fn value(&self) -> Self::Value;
}

/// Implements the delta half of [`Crdt`] for a type whose delta is a state of itself.
macro_rules! delta_is_state {
    () => {
        type Delta = Self;

        fn merge_delta(&mut self, delta: &Self::Delta) {
            self.merge(delta);
        }

        fn join_deltas(into: &mut Self::Delta, delta: &Self::Delta) {
            into.merge(delta);
        }
    };
}
pub(crate) use delta_is_state;
