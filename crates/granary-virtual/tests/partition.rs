//! A 2 | 3 partition: the two nodes on the minority side down themselves and stop
//! hosting; the majority serves every identity with its last written state, and no
//! identity is ever live on both sides.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use granary_remote::faults::{Direction, FaultInjector};
use granary_virtual::Node;

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let ok = tokio::time::timeout(WAIT, async {
        // Polls a condition that no event announces (the deactivation of every
        // activation after the node saw itself Down).
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if cond() {
                return;
            }
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minority_side_of_a_partition_stops_hosting() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(1);
    let f = faults.clone();
    let mut nodes = start_nodes(5, &store, move |_, b| {
        b.host(counter_kind()).faults(f.clone())
    })
    .await;
    let keys: Vec<String> = (0..25).map(|i| format!("part-{i}")).collect();
    for k in &keys {
        assert_eq!(
            nodes[0]
                .get::<Counter>(k.clone())
                .ask(Add(1))
                .await
                .unwrap(),
            Ok(1)
        );
    }
    let minority_hosted: usize = nodes[3..]
        .iter()
        .map(|n| n.activations("test.Counter"))
        .sum();
    assert!(
        minority_hosted > 0,
        "random placement put some on the minority side"
    );

    let minority: Vec<Node> = nodes.split_off(3);
    let min_addrs: Vec<SocketAddr> = minority.iter().map(|n| n.addr()).collect();
    let maj_addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    faults.partition(&min_addrs, &maj_addrs, Direction::BothWays);

    for n in &minority {
        wait_for("the minority to down itself and deactivate", || {
            !n.cluster()
                .up_members()
                .iter()
                .any(|m| m.id.addr == n.addr())
                && n.activations("test.Counter") == 0
        })
        .await;
    }
    for n in &nodes {
        assert!(wait_members(n, 3).await, "the majority keeps 3 Up");
    }
    for k in &keys {
        let got = nodes[1]
            .get::<Counter>(k.clone())
            .ask_timeout(Add(1), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            got,
            Ok(2),
            "{k} continues from its stored state on the majority"
        );
    }
    assert_eq!(
        minority
            .iter()
            .map(|n| n.activations("test.Counter"))
            .sum::<usize>(),
        0,
        "the minority hosts nothing"
    );
    for k in &keys {
        let log = log_of(&format!("test.Counter/{k}"));
        assert!(log.max_live <= 1, "{k} was live twice at once: {log:?}");
    }
    for n in minority {
        n.kill().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}
