//! Why the last handshakes with peers this node dialled were refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Peers whose refusal is remembered at once; the oldest entry gives way to a new one.
const CAPACITY: usize = 1024;

/// How long a refusal explains a peer's unreachability before it is forgotten.
const TTL: Duration = Duration::from_secs(60);

/// Refusal reasons for addresses this node dialled, so a send to such a peer fails with
/// `Unauthorized(reason)` rather than a bare `Unreachable`.
///
/// Bounded in every dimension a peer influences: only peers this node dials are entered
/// (not the ephemeral ports of inbound connections), at most [`CAPACITY`] of them, each
/// for at most [`TTL`], and each reason is cut with [`crate::error::bounded_reason`].
pub(crate) struct RefusalBook {
    entries: HashMap<SocketAddr, Refusal>,
}

struct Refusal {
    reason: String,
    at: Instant,
}

impl RefusalBook {
    pub(crate) fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    /// Remember why `addr` refused us, replacing an older reason.
    pub(crate) fn insert(&mut self, addr: SocketAddr, reason: &str) {
        let now = Instant::now();
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&addr) {
            self.entries.retain(|_, r| now.duration_since(r.at) < TTL);
            if self.entries.len() >= CAPACITY {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, r)| r.at)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let reason = crate::error::bounded_reason(reason);
        self.entries.insert(addr, Refusal { reason, at: now });
    }

    /// The reason `addr` refused us, unless it is older than [`TTL`].
    pub(crate) fn get(&self, addr: SocketAddr) -> Option<&str> {
        self.entries
            .get(&addr)
            .filter(|r| r.at.elapsed() < TTL)
            .map(|r| r.reason.as_str())
    }

    /// `addr` accepted us: forget its refusal.
    pub(crate) fn remove(&mut self, addr: SocketAddr) {
        self.entries.remove(&addr);
    }

    /// Entries held (expired ones included until they are pushed out).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_capacity_entries_with_bounded_reasons() {
        let mut book = RefusalBook::new();
        let huge = "x".repeat(60_000);
        for port in 0..5_000u16 {
            book.insert(([127, 0, 0, 1], port).into(), &huge);
        }
        assert_eq!(book.len(), CAPACITY);
        let newest = book.get(([127, 0, 0, 1], 4_999).into()).unwrap();
        assert!(
            newest.len() <= crate::error::MAX_REASON + 8,
            "{}",
            newest.len()
        );
        assert!(
            book.get(([127, 0, 0, 1], 0).into()).is_none(),
            "oldest evicted"
        );
    }

    #[test]
    fn a_reason_is_replaced_and_removed() {
        let mut book = RefusalBook::new();
        let addr = ([127, 0, 0, 1], 1).into();
        book.insert(addr, "a");
        book.insert(addr, "b");
        assert_eq!(book.get(addr), Some("b"));
        book.remove(addr);
        assert_eq!(book.get(addr), None);
    }
}
