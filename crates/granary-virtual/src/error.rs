//! Typed errors of the virtual actor layer.

use granary_core::RemoteError;
use granary_storage::StorageError;
use thiserror::Error;

/// Why a virtual actor call, an activation or a node operation failed.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum VirtualError {
    /// A key's text does not parse as the kind's key type.
    #[error("key {key:?} is not a valid {expected}")]
    BadKey {
        /// The text received.
        key: String,
        /// The key type expected.
        expected: &'static str,
    },
    /// No live member hosts this kind (or this node does not know the kind).
    #[error("no live node hosts kind {0:?}")]
    NoHost(String),
    /// The cluster has no Up member to own the identity.
    #[error("the cluster has no live member")]
    NoMembers,
    /// The call was retried the allowed number of times and still failed.
    #[error("{identity} unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// The `kind/key` identity.
        identity: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// No reply within the caller's timeout.
    #[error("no reply within the timeout")]
    Timeout,
    /// This node was declared Down (or downed itself on a partition's minority side)
    /// while the call waited for another node: it no longer takes part in the cluster
    /// until it has rejoined, so the call is not retried from here. It may or may not
    /// have been handled (at least once, as for a lost host); call again once the node
    /// has rejoined, or from another node.
    #[error("this node went Down while the call waited")]
    NodeDown,
    /// The handler panicked while handling the request.
    #[error("the virtual actor panicked while handling the request")]
    Panicked,
    /// A state write lost against a newer version: this activation is stale and is
    /// being deactivated.
    #[error("state of {0} was written by a newer activation; this one deactivates")]
    StateConflict(String),
    /// This activation's in-memory state was discarded — an earlier write failed, a
    /// handler panicked, or it is ending for a reason that saves nothing (see
    /// `DeactivationReason::saves_state`) — so it is never written; the activation
    /// deactivates after the current message.
    #[error(
        "state of {0} was discarded after a failed write or a panic; this activation deactivates"
    )]
    StateDiscarded(String),
    /// A state write was refused because this node's host lease is about to lapse
    /// (or has): the identity may be placed elsewhere before the write lands, so
    /// nothing is written and the activation deactivates after the current message.
    #[error(
        "state of {0} not written: this node's host lease is lapsing; this activation deactivates"
    )]
    HostLeaseLapsing(String),
    /// The state store failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The stored state does not decode into the kind's state type.
    #[error("state of {identity} does not decode: {reason}")]
    BadState {
        /// The `kind/key` identity.
        identity: String,
        /// The decoder's message.
        reason: String,
    },
    /// The actor's `on_activate` failed.
    #[error("activation of {identity} failed: {reason}")]
    ActivationFailed {
        /// The `kind/key` identity.
        identity: String,
        /// What `on_activate` returned.
        reason: String,
    },
    /// The node is shutting down (or has stopped) and takes no new work.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The remote layer failed in a way that is not retried.
    #[error("remote: {0}")]
    Remote(RemoteError),
    /// A setting is wrong or cannot be used (a node or client refuses to start).
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// Starting the node failed (transport, registry, cluster or store).
    #[error("setup: {0}")]
    Setup(String),
}
