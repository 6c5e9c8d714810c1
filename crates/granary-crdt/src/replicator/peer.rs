//! What a replicator knows about one peer: how far each side has got.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-peer bookkeeping, per CRDT name.
#[derive(Default)]
pub(crate) struct Peer {
    /// The peer's session as last heard; `None` until heard from.
    pub(crate) session: Option<u64>,
    /// Our change number up to which the peer holds our changes.
    pub(crate) acked: HashMap<String, u64>,
    /// The peer's change number up to which we hold its changes (no gap).
    pub(crate) received: HashMap<String, u64>,
    /// The last push not acknowledged yet: up to which number, and when.
    pub(crate) in_flight: HashMap<String, (u64, Instant)>,
    /// Pushes that timed out since the peer was last heard from.
    pub(crate) timeouts: u32,
    /// The peer was last heard from through a relay (the direct link may be cut).
    pub(crate) relayed: bool,
}

impl Peer {
    /// The peer was heard from with `session`; a new session means it restarted with
    /// empty state, so every acknowledgement and count of the old one is dropped.
    pub(crate) fn heard(&mut self, session: u64) {
        if self.session != Some(session) {
            if self.session.is_some() {
                self.acked.clear();
                self.received.clear();
                self.in_flight.clear();
            }
            self.session = Some(session);
        }
        self.timeouts = 0;
    }

    pub(crate) fn acked(&self, key: &str) -> u64 {
        self.acked.get(key).copied().unwrap_or(0)
    }

    /// How long to wait for an acknowledgement before pushing again.
    pub(crate) fn retransmit_delay(&self, base: Duration) -> Duration {
        base * (1u32 << self.timeouts.min(3))
    }
}
