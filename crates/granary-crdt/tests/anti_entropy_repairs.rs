//! Anti-entropy repairs what deltas cannot: a node whose pushes reach only one of its
//! two peers crashes; the peer that got the change passes it on by digest comparison
//! and full-state repair, so all survivors converge.

mod common;

use std::time::Duration;

use common::{replicator_config, start_nodes_with, wait_until};
use granary_crdt::{ORSet, ReplicatorConfig};
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_authors_partial_delivery_is_repaired_by_the_survivors() {
    let faults = FaultInjector::new(3);
    let config = ReplicatorConfig {
        anti_entropy_interval: Some(Duration::from_millis(300)),
        ..replicator_config()
    };
    let mut nodes = start_nodes_with(3, &faults, config).await;
    let sets: Vec<_> = nodes
        .iter()
        .map(|n| n.replicator.crdt::<ORSet<String>>("items").expect("open"))
        .collect();
    let (author, reached, missed) = (nodes[0].addr(), 1, 2);
    // Every replication frame from the author to the third node is lost.
    faults.set(
        Scope {
            from: Some(author),
            to: Some(nodes[missed].addr()),
            channel: Some("data".into()),
        },
        LinkFaults {
            drop_probability: 1.0,
            delay: None,
        },
    );
    sets[0]
        .update(|s, me| s.add(me, "only-two-know".to_string()))
        .expect("add");
    wait_until(
        "the second node has the change",
        Duration::from_secs(5),
        || {
            sets[reached]
                .value()
                .expect("value")
                .contains("only-two-know")
        },
    )
    .await;
    assert!(!sets[missed]
        .value()
        .expect("value")
        .contains("only-two-know"));

    // The author crashes before it could ever reach the third node.
    let crashed = nodes.remove(0);
    crashed.replicator.stop();
    crashed.cluster.stop().await;
    crashed.remote.shutdown();
    faults.clear();

    wait_until(
        "the third node is repaired",
        Duration::from_secs(10),
        || {
            sets[missed]
                .value()
                .expect("value")
                .contains("only-two-know")
        },
    )
    .await;
    let repairs: u64 = nodes
        .iter()
        .map(|n| n.replicator.stats().repairs_sent)
        .sum();
    assert!(repairs > 0, "the change arrived by anti-entropy repair");
}
