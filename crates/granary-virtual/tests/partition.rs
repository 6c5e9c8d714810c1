//! A 2 | 3 partition: the two nodes on the minority side down themselves and stop
//! hosting; the majority serves every identity with its last written state, and no
//! identity ever handles messages on both sides — checked while both sides are busy: the
//! majority asks for every identity from the moment the partition starts, and the
//! minority keeps calling the identities it hosts until it stops hosting them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use granary_remote::faults::{Direction, FaultInjector};
use granary_virtual::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minority_side_of_a_partition_stops_hosting() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(1);
    let f = faults.clone();
    // The margin covers the two sides noticing the partition at different times; the
    // test cluster downs after 300 ms, and a loaded 2-core CI box skews detection by
    // a few hundred more.
    let mut nodes = start_nodes(5, &store, move |_, b| {
        b.host(counter_kind())
            .faults(f.clone())
            .down_margin(Duration::from_secs(1))
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
    let hosted_on_minority: Vec<(usize, String)> = {
        let mut out = Vec::new();
        for k in &keys {
            let (host, _) = nodes[0].get::<Counter>(k.clone()).ask(Where).await.unwrap();
            if let Some(i) = min_addrs.iter().position(|a| *a == host) {
                // Warms the host's own location cache, so that it keeps reaching its
                // activation when cut off from the key's directory owner.
                let here = minority[i].get::<Counter>(k.clone()).ask(Where).await;
                assert_eq!(here.unwrap().0, host);
                out.push((i, k.clone()));
            }
        }
        out
    };
    assert!(!hosted_on_minority.is_empty());
    faults.partition(&min_addrs, &maj_addrs, Direction::BothWays);

    // Both sides busy at once: the minority keeps its activations in use (read-only,
    // so the counts below stay exact) until it stops hosting them ...
    let minority_calls: Vec<_> = hosted_on_minority
        .iter()
        .map(|(i, k)| {
            let r = minority[*i].get::<Counter>(k.clone());
            tokio::spawn(async move {
                let mut answered = 0u32;
                let deadline = tokio::time::Instant::now() + WAIT;
                while tokio::time::Instant::now() < deadline {
                    match r.ask_timeout(Where, Duration::from_millis(500)).await {
                        Ok(_) => answered += 1,
                        Err(_) => break,
                    }
                }
                answered
            })
        })
        .collect();
    // ... while the majority asks for every identity from the start.
    let majority_calls: Vec<_> = keys
        .iter()
        .map(|k| {
            let r = nodes[1].get::<Counter>(k.clone());
            tokio::spawn(async move { r.ask_timeout(Add(1), Duration::from_secs(20)).await })
        })
        .collect();

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
    for (k, call) in keys.iter().zip(majority_calls) {
        assert_eq!(
            call.await.unwrap().unwrap(),
            Ok(2),
            "{k} continues from its stored state on the majority"
        );
    }
    let mut answered_during_partition = 0;
    for call in minority_calls {
        answered_during_partition += call.await.unwrap();
    }
    assert!(
        answered_during_partition > 0,
        "the minority served its activations for a while (else nothing overlapped)"
    );
    assert_eq!(
        minority
            .iter()
            .map(|n| n.activations("test.Counter"))
            .sum::<usize>(),
        0,
        "the minority hosts nothing"
    );
    // No identity handled messages on both sides at once: on the minority, its
    // activation stopped handling (host lease lapsed) before the majority's new
    // activation handled its first message. (The old activation's on_deactivate may
    // run later still, on a node slow to notice it is Down; it saves nothing then.)
    let handled = handled().lock().unwrap().clone();
    for (_, k) in &hosted_on_minority {
        let identity = format!("test.Counter/{k}");
        let on = |side: &[SocketAddr]| {
            handled
                .iter()
                .filter(|(id, node, _)| *id == identity && side.contains(node))
                .map(|(_, _, at)| *at)
                .collect::<Vec<_>>()
        };
        let last_minority = on(&min_addrs).into_iter().max().expect("handled there");
        let first_majority = on(&maj_addrs).into_iter().min().expect("handled here");
        assert!(
            last_minority < first_majority,
            "{k} was handled on both sides at once: minority until {:?} after the majority began",
            last_minority - first_majority
        );
    }
    for n in minority {
        n.kill().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}

/// A call in flight from a node when that node downs itself (a minority of one) ends
/// at once with `NodeDown` instead of waiting for its timeout: an activation blocked
/// on such a call would hold every call queued behind it until then, while the
/// identity could already be placed elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_another_node_ends_when_its_own_node_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(2);
    let f = faults.clone();
    let nodes = start_nodes(3, &store, move |_, b| {
        b.host(counter_kind()).faults(f.clone())
    })
    .await;
    // A key living on another node, located once by node 0: its calls now go straight
    // to that node.
    let mut elsewhere = None;
    for i in 0..200 {
        let key = format!("cut-off-{i}");
        let (host, _) = nodes[0]
            .get::<Counter>(key.clone())
            .ask(Where)
            .await
            .unwrap();
        if host != nodes[0].addr() {
            elsewhere = Some(key);
            break;
        }
    }
    let key = elsewhere.expect("random placement puts some key on another node");
    let others: Vec<SocketAddr> = nodes[1..].iter().map(|n| n.addr()).collect();
    faults.partition(&[nodes[0].addr()], &others, Direction::BothWays);
    let asked = tokio::time::Instant::now();
    let reply = nodes[0]
        .get::<Counter>(key)
        .ask_timeout(Where, Duration::from_secs(30))
        .await;
    assert!(
        matches!(reply, Err(granary_virtual::VirtualError::NodeDown)),
        "{reply:?} after {:?}",
        asked.elapsed()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the call waited {:?}",
        asked.elapsed()
    );
    faults.heal();
}
