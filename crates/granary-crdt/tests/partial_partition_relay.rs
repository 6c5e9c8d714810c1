//! A partial partition (issue 7): the replication link A–C is cut while B reaches
//! both. A's update must reach C (and C's reach A) through B well before anti-entropy
//! (set to 20 s here) could repair it.

mod common;

use std::time::{Duration, Instant};

use common::{replicator_config, start_nodes_with, wait_until, CRDT_CHANNEL};
use granary_crdt::{ORSet, ReplicatorConfig};
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_crosses_a_cut_link_through_a_third_peer() {
    let faults = FaultInjector::new(5);
    let config = ReplicatorConfig {
        anti_entropy_interval: Some(Duration::from_secs(20)),
        channel: Some(CRDT_CHANNEL.to_string()),
        ..replicator_config()
    };
    let nodes = start_nodes_with(3, &faults, config).await;
    let (a, c) = (nodes[0].addr(), nodes[2].addr());
    let sets: Vec<_> = nodes
        .iter()
        .map(|n| n.replicator.crdt::<ORSet<String>>("items").expect("open"))
        .collect();

    // Cut A–C on the replication channel only (membership still sees everyone Up).
    let cut = LinkFaults {
        drop_probability: 1.0,
        delay: None,
    };
    for (from, to) in [(a, c), (c, a)] {
        let scope = Scope {
            from: Some(from),
            to: Some(to),
            channel: Some(CRDT_CHANNEL.to_string()),
        };
        faults.set(scope, cut.clone());
    }

    let written = Instant::now();
    sets[0]
        .update(|s, me| s.add(me, "from-a".to_string()))
        .expect("add");
    sets[2]
        .update(|s, me| s.add(me, "from-c".to_string()))
        .expect("add");
    wait_until(
        "A's and C's items everywhere",
        Duration::from_secs(5),
        || {
            sets.iter().all(|s| {
                let v = s.value().expect("value");
                v.contains("from-a") && v.contains("from-c")
            })
        },
    )
    .await;
    let elapsed = written.elapsed();
    println!("converged across the cut in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}, anti-entropy is 20 s"
    );
    assert!(faults.stats().dropped > 0, "the cut dropped nothing");

    // The cut stays: later updates keep crossing it as promptly (the back-off toward
    // the cut peer must not slow the relay down round after round).
    for round in 0..5 {
        let written = Instant::now();
        let (ours, theirs) = (format!("a-{round}"), format!("c-{round}"));
        sets[0]
            .update(|s, me| s.add(me, ours.clone()))
            .expect("add");
        sets[2]
            .update(|s, me| s.add(me, theirs.clone()))
            .expect("add");
        wait_until(
            "this round's items everywhere",
            Duration::from_secs(5),
            || {
                sets.iter().all(|s| {
                    let v = s.value().expect("value");
                    v.contains(&ours) && v.contains(&theirs)
                })
            },
        )
        .await;
        let elapsed = written.elapsed();
        println!("round {round} crossed the cut in {elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(5),
            "round {round}: {elapsed:?}"
        );
    }
}
