//! Replication on a peer-to-peer overlay: five nodes whose active views hold two
//! members each, so most replicas are not connected to each other and every delta and
//! acknowledgement between them is relayed along the overlay. Increments at every node
//! converge to the exact sum everywhere, at consistency `All` too, while no node holds
//! more connections to members than its active view.

mod common;

use std::time::Duration;

use common::{cluster_config, replicator_config, start_node_on, wait_until, TestNode};
use granary_cluster::{ClusterConfig, HyParViewConfig, OverlayConfig, PlumtreeConfig};
use granary_crdt::{Consistency, PNCounter};
use granary_remote::faults::FaultInjector;

const NODES: usize = 5;
const ACTIVE_VIEW: usize = 2;

/// The members `node`'s transport keeps a peer for.
fn member_peers(node: &TestNode, nodes: &[TestNode]) -> usize {
    let members: Vec<_> = nodes.iter().map(|n| n.addr()).collect();
    (node.remote.transport().peers().into_iter())
        .filter(|p| *p != node.addr() && members.contains(p))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_converges_across_a_peer_to_peer_overlay() {
    let faults = FaultInjector::new(3);
    let config = ClusterConfig {
        overlay: OverlayConfig::PeerToPeer {
            membership: HyParViewConfig {
                active_capacity: ACTIVE_VIEW,
                passive_capacity: 6 * ACTIVE_VIEW,
                ..HyParViewConfig::default()
            },
            broadcast: PlumtreeConfig::default(),
        },
        ..cluster_config()
    };
    let mut nodes: Vec<TestNode> = Vec::new();
    for _ in 0..NODES {
        let seeds = nodes.first().map(|s| vec![s.addr()]).unwrap_or_default();
        nodes.push(start_node_on(&faults, &replicator_config(), config.clone(), seeds).await);
    }
    wait_until(
        "every node sees every member Up",
        Duration::from_secs(20),
        || nodes.iter().all(|n| n.cluster.up_members().len() == NODES),
    )
    .await;
    // Connections opened by the joins are closed once they stay outside the overlay.
    wait_until(
        "every node holds only its active view",
        Duration::from_secs(10),
        || nodes.iter().all(|n| member_peers(n, &nodes) <= ACTIVE_VIEW),
    )
    .await;

    let counters: Vec<_> = (nodes.iter())
        .map(|n| {
            n.replicator
                .crdt::<PNCounter>("hits")
                .expect("open counter")
        })
        .collect();
    let mut expected = 0i128;
    for round in 0..20u64 {
        for (i, counter) in counters.iter().enumerate() {
            let by = round + i as u64 + 1;
            expected += i128::from(by);
            counter.update(|c, me| c.increment(me, by)).expect("update");
        }
    }
    wait_until(
        "every node counts every increment",
        Duration::from_secs(20),
        || {
            counters
                .iter()
                .all(|c| c.value().expect("value") == expected)
        },
    )
    .await;
    let all = Consistency::All(Duration::from_secs(5));
    counters[0]
        .update_with(all, |c, me| c.increment(me, 5))
        .await
        .expect("a write at All reaches every replica through relays");
    assert_eq!(
        counters[3].read(all).await.expect("read at All"),
        expected + 5
    );
    for node in &nodes {
        let held = member_peers(node, &nodes);
        assert!(
            held <= ACTIVE_VIEW,
            "{} holds {held} member connections, more than its active view ({:?})",
            node.addr(),
            node.cluster.overlay_connections()
        );
    }
    for node in nodes {
        node.kill().await;
    }
}
