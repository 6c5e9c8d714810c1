//! The JSON documents the endpoint serves and the CLI reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// One member as this node's membership sees it (`/cluster`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's cluster address.
    pub addr: SocketAddr,
    /// Its incarnation (bumped on every restart at the same address).
    pub incarnation: u64,
    /// `Joining`, `Up`, `Leaving`, `Exiting`, `Down` or `Removed`.
    pub status: String,
    /// The kinds it hosts.
    pub roles: Vec<String>,
    /// Its vnodes on the hash ring.
    pub vnodes: u32,
    /// Its share of the ring's key space (0 when it is off the ring).
    pub ring_share: f64,
    /// Its management endpoint, when it runs one.
    pub admin: Option<String>,
}

/// The cluster as one node sees it (`/cluster`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The address of the node answering.
    pub local: SocketAddr,
    /// Every member it knows, sorted by address.
    pub members: Vec<MemberInfo>,
}

/// Where an identity lives (`/activations?kind=K&key=k`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// The identity's kind.
    pub kind: String,
    /// The identity's key.
    pub key: String,
    /// The member owning its directory partition.
    pub directory_owner: Option<SocketAddr>,
    /// The member hosting its live activation (`None`: not active).
    pub host: Option<SocketAddr>,
}

/// Live activations per kind on one node (`/activations`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activations {
    /// The node answering.
    pub node: SocketAddr,
    /// Kind name to live activations.
    pub kinds: BTreeMap<String, usize>,
}

/// Transport counters since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCounters {
    /// Frames accepted into connection queues (sent).
    pub frames_out: u64,
    /// Frames handed to the inbound handler (received).
    pub frames_in: u64,
    /// Vectored writes issued.
    pub writes: u64,
    /// Sends refused because a queue was full.
    pub backpressure: u64,
    /// Connection attempts this node started (every dial, redials included): a
    /// figure that keeps climbing means a peer keeps refusing or dropping us.
    pub dials: u64,
}

/// One collector sample: rates over the interval before `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time of the sample, in milliseconds.
    pub at_ms: u64,
    /// Frames received per second.
    pub frames_in_per_s: f64,
    /// Frames sent per second.
    pub frames_out_per_s: f64,
    /// Dead letters per second.
    pub dead_letters_per_s: f64,
    /// Live activations (all kinds) at the sample.
    pub activations: usize,
}

/// A membership change this node saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    /// Unix time it was seen, in milliseconds.
    pub at_ms: u64,
    /// The member it is about.
    pub member: SocketAddr,
    /// `Joined`, `Up`, `Leaving`, `Exiting`, `Down`, `Removed`, `Restarted` or `Updated`.
    pub event: String,
}

/// Everything one node reports about itself (`/api/node`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's cluster address.
    pub addr: SocketAddr,
    /// Its own membership status, as it sees it.
    pub status: Option<String>,
    /// Whether its host lease is held.
    pub lease_held: bool,
    /// Live activations per kind.
    pub activations: BTreeMap<String, usize>,
    /// Entries of the directory partition it owns.
    pub directory_entries: usize,
    /// Transport counters.
    pub transport: TransportCounters,
    /// Dead letters since the endpoint started, by reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// The last samples, oldest first.
    pub history: Vec<Sample>,
    /// The latest membership changes it saw, oldest first.
    pub events: Vec<MembershipEvent>,
}

/// One member's report in the overview, or why it is missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    /// The member's cluster address.
    pub addr: SocketAddr,
    /// Its report, when its endpoint answered.
    pub report: Option<NodeReport>,
    /// Why there is no report (no endpoint, not live, no answer).
    pub error: Option<String>,
}

/// The dashboard's document (`/api/overview`): the cluster and every member's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The cluster as the answering node sees it.
    pub cluster: ClusterInfo,
    /// One entry per member, in the order of `cluster.members`.
    pub nodes: Vec<MemberReport>,
}
