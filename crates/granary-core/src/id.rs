//! Actor identity.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of one actor: a node part (0 = this process) and a local part
/// unique within that node.
///
/// Refs compare and hash by their `ActorId`. The node part is there for the remote
/// layer, which rewrites it when a ref crosses the wire.
///
/// ```
/// use granary_core::ActorId;
/// let id = ActorId::new(0, 7);
/// assert!(id.is_local());
/// assert_eq!(id.to_string(), "0:7");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId {
    node: u64,
    local: u64,
}

impl ActorId {
    /// Builds an id from its node part and its node-local part.
    pub const fn new(node: u64, local: u64) -> Self {
        Self { node, local }
    }

    /// The node part; 0 means "this process".
    pub const fn node(&self) -> u64 {
        self.node
    }

    /// The part unique within the node.
    pub const fn local(&self) -> u64 {
        self.local
    }

    /// Whether the actor lives in this process (node part 0).
    pub const fn is_local(&self) -> bool {
        self.node == 0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.local)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({}:{})", self.node, self.local)
    }
}
