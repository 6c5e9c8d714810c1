//! A 2 | 3 partition (fault injection on every channel, so membership splits too):
//! both sides keep updating, each side agrees within itself, the sides differ; a
//! Majority write succeeds on the majority side and times out on the minority side.
//! The partition is held until the majority marks the minority Down. After healing
//! every replica converges, with add-wins for an element removed on one
//! side while re-added on the other.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{start_nodes, wait_until};
use granary_cluster::MemberStatus;
use granary_crdt::{Consistency, GCounter, ORSet, ReplicatorError};
use granary_remote::faults::{Direction, FaultInjector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sides_of_a_partition_diverge_and_converge_after_healing() {
    let faults = FaultInjector::new(11);
    let nodes = start_nodes(5, &faults).await;
    let sets: Vec<_> = nodes
        .iter()
        .map(|n| n.replicator.crdt::<ORSet<String>>("items").expect("open"))
        .collect();
    let hits: Vec<_> = nodes
        .iter()
        .map(|n| n.replicator.crdt::<GCounter>("hits").expect("open"))
        .collect();
    let owned = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();

    sets[0]
        .update(|s, me| s.add(me, "shared".to_string()))
        .expect("add");
    sets[4]
        .update(|s, me| s.add(me, "gone".to_string()))
        .expect("add");
    wait_until(
        "everyone has the first two items",
        Duration::from_secs(10),
        || {
            sets.iter()
                .all(|s| s.value().expect("value") == owned(&["gone", "shared"]))
        },
    )
    .await;

    let (minority, majority): (Vec<_>, Vec<_>) = (
        nodes[..2].iter().map(|n| n.addr()).collect(),
        nodes[2..].iter().map(|n| n.addr()).collect(),
    );
    faults.partition(&minority, &majority, Direction::BothWays);

    for i in 0..20 {
        sets[i % 2]
            .update(|s, me| s.add(me, format!("minority-{i}")))
            .expect("add");
        sets[2 + i % 3]
            .update(|s, me| s.add(me, format!("majority-{i}")))
            .expect("add");
        hits[i % 5].update(|c, me| c.increment(me, 1)).expect("inc");
    }
    // Concurrently: the minority removes "shared" and "gone"; the majority re-adds
    // "shared" (add wins) and leaves "gone" alone (the remove wins).
    sets[1]
        .update(|s, _| s.remove(&"shared".to_string()))
        .expect("remove");
    sets[1]
        .update(|s, _| s.remove(&"gone".to_string()))
        .expect("remove");
    sets[3]
        .update(|s, me| s.add(me, "shared".to_string()))
        .expect("add");

    let write = Consistency::Majority(Duration::from_millis(600));
    hits[2]
        .update_with(write, |c, me| c.increment(me, 1))
        .await
        .expect("a majority is reachable from the majority side");
    match hits[0].update_with(write, |c, me| c.increment(me, 1)).await {
        Err(ReplicatorError::Timeout {
            needed: 3, reached, ..
        }) => assert!(reached <= 2),
        other => panic!("a Majority write on the minority side must time out: {other:?}"),
    }

    let side_value = |side: &[usize]| {
        let values: Vec<_> = side
            .iter()
            .map(|&i| sets[i].value().expect("value"))
            .collect();
        values
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| values[0].clone())
    };
    wait_until(
        "each side agrees within itself",
        Duration::from_secs(10),
        || side_value(&[0, 1]).is_some() && side_value(&[2, 3, 4]).is_some(),
    )
    .await;
    let (small, large) = (
        side_value(&[0, 1]).unwrap(),
        side_value(&[2, 3, 4]).unwrap(),
    );
    assert!(!small.contains("majority-0") && !large.contains("minority-0"));
    assert!(!small.contains("shared") && large.contains("shared"));

    // Hold the partition until membership has split too (the majority marks the
    // minority Down), so healing must also survive a rejoin.
    wait_until(
        "the majority sees the minority Down",
        Duration::from_secs(10),
        || {
            nodes[2..].iter().all(|n| {
                n.cluster
                    .members()
                    .iter()
                    .filter(|m| minority.contains(&m.id.addr))
                    .all(|m| m.status == MemberStatus::Down)
            })
        },
    )
    .await;
    faults.heal();
    let mut expected: BTreeSet<String> = (0..20)
        .flat_map(|i| [format!("minority-{i}"), format!("majority-{i}")])
        .collect();
    expected.insert("shared".to_string());
    wait_until(
        "every replica converges after healing",
        Duration::from_secs(20),
        || {
            sets.iter().all(|s| s.value().expect("value") == expected)
                && hits.iter().all(|c| c.value().expect("value") == 22)
        },
    )
    .await;
}
