//! How a replicator behaves.

use std::time::Duration;

/// What a replicator sends a peer that is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dissemination {
    /// The join of the deltas the peer has not acknowledged; the full state only when
    /// the per-CRDT delta buffer no longer reaches back far enough (the default).
    #[default]
    Deltas,
    /// Always the full state (classic state-based gossip; the baseline of
    /// `granary-bench crdt`).
    FullState,
}

/// Settings of a [`Replicator`](crate::Replicator).
///
/// ```
/// use std::time::Duration;
/// use granary_crdt::ReplicatorConfig;
/// let config = ReplicatorConfig {
///     delta_interval: Duration::from_millis(20),
///     ..ReplicatorConfig::default()
/// };
/// assert_eq!(config.delta_buffer, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatorConfig {
    /// How often local changes are numbered and pushed to peers that are behind.
    /// Default 100 ms.
    pub delta_interval: Duration,
    /// How long to wait for an acknowledgement before pushing again to a peer; doubled
    /// per unanswered push (up to 8×) and reset when the peer is heard from.
    /// Default 500 ms.
    pub retransmit_after: Duration,
    /// How many numbered local changes each CRDT keeps for peers that are behind; a
    /// peer further behind (or new) gets the full state. Also the most payloads kept
    /// for a name this node has not opened yet. Default 64.
    pub delta_buffer: usize,
    /// Deltas or full states.
    pub dissemination: Dissemination,
    /// How often to compare digests of quiet CRDTs with one peer (round-robin) and
    /// exchange full states where they differ. This repairs what deltas cannot: changes
    /// of a node that crashed after reaching only some peers. A CRDT counts as quiet when
    /// it has not changed for this long, so busy CRDTs are never compared. `None`
    /// disables it. Default 2 s.
    pub anti_entropy_interval: Option<Duration>,
    /// A user-named transport channel for replication traffic (it must be configured
    /// on the node's transport with `TransportConfig::with_channel`); `None` uses the
    /// data channel.
    pub channel: Option<String>,
    /// How many members hold each CRDT opened with [`Replicator::crdt`](crate::Replicator::crdt):
    /// `None` every member; `Some(n)` the first `n` members of the ring's preference
    /// list for the CRDT's name, over the Up members (as Riak's n_val). Per CRDT:
    /// [`Replicator::crdt_with_replicas`](crate::Replicator::crdt_with_replicas).
    /// Default `None`.
    pub replicas: Option<usize>,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        Self {
            delta_interval: Duration::from_millis(100),
            retransmit_after: Duration::from_millis(500),
            delta_buffer: 64,
            dissemination: Dissemination::Deltas,
            anti_entropy_interval: Some(Duration::from_secs(2)),
            channel: None,
            replicas: None,
        }
    }
}

/// How many replicas a read or write must reach before it returns.
///
/// `Majority` and `All` count this node plus the peers the cluster lists (members
/// that are Down count too until the cluster prunes them, so a partitioned minority
/// cannot reach a majority). For a CRDT held by a subset of the members they count
/// the holders only, and `Local` on a node that does not hold it means one holder.
/// They fail with
/// [`ReplicatorError::Timeout`](crate::ReplicatorError::Timeout) when the timeout runs
/// out first.
///
/// ```
/// use std::time::Duration;
/// use granary_crdt::Consistency;
/// let majority = Consistency::Majority(Duration::from_secs(1));
/// assert_eq!(majority.needed(5), 3);
/// assert_eq!(Consistency::All(Duration::from_secs(1)).needed(5), 5);
/// assert_eq!(Consistency::Local.needed(5), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// This node only: returns at once.
    Local,
    /// More than half of the replicas.
    Majority(Duration),
    /// Every replica.
    All(Duration),
}

impl Consistency {
    /// Replicas needed out of `replicas` (this node included).
    pub fn needed(self, replicas: usize) -> usize {
        match self {
            Consistency::Local => 1,
            Consistency::Majority(_) => replicas / 2 + 1,
            Consistency::All(_) => replicas.max(1),
        }
    }

    pub(crate) fn timeout(self) -> Duration {
        match self {
            Consistency::Local => Duration::ZERO,
            Consistency::Majority(t) | Consistency::All(t) => t,
        }
    }
}
