//! Settings of a cluster node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use granary_overlay::{
    erase, ClientServer, DynOverlay, HyParViewConfig, PeerToPeer, PlumtreeConfig, Role,
    StaticOverlay,
};

use crate::phi::PhiConfig;

/// Which overlay a node runs (seed 002 §3, `docs/overlays.md`): which members it keeps
/// connections to, and how a message reaches a member it is not connected to.
///
/// With any overlay but the full mesh, the node gossips membership only to the
/// overlay's connections, its failure detector probes those connections instead of ring
/// successors, and (on a cluster started on a granary-remote node) the transport sends
/// every actor message for a member outside the connections through the overlay's next
/// hop, which relays it, so virtual actors, the CRDT replicator and devices run
/// unchanged. Every member of a cluster must run the same overlay.
///
/// ```
/// use granary_cluster::{ClusterConfig, OverlayConfig};
/// let config = ClusterConfig {
///     overlay: OverlayConfig::peer_to_peer(64),
///     ..ClusterConfig::default()
/// };
/// assert!(!config.overlay.is_full_mesh());
/// assert!(ClusterConfig::default().overlay.is_full_mesh());
/// ```
#[derive(Clone, Debug, Default)]
pub enum OverlayConfig {
    /// Every member may dial every other; nothing is routed (granary's behaviour
    /// before overlays, and the default).
    #[default]
    FullMesh,
    /// Connections only to `peers`; any other member through the first of them (a
    /// star's hub). No membership protocol of the overlay's own.
    Static {
        /// The members this node connects to.
        peers: Vec<SocketAddr>,
    },
    /// Clients connect only to servers, servers to each other and to their clients; a
    /// client reaches another client through a server. A node's join contacts (seeds,
    /// provider) must include a server.
    ClientServer {
        /// This node's role.
        role: Role,
    },
    /// HyParView membership (partial views) with Plumtree broadcast; a member outside
    /// the active view is reached along the broadcast trees.
    PeerToPeer {
        /// HyParView's parameters (the active view bounds the connections).
        membership: HyParViewConfig,
        /// Plumtree's parameters.
        broadcast: PlumtreeConfig,
    },
    /// An overlay of the application's own.
    Custom(CustomOverlay),
}

impl OverlayConfig {
    /// Peer-to-peer with views sized for about `expected_members`
    /// ([`HyParViewConfig::for_cluster_size`]) and Plumtree's default timers.
    pub fn peer_to_peer(expected_members: usize) -> Self {
        Self::PeerToPeer {
            membership: HyParViewConfig::for_cluster_size(expected_members),
            broadcast: PlumtreeConfig::default(),
        }
    }

    /// True for [`OverlayConfig::FullMesh`]: nothing of the overlay machinery runs.
    pub fn is_full_mesh(&self) -> bool {
        matches!(self, Self::FullMesh)
    }

    /// A fresh overlay state machine for the node at `me` (`None` for the full mesh);
    /// `seed` seeds its random choices.
    pub(crate) fn build(&self, me: SocketAddr, seed: u64) -> Option<Box<dyn DynOverlay>> {
        match self {
            Self::FullMesh => None,
            Self::Static { peers } => Some(erase(StaticOverlay::new(me, peers.clone()))),
            Self::ClientServer { role } => Some(erase(ClientServer::new(me, *role))),
            Self::PeerToPeer {
                membership,
                broadcast,
            } => Some(erase(PeerToPeer::new(
                me,
                membership.clone(),
                broadcast.clone(),
                seed,
            ))),
            Self::Custom(custom) => Some((custom.make)(me)),
        }
    }
}

/// A user-supplied overlay: a function that builds the state machine for the node at
/// an address (called at start and again for each new incarnation of the node).
///
/// ```
/// use granary_cluster::{CustomOverlay, OverlayConfig};
/// use granary_overlay::{erase, StaticOverlay};
/// let hub = "127.0.0.1:7000".parse().unwrap();
/// let star = CustomOverlay::new(move |me| erase(StaticOverlay::new(me, vec![hub])));
/// let overlay = OverlayConfig::Custom(star);
/// assert!(!overlay.is_full_mesh());
/// ```
#[derive(Clone)]
pub struct CustomOverlay {
    make: Arc<dyn Fn(SocketAddr) -> Box<dyn DynOverlay> + Send + Sync>,
}

impl CustomOverlay {
    /// An overlay built by `make` (wrap an `Overlay` with [`granary_overlay::erase`]).
    pub fn new(make: impl Fn(SocketAddr) -> Box<dyn DynOverlay> + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
        }
    }
}

impl std::fmt::Debug for CustomOverlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomOverlay")
    }
}

/// What a node does when no seed answers within [`JoinConfig::timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoSeedPolicy {
    /// Start a new cluster consisting of this node only (Aurum's behaviour). A node
    /// rejoining after a Down also forms the cluster again when every member it knew
    /// is Down (a majority of them asks it to join and it has the lowest address; see
    /// "Every member Down" in `docs/cluster.md`).
    FormNewCluster,
    /// Fail `Cluster::start` with [`crate::ClusterError::NoSeedAnswered`]; a rejoining
    /// node waits for an Up member however long it takes.
    Fail,
}

/// Joining through seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinConfig {
    /// How often the seeds are pinged while no one has answered.
    pub retry_interval: Duration,
    /// How long to keep pinging before applying `on_no_seed`.
    pub timeout: Duration,
    /// What to do when no seed answers in time.
    pub on_no_seed: NoSeedPolicy,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_millis(300),
            timeout: Duration::from_secs(5),
            on_no_seed: NoSeedPolicy::FormNewCluster,
        }
    }
}

/// Partition handling (Akka's keep-majority).
#[derive(Clone, Debug, PartialEq)]
pub struct DowningConfig {
    /// How long the set of unreachable members must stay unchanged before deciding.
    pub stable_after: Duration,
    /// Suspicions from this many distinct monitors are needed before the majority marks
    /// a member Down (capped by the member's number of monitors; Orleans uses 2).
    pub quorum: usize,
    /// After being marked Down (or downing itself), keep trying to join again with a new
    /// incarnation. When false, the node stops for good.
    pub auto_rejoin: bool,
    /// How long a node that was downed *while it suspected a live member* (one end of
    /// a cut link, the minority side of a partition, a node waking from a long pause)
    /// waits before it asks to rejoin; doubled for each such Down less than a minute
    /// after the previous one, up to 8 times this. While a link stays cut, a node
    /// that rejoins at once is resolved again a few seconds later, and its identities
    /// move to it and away each time; waiting keeps them on the fully connected
    /// members. The wait ends early once the link is repaired: the waiting node sends
    /// a heartbeat to each member it suspected on every gossip tick, and once every
    /// one of them has answered every round for `stable_after` (round trips, so
    /// neither direction still drops, not even now and then) it asks to rejoin at
    /// once. Zero (the default): rejoin at once. A node downed while it suspected no
    /// one (a false suspicion) always rejoins at once.
    pub rejoin_backoff: Duration,
}

impl Default for DowningConfig {
    fn default() -> Self {
        Self {
            stable_after: Duration::from_millis(1000),
            quorum: 2,
            auto_rejoin: true,
            rejoin_backoff: Duration::ZERO,
        }
    }
}

/// Everything a cluster node needs to know.
///
/// ```
/// use granary_cluster::ClusterConfig;
/// let config = ClusterConfig {
///     vnodes: 32,
///     ..ClusterConfig::default()
/// };
/// assert_eq!(config.gossip_fanout, 3);
/// ```
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's vnodes on the ring (its relative share of work).
    pub vnodes: u32,
    /// Kinds/roles this node hosts.
    pub roles: BTreeSet<String>,
    /// Application metadata published with this node's row.
    pub metadata: BTreeMap<String, String>,
    /// The incarnation of this life of the node; `None` takes the wall clock in
    /// milliseconds, so a restarted process is always newer than its previous life.
    pub incarnation: Option<u64>,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// Peers contacted per gossip round (one ring neighbour, the rest at random).
    pub gossip_fanout: usize,
    /// Most rows carried by one gossip message.
    pub max_deltas_per_message: usize,
    /// A changed row is re-sent `retransmit_multiplier × ⌈log2(N+1)⌉` times by every
    /// node that learns it.
    pub retransmit_multiplier: u32,
    /// Time between failure-detector probes.
    pub heartbeat_interval: Duration,
    /// How many ring successors each node monitors.
    pub monitored_successors: usize,
    /// The failure detector's settings.
    pub phi: PhiConfig,
    /// Joining through seeds.
    pub join: JoinConfig,
    /// Partition handling.
    pub downing: DowningConfig,
    /// How often the membership provider's registration is refreshed.
    pub provider_refresh_interval: Duration,
    /// How long a Down or Removed row is kept after this node first saw it; then it is
    /// pruned (and for as long again, older lives at that address are refused by gossip,
    /// so a peer that has not pruned yet cannot bring the row back). Keeps the table from
    /// growing with churn; must be well above the time a change takes to spread.
    pub tombstone_ttl: Duration,
    /// Seed of the random choice of gossip peers; `None` derives it from the address.
    pub rng_seed: Option<u64>,
    /// The overlay: which members this node keeps connections to. Default the full
    /// mesh.
    pub overlay: OverlayConfig,
}

impl ClusterConfig {
    /// The **fast failover** profile: a silent node is marked Down sooner than with
    /// the defaults (~1.5 s after its last answer instead of ~2.2 s; 1.47 s measured
    /// on the test bed after a `SIGSTOP`), and with the virtual-actor layer's default
    /// `down_margin` (= `stable_after`) its identities may be placed elsewhere ~2 s
    /// after it fell silent instead of ~3.2 s — so a process stalled for 5 s (a long
    /// GC or VM pause) is failed over before it wakes. (A call already sent to the
    /// stalled process still waits until its caller's transport gives up on it.)
    ///
    /// Changed from [`ClusterConfig::default`]: heartbeats every 200 ms (not 250),
    /// an acceptable heartbeat pause of 200 ms (not 300) and a first estimate of
    /// 200 ms in [`PhiConfig`], and `downing.stable_after` 500 ms (not 1 s). Every
    /// other setting is the default's, except `downing.rejoin_backoff` = 4 s: a node
    /// downed while it suspected a live member waits before rejoining (see
    /// [`DowningConfig::rejoin_backoff`]).
    ///
    /// What it trades: a node that stops answering for ~1 s (a stop-the-world pause,
    /// CPU starvation on an overloaded host, a saturated link) is downed — it rejoins
    /// with a new incarnation and its activations are moved, which costs their
    /// callers a gap — where the defaults would ride out ~1.5 s. The host lease
    /// (`stable_after + down_margin` = 1 s) is renewed every 250 ms, so a node whose
    /// renewal rounds take longer than ~1 s refuses messages until one completes.
    /// Heartbeat traffic grows by a quarter. Measured on the test bed
    /// (docs/BENCHMARKS.md, "Chaos test bed"), including a loaded run without faults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use granary_cluster::ClusterConfig;
    /// let config = ClusterConfig::fast_failover();
    /// assert_eq!(config.downing.stable_after, Duration::from_millis(500));
    /// assert_eq!(config.heartbeat_interval, Duration::from_millis(200));
    /// assert_eq!(config.gossip_fanout, ClusterConfig::default().gossip_fanout);
    /// ```
    pub fn fast_failover() -> Self {
        let default = Self::default();
        Self {
            heartbeat_interval: Duration::from_millis(200),
            phi: PhiConfig {
                acceptable_heartbeat_pause: Duration::from_millis(200),
                first_heartbeat_estimate: Duration::from_millis(200),
                ..default.phi
            },
            downing: DowningConfig {
                stable_after: Duration::from_millis(500),
                rejoin_backoff: Duration::from_secs(4),
                ..default.downing
            },
            ..default
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            vnodes: 64,
            roles: BTreeSet::new(),
            metadata: BTreeMap::new(),
            incarnation: None,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            max_deltas_per_message: 64,
            retransmit_multiplier: 3,
            heartbeat_interval: Duration::from_millis(250),
            monitored_successors: 3,
            phi: PhiConfig::default(),
            join: JoinConfig::default(),
            downing: DowningConfig::default(),
            provider_refresh_interval: Duration::from_secs(5),
            tombstone_ttl: Duration::from_secs(60),
            rng_seed: None,
            overlay: OverlayConfig::FullMesh,
        }
    }
}
