//! Shared by the replication tests: in-process nodes (a RemoteNode on real 127.0.0.1
//! TCP, a Cluster on it, a Replicator on both), one fault injector for all of them, and
//! a poll-until-deadline helper (conditions are checked, never slept on).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use granary_cluster::phi::PhiConfig;
use granary_cluster::{Cluster, ClusterConfig, DowningConfig};
use granary_core::ActorSystem;
use granary_crdt::{Replicator, ReplicatorConfig};
use granary_remote::faults::FaultInjector;
use granary_remote::{RemoteNode, TransportConfig};

pub struct TestNode {
    pub remote: RemoteNode,
    pub cluster: Cluster,
    pub replicator: Replicator,
}

impl TestNode {
    pub fn addr(&self) -> SocketAddr {
        self.remote.local_addr()
    }

    /// Crash: replication, membership and sockets stop at once, nobody is told.
    pub async fn kill(self) {
        self.replicator.stop();
        self.cluster.stop().await;
        self.remote.shutdown();
        self.remote.system().shutdown().await;
    }
}

/// The channel replication runs on in [`start_nodes_on_channel`].
pub const CRDT_CHANNEL: &str = "crdt";

/// Membership tuned for a shared test machine: quick gossip, a crashed member Down in
/// about a second and a half.
pub fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        vnodes: 16,
        gossip_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        phi: PhiConfig {
            acceptable_heartbeat_pause: Duration::from_millis(400),
            first_heartbeat_estimate: Duration::from_millis(100),
            min_std_deviation: Duration::from_millis(50),
            ..PhiConfig::default()
        },
        downing: DowningConfig {
            stable_after: Duration::from_millis(300),
            ..DowningConfig::default()
        },
        ..ClusterConfig::default()
    }
}

/// Pushes every 50 ms, retransmits after 100 ms without an answer.
pub fn replicator_config() -> ReplicatorConfig {
    ReplicatorConfig {
        delta_interval: Duration::from_millis(50),
        retransmit_after: Duration::from_millis(100),
        ..ReplicatorConfig::default()
    }
}

/// Starts `n` nodes sharing `faults` (the first forms the cluster) and waits until
/// every node sees all `n` Up.
pub async fn start_nodes(n: usize, faults: &Arc<FaultInjector>) -> Vec<TestNode> {
    start_nodes_with(n, faults, replicator_config()).await
}

/// [`start_nodes`] with another replicator configuration.
pub async fn start_nodes_with(
    n: usize,
    faults: &Arc<FaultInjector>,
    config: ReplicatorConfig,
) -> Vec<TestNode> {
    let mut nodes: Vec<TestNode> = Vec::new();
    for _ in 0..n {
        let seeds = nodes.first().map(|s| vec![s.addr()]).unwrap_or_default();
        nodes.push(start_node(faults, &config, seeds).await);
    }
    wait_until(
        "every node sees every member Up",
        Duration::from_secs(20),
        || nodes.iter().all(|s| s.cluster.up_members().len() == n),
    )
    .await;
    nodes
}

/// Starts one node joining through `seeds` (none: it forms a cluster).
pub async fn start_node(
    faults: &Arc<FaultInjector>,
    config: &ReplicatorConfig,
    seeds: Vec<SocketAddr>,
) -> TestNode {
    start_node_on(faults, config, cluster_config(), seeds).await
}

/// [`start_node`] with another cluster configuration (an overlay, say).
pub async fn start_node_on(
    faults: &Arc<FaultInjector>,
    config: &ReplicatorConfig,
    cluster_config: ClusterConfig,
    seeds: Vec<SocketAddr>,
) -> TestNode {
    let mut transport =
        TransportConfig::new("crdt-test", b"crdt-test-secret".to_vec()).with_faults(faults.clone());
    if let Some(channel) = &config.channel {
        transport = transport.with_channel(channel.clone(), 1);
    }
    let remote = RemoteNode::start(ActorSystem::new(), transport)
        .await
        .expect("remote node");
    let cluster = Cluster::start_on_remote(cluster_config, &remote, seeds)
        .await
        .expect("cluster");
    let replicator = Replicator::start(&remote, &cluster, config.clone()).expect("replicator");
    TestNode {
        remote,
        cluster,
        replicator,
    }
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    loop {
        if condition() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        poll.tick().await;
    }
}
