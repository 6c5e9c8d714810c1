//! Errors of the replicator.

use std::time::Duration;

use thiserror::Error;

/// What can go wrong when replicating a CRDT.
///
/// ```
/// use granary_crdt::ReplicatorError;
/// let e = ReplicatorError::Timeout { needed: 3, reached: 2, after: std::time::Duration::from_secs(1) };
/// assert!(e.to_string().contains("2 of 3"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplicatorError {
    /// The name is already open with another CRDT type on this node.
    #[error("CRDT {name:?} is a {existing}, not a {requested}")]
    TypeMismatch {
        /// The CRDT's name.
        name: String,
        /// The type it was opened with first.
        existing: &'static str,
        /// The type asked for now.
        requested: &'static str,
    },
    /// A read or write at `Majority` or `All` did not hear from enough replicas in time.
    /// A write has still been applied locally and keeps spreading.
    #[error("only {reached} of {needed} replicas answered within {after:?}")]
    Timeout {
        /// Replicas needed, this node included.
        needed: usize,
        /// Replicas that answered in time, this node included.
        reached: usize,
        /// The timeout that ran out.
        after: Duration,
    },
    /// A state or delta could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A received state or delta could not be decoded as the CRDT's type (a peer uses
    /// the same name for another type, or a corrupt payload).
    #[error("a received {type_name} could not be decoded: {reason}")]
    Decode {
        /// The type expected.
        type_name: &'static str,
        /// What postcard said.
        reason: String,
    },
    /// The replicator could not expose its inbox on the node (the name is taken: a
    /// replicator already runs there) or the message registry has conflicts.
    #[error("replicator setup failed: {0}")]
    Setup(String),
    /// A synchronous local update on a node that does not hold the CRDT (it is
    /// replicated to a subset of the members that excludes this node). Use
    /// `CrdtHandle::update_with`, which reads the state from a holder, applies the change
    /// and sends it to the holders.
    #[error("this node does not hold CRDT {name:?}; update it with update_with")]
    NotHolder {
        /// The CRDT's name.
        name: String,
    },
    /// The replicator has been stopped.
    #[error("the replicator has stopped")]
    Stopped,
}
