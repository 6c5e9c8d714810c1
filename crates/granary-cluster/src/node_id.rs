//! The identity of one cluster member: its address plus an incarnation.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Identifies one life of a node: the address it listens on and an incarnation number.
///
/// A node that restarts, or that rejoins after it was (wrongly) marked Down, keeps its
/// address but takes a higher incarnation, so stale news about the old life can never
/// overwrite the new one. Ordering is by address, then incarnation.
///
/// ```
/// use granary_cluster::NodeId;
/// let a = NodeId::new("127.0.0.1:7000".parse().unwrap(), 1);
/// let b = a.next_incarnation();
/// assert_eq!(a.addr, b.addr);
/// assert!(b > a);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    /// The address the node's transport listens on.
    pub addr: SocketAddr,
    /// Which life of the node at `addr` this is; higher is newer.
    pub incarnation: u64,
}

impl NodeId {
    /// Builds a node id from an address and an incarnation.
    pub fn new(addr: SocketAddr, incarnation: u64) -> Self {
        Self { addr, incarnation }
    }

    /// The same address with the incarnation after this one.
    pub fn next_incarnation(self) -> Self {
        Self {
            addr: self.addr,
            incarnation: self.incarnation.saturating_add(1),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.addr, self.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_address_then_incarnation() {
        let a1 = NodeId::new("127.0.0.1:1".parse().unwrap(), 9);
        let b0 = NodeId::new("127.0.0.1:2".parse().unwrap(), 0);
        let a2 = NodeId::new("127.0.0.1:1".parse().unwrap(), 10);
        assert!(a1 < b0);
        assert!(a1 < a2);
        assert!(a2 < b0);
        assert_eq!(a1.to_string(), "127.0.0.1:1#9");
    }
}
