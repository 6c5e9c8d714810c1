//! The host lease fences a node that is slow to notice it was cut off: its failure
//! detector is set to wait a minute, so it still counts every member Up while the
//! majority downs it and places its identities again — and yet its activations
//! handle nothing from the moment the majority could have placed them.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use granary_cluster::phi::PhiConfig;
use granary_remote::faults::{Direction, FaultInjector};
use granary_virtual::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_slow_to_notice_a_partition_stops_handling_before_the_majority_places() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(7);
    let f = faults.clone();
    let mut nodes = start_nodes(3, &store, move |i, b| {
        let b = b
            .host(counter_kind().placement(Placement::PreferLocal))
            .faults(f.clone());
        if i == 2 {
            // Same downing settings (so the same lease), but a failure detector
            // that tolerates a minute of silence: this node will not see the
            // partition during the test.
            let mut slow = cluster_config();
            slow.phi = PhiConfig {
                acceptable_heartbeat_pause: Duration::from_secs(60),
                ..slow.phi
            };
            b.cluster_config(slow)
        } else {
            b
        }
    })
    .await;
    let slow = nodes.pop().unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("lease-{i}")).collect();
    for k in &keys {
        // Prefer-local: activated on the slow node.
        let (host, _) = slow.get::<Counter>(k.clone()).ask(Where).await.unwrap();
        assert_eq!(host, slow.addr());
    }
    let majority: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    faults.partition(&[slow.addr()], &majority, Direction::BothWays);

    // The slow node keeps calling its own activations ...
    let stop = Arc::new(AtomicBool::new(false));
    let local_calls: Vec<_> = keys
        .iter()
        .map(|k| {
            let r = slow.get::<Counter>(k.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = 0u32;
                while !stop.load(Ordering::Acquire) {
                    if r.ask_timeout(Where, Duration::from_millis(300))
                        .await
                        .is_ok()
                    {
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    // ... while the majority downs it and serves the same identities.
    for n in &nodes {
        assert!(
            wait_members(n, 2).await,
            "the majority downs the cut-off node"
        );
    }
    for k in &keys {
        let n = nodes[1]
            .get::<Counter>(k.clone())
            .ask_timeout(Add(1), Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "{k} continues from its stored state on the majority");
    }
    assert_eq!(
        slow.cluster().up_members().len(),
        3,
        "the slow node still counts everyone Up, so only the lease can have fenced it"
    );
    stop.store(true, Ordering::Release);
    let mut answered = 0;
    for call in local_calls {
        answered += call.await.unwrap();
    }
    assert!(
        answered > 0,
        "the slow node served its activations for a while"
    );

    let handled = handled().lock().unwrap().clone();
    for k in &keys {
        let identity = format!("test.Counter/{k}");
        let times = |side: &dyn Fn(SocketAddr) -> bool| {
            handled
                .iter()
                .filter(|(id, node, _)| *id == identity && side(*node))
                .map(|(_, _, at)| *at)
                .collect::<Vec<_>>()
        };
        let last_slow = times(&|a| a == slow.addr()).into_iter().max().unwrap();
        let first_majority = times(&|a| majority.contains(&a)).into_iter().min().unwrap();
        assert!(
            last_slow < first_majority,
            "{k} handled on the cut-off node {:?} after the majority began",
            last_slow - first_majority
        );
    }
    slow.kill().await;
    for n in nodes {
        n.shutdown().await;
    }
}
