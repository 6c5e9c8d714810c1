//! Counters of what a replicator sent and received.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a replicator has done so far (see [`Replicator::stats`](crate::Replicator::stats)).
///
/// Bytes are counted at the replicator as encoded frames (header plus body, as the
/// transport writes them after the length prefix), so delta and full-state gossip can be
/// compared exactly.
///
/// ```
/// let stats = granary_crdt::ReplicatorStats::default();
/// assert_eq!(stats.bytes_sent, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicatorStats {
    /// Frames handed to the transport.
    pub frames_sent: u64,
    /// Their encoded size in bytes.
    pub bytes_sent: u64,
    /// Delta payloads sent.
    pub deltas_sent: u64,
    /// Bytes of those delta payloads.
    pub delta_bytes: u64,
    /// Full-state payloads sent (peers too far behind or new, reads, full-state mode).
    pub full_states_sent: u64,
    /// Bytes of those full states.
    pub full_state_bytes: u64,
    /// Full states sent by anti-entropy because digests differed.
    pub repairs_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Frames the transport refused (peer unreachable, queue full).
    pub send_failures: u64,
    /// Received payloads that could not be decoded.
    pub decode_errors: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) deltas_sent: AtomicU64,
    pub(crate) delta_bytes: AtomicU64,
    pub(crate) full_states_sent: AtomicU64,
    pub(crate) full_state_bytes: AtomicU64,
    pub(crate) repairs_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ReplicatorStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReplicatorStats {
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            deltas_sent: get(&self.deltas_sent),
            delta_bytes: get(&self.delta_bytes),
            full_states_sent: get(&self.full_states_sent),
            full_state_bytes: get(&self.full_state_bytes),
            repairs_sent: get(&self.repairs_sent),
            frames_received: get(&self.frames_received),
            send_failures: get(&self.send_failures),
            decode_errors: get(&self.decode_errors),
        }
    }
}
