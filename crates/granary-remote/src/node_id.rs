//! Node identity: the listen address plus an incarnation chosen at start.

use std::fmt;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The identity of one running node: where it listens and which incarnation it is.
///
/// The incarnation is chosen when the process starts (wall-clock nanoseconds mixed with
/// random bits), so a process restarted on the same address is a *different* node: peers
/// notice the new incarnation during the handshake and treat the old one as gone.
///
/// ```
/// use granary_remote::NodeId;
/// let a = NodeId::new("127.0.0.1:4000".parse().unwrap());
/// let b = NodeId::new("127.0.0.1:4000".parse().unwrap());
/// assert_eq!(a.addr(), b.addr());
/// assert_ne!(a, b, "two starts on one address are two nodes");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    addr: SocketAddr,
    incarnation: u64,
}

impl NodeId {
    /// A node at `addr` with a fresh incarnation.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_incarnation(addr, fresh_incarnation())
    }

    /// A node at `addr` with a given incarnation (for tests and for decoding).
    pub const fn with_incarnation(addr: SocketAddr, incarnation: u64) -> Self {
        Self { addr, incarnation }
    }

    /// The address the node listens on.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The incarnation chosen when the node started.
    pub const fn incarnation(&self) -> u64 {
        self.incarnation
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}", self.addr, self.incarnation)
    }
}

/// Start time in nanoseconds XOR random bits: unique across restarts even when the clock
/// stands still or two processes start in the same nanosecond.
fn fresh_incarnation() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let noise: u64 = crate::random::random();
    // Never zero, so 0 can mean "unknown" in logs and tests.
    (nanos ^ noise.rotate_left(17)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_postcard() {
        let id = NodeId::new("127.0.0.1:7000".parse().unwrap());
        let bytes = postcard::to_allocvec(&id).unwrap();
        let back: NodeId = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(id, back);
    }

    #[test]
    fn restarted_node_on_same_address_has_new_incarnation() {
        let addr = "127.0.0.1:7001".parse().unwrap();
        let ids: std::collections::HashSet<_> = (0..100).map(|_| NodeId::new(addr)).collect();
        assert_eq!(ids.len(), 100);
    }
}
