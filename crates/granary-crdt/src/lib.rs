//! granary-crdt: delta-state CRDTs, and their replication across a granary cluster.
//!
//! A CRDT (conflict-free replicated data type) is a value every node can update on its
//! own, without asking anyone, and that still ends up equal everywhere once the updates
//! have travelled: merging is commutative, associative and idempotent, so order,
//! duplication and delay of messages do not matter. The types here are *delta-state*
//! CRDTs (Almeida, Shoker, Baquero 2018; seed 003 §2.9): each mutation returns a small
//! delta, and nodes ship deltas instead of whole states.
//!
//! | type | value | mutations |
//! |---|---|---|
//! | [`GCounter`] | `u64` | increment |
//! | [`PNCounter`] | `i128` | increment, decrement |
//! | [`GSet`] | set | insert |
//! | [`ORSet`] | set | add, remove, clear (add wins over a concurrent remove) |
//! | [`LWWRegister`] | `Option<T>` | set (highest timestamp wins) |
//! | [`MVRegister`] | `Vec<T>` | set (concurrent writes all kept) |
//! | [`ORMap`] | map of values | update a key's CRDT, remove a key |
//!
//! All implement [`Crdt`]. The laws (merge commutative, associative, idempotent; a
//! delta merged into a state equals the mutation applied to it) are checked by property
//! tests in `tests/laws.rs`.
//!
//! The data types know nothing about the network; they only need `serde`. Replication
//! over granary-remote and granary-cluster lives in the `replicator` module.
//!
//! ```
//! use granary_crdt::{Crdt, ORSet, ReplicaId};
//! let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
//! let mut on_a = ORSet::default();
//! let mut on_b = ORSet::default();
//! let delta = on_a.add(a, "alice");
//! on_b.merge_delta(&delta);
//! on_b.add(b, "bob");
//! on_a.merge(&on_b);
//! assert_eq!(on_a.value(), on_b.value());
//! assert_eq!(on_a.len(), 2);
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod causal_context;
mod crdt;
mod error;
mod gcounter;
mod gset;
mod lww_register;
mod mv_register;
mod ormap;
mod orset;
mod pncounter;
mod replica;
pub mod replicator;

pub use causal_context::CausalContext;
pub use crdt::Crdt;
pub use error::ReplicatorError;
pub use gcounter::GCounter;
pub use gset::GSet;
pub use lww_register::LWWRegister;
pub use mv_register::MVRegister;
pub use ormap::{ORMap, ORMapDelta};
pub use orset::ORSet;
pub use pncounter::PNCounter;
pub use replica::{Dot, ReplicaId};
pub use replicator::{
    Consistency, CrdtHandle, Dissemination, Replicated, Replicator, ReplicatorConfig,
    ReplicatorStats,
};
