//! Helpers shared by the integration tests: start nodes on an in-memory network and
//! wait for conditions by following cluster events (never by sleeping).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{Cluster, ClusterConfig, ClusterEvent, MemberEvent, MemberStatus, NodeId};

pub fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i))
}

pub fn config(i: u16) -> ClusterConfig {
    ClusterConfig {
        vnodes: 16,
        incarnation: Some(1),
        rng_seed: Some(i as u64),
        ..ClusterConfig::default()
    }
}

/// Starts node `i`, joining through node 0 (node 0 itself forms the cluster).
pub async fn start(net: &MemoryNetwork, i: u16) -> Cluster {
    start_with(net, i, config(i)).await
}

pub async fn start_with(net: &MemoryNetwork, i: u16, cfg: ClusterConfig) -> Cluster {
    let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
    Cluster::start_with_seeds(cfg, net.bind(addr(i)).expect("bind"), seeds)
        .await
        .expect("start")
}

/// Starts `n` nodes and waits until every node sees all `n` Up.
pub async fn start_cluster(net: &MemoryNetwork, n: u16) -> Vec<Cluster> {
    start_cluster_with(net, n, config).await
}

/// Waits (in virtual time) until `pred` holds, re-checking after every cluster event.
pub async fn wait_until(c: &Cluster, within: Duration, pred: impl Fn(&Cluster) -> bool) -> bool {
    let mut events = c.subscribe();
    let waited = tokio::time::timeout(within, async {
        loop {
            if pred(c) {
                return true;
            }
            if events.recv().await.is_none() {
                return pred(c);
            }
        }
    })
    .await;
    waited.unwrap_or(false)
}

/// Polls `pred` every 100 ms until it holds or `within` has passed, for state that
/// changes without a cluster event (suspicions, pruned tombstones).
pub async fn poll_until(within: Duration, pred: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pred()
}

pub fn status_of(c: &Cluster, a: SocketAddr) -> Option<(NodeId, MemberStatus)> {
    c.members()
        .into_iter()
        .find(|m| m.id.addr == a)
        .map(|m| (m.id, m.status))
}

pub fn sees(c: &Cluster, a: SocketAddr, status: MemberStatus) -> bool {
    status_of(c, a).is_some_and(|(_, s)| s == status)
}

/// Starts `n` nodes with the configurations `cfg(i)` and waits until every node sees all
/// `n` Up.
pub async fn start_cluster_with(
    net: &MemoryNetwork,
    n: u16,
    cfg: impl Fn(u16) -> ClusterConfig,
) -> Vec<Cluster> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start_with(net, i, cfg(i)).await);
    }
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(30), |c| c.up_members().len()
                == n as usize)
            .await,
            "{} sees {} Up of {n}",
            node.local_id(),
            node.up_members().len()
        );
    }
    nodes
}

/// The members a subscriber has seen go Down so far (drains what is queued).
pub fn downs_seen(events: &mut tokio::sync::mpsc::UnboundedReceiver<ClusterEvent>) -> Vec<NodeId> {
    let mut downs = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let ClusterEvent::Change {
            event: MemberEvent::Down(m),
            ..
        } = ev
        {
            downs.push(m.id);
        }
    }
    downs
}
