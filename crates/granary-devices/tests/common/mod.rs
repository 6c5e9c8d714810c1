//! Shared by the integration tests: in-process servers (a RemoteNode, a Cluster on it
//! and a DeviceServer each) and device nodes, all on real 127.0.0.1 sockets, and a
//! poll-until-deadline helper (conditions are checked, never slept on).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use granary_cluster::phi::PhiConfig;
use granary_cluster::{Cluster, ClusterConfig, DowningConfig};
use granary_core::ActorSystem;
use granary_crdt::{Replicator, ReplicatorConfig};
use granary_devices::{Device, DeviceConfig, DeviceId, DeviceServer, ServerConfig};
use granary_remote::{RemoteNode, TransportConfig};

pub const CLUSTER: &str = "devices-test";

pub fn transport() -> TransportConfig {
    TransportConfig::new(CLUSTER, b"devices-test-secret".to_vec())
}

/// Membership tuned for tests on a shared machine: a crashed member is Down in about
/// a second and a half, a loaded one is not suspected for a late beat.
pub fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        vnodes: 32,
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

pub fn server_config() -> ServerConfig {
    ServerConfig {
        reconcile_interval: Duration::from_millis(500),
        ..ServerConfig::default()
    }
}

pub struct TestServer {
    pub remote: RemoteNode,
    pub cluster: Cluster,
    pub replicator: Replicator,
    pub devices: DeviceServer,
}

impl TestServer {
    pub fn addr(&self) -> SocketAddr {
        self.remote.local_addr()
    }

    /// Crash: membership, device service and sockets stop at once, nobody is told.
    pub async fn kill(self) {
        self.devices.shutdown();
        self.replicator.stop();
        self.cluster.stop().await;
        self.remote.shutdown();
        self.remote.system().shutdown().await;
    }
}

pub async fn start_server(seeds: Vec<SocketAddr>) -> TestServer {
    let remote = RemoteNode::start(ActorSystem::new(), transport())
        .await
        .expect("remote node");
    let cluster = Cluster::start_on_remote(cluster_config(), &remote, seeds)
        .await
        .expect("cluster");
    let replicator =
        Replicator::start(&remote, &cluster, ReplicatorConfig::default()).expect("replicator");
    let devices = DeviceServer::start(&remote, &cluster, &replicator, server_config())
        .expect("device server");
    TestServer {
        remote,
        cluster,
        replicator,
        devices,
    }
}

/// Starts `n` servers (the first forms the cluster) and waits until all see `n` Up.
pub async fn start_servers(n: usize) -> Vec<TestServer> {
    let mut servers = vec![start_server(vec![]).await];
    let seed = servers[0].addr();
    for _ in 1..n {
        servers.push(start_server(vec![seed]).await);
    }
    wait_until(
        "every server sees every member Up",
        Duration::from_secs(20),
        || servers.iter().all(|s| s.cluster.up_members().len() == n),
    )
    .await;
    servers
}

pub async fn device_node() -> RemoteNode {
    RemoteNode::start(ActorSystem::new(), transport())
        .await
        .expect("device node")
}

pub fn device_config(id: &str) -> DeviceConfig {
    DeviceConfig {
        heartbeat_interval: Duration::from_millis(200),
        registration_retry: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(10),
        transport: transport(),
        ..DeviceConfig::new(id.parse::<DeviceId>().expect("device id"))
    }
}

pub async fn connect(node: &RemoteNode, seeds: &[SocketAddr], id: &str) -> Device {
    Device::connect_on(node, seeds.iter().copied(), device_config(id))
        .await
        .unwrap_or_else(|e| panic!("device {id}: {e}"))
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `within`.
/// Returns how long it took.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
