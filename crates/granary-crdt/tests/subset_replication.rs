//! Replication to a subset of the members (issue 7): a CRDT opened with `replicas:
//! Some(2)` on 5 nodes lives on exactly the ring's preference list for its name;
//! reads and updates from the other nodes are routed to the holders; when a holder
//! is killed, the next node of the preference list gets the state and every read
//! agrees; when a node joins, holders it displaces hand over and drop their state.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::{replicator_config, start_node, start_nodes, wait_until, TestNode};
use granary_crdt::{Consistency, CrdtHandle, GCounter, ReplicatorError};
use granary_remote::faults::FaultInjector;

const NAME: &str = "clicks";

fn preference_list(node: &TestNode, n: usize) -> BTreeSet<SocketAddr> {
    preference_list_of(node, NAME, n)
}

fn preference_list_of(node: &TestNode, name: &str, n: usize) -> BTreeSet<SocketAddr> {
    node.cluster
        .ring()
        .preference_list(name.as_bytes(), n)
        .into_iter()
        .map(|m| m.addr)
        .collect()
}

fn holders(handle: &CrdtHandle<GCounter>) -> BTreeSet<SocketAddr> {
    handle
        .holders()
        .expect("holders")
        .expect("a subset")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_five_hold_the_value_and_a_killed_holder_is_replaced() {
    let faults = FaultInjector::new(3);
    let mut nodes = start_nodes(5, &faults).await;
    let handles: Vec<CrdtHandle<GCounter>> = nodes
        .iter()
        .map(|n| {
            n.replicator
                .crdt_with_replicas::<GCounter>(NAME, Some(2))
                .expect("open")
        })
        .collect();
    let expected = preference_list(&nodes[0], 2);
    assert_eq!(expected.len(), 2);
    for (node, handle) in nodes.iter().zip(&handles) {
        assert_eq!(holders(handle), expected, "holders seen by {}", node.addr());
        assert_eq!(
            handle.is_holder().expect("is_holder"),
            expected.contains(&node.addr())
        );
    }
    let holder = nodes
        .iter()
        .position(|n| expected.contains(&n.addr()))
        .expect("a holder");
    let outsider = nodes
        .iter()
        .position(|n| !expected.contains(&n.addr()))
        .expect("a non-holder");

    // Updates: locally on a holder, routed from a non-holder (the synchronous form is
    // refused there: it would need the state).
    handles[holder]
        .update(|c, me| c.increment(me, 3))
        .expect("update");
    assert!(matches!(
        handles[outsider].update(|c, me| c.increment(me, 1)),
        Err(ReplicatorError::NotHolder { .. })
    ));
    handles[outsider]
        .update_with(Consistency::Local, |c, me| c.increment(me, 5))
        .await
        .expect("routed update");
    handles[outsider]
        .update_with(Consistency::All(Duration::from_secs(10)), |c, me| {
            c.increment(me, 2)
        })
        .await
        .expect("routed update at All");

    // Exactly the preference list holds the value; the others keep nothing.
    wait_until(
        "the holders have 10, the others nothing",
        Duration::from_secs(15),
        || {
            nodes.iter().zip(&handles).all(|(node, handle)| {
                let value = handle.value().expect("value");
                if expected.contains(&node.addr()) {
                    value == 10
                } else {
                    value == 0
                }
            })
        },
    )
    .await;
    // Reads from anyone, at every level, see the holders' value.
    for handle in &handles {
        assert_eq!(handle.read(Consistency::Local).await.expect("read"), 10);
        let all = Consistency::All(Duration::from_secs(10));
        assert_eq!(handle.read(all).await.expect("read at All"), 10);
    }

    // Kill one holder: the next member of the preference list takes over the state.
    let victim = nodes.remove(holder);
    let victim_addr = victim.addr();
    let mut handles = handles;
    handles.remove(holder);
    victim.kill().await;
    wait_until(
        "every survivor sees two holders without the victim",
        Duration::from_secs(20),
        || {
            nodes.iter().zip(&handles).all(|(node, handle)| {
                let now = holders(handle);
                now.len() == 2 && !now.contains(&victim_addr) && now == preference_list(node, 2)
            })
        },
    )
    .await;
    let replaced = holders(&handles[0]);
    let newcomer = *replaced.difference(&expected).next().expect("a new holder");
    wait_until(
        "the new holder got the state; non-holders hold nothing",
        Duration::from_secs(15),
        || {
            nodes.iter().zip(&handles).all(|(node, handle)| {
                let value = handle.value().expect("value");
                if replaced.contains(&node.addr()) {
                    value == 10
                } else {
                    value == 0
                }
            })
        },
    )
    .await;
    assert!(nodes.iter().any(|n| n.addr() == newcomer));
    for handle in &handles {
        let all = Consistency::All(Duration::from_secs(10));
        assert_eq!(handle.read(all).await.expect("read after the kill"), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_over_and_displaced_holders_drop_their_state() {
    const NAMES: usize = 12;
    let faults = FaultInjector::new(4);
    let mut nodes = start_nodes(4, &faults).await;
    let names: Vec<String> = (0..NAMES).map(|i| format!("counter-{i}")).collect();
    let open = |node: &TestNode| -> Vec<CrdtHandle<GCounter>> {
        names
            .iter()
            .map(|name| {
                node.replicator
                    .crdt_with_replicas::<GCounter>(name, Some(2))
                    .expect("open")
            })
            .collect()
    };
    let mut handles: Vec<Vec<CrdtHandle<GCounter>>> = nodes.iter().map(open).collect();
    for (i, handle) in handles[0].iter().enumerate() {
        handle
            .update_with(Consistency::All(Duration::from_secs(10)), |c, me| {
                c.increment(me, i as u64 + 1)
            })
            .await
            .expect("update");
    }
    let before: Vec<BTreeSet<SocketAddr>> = names
        .iter()
        .map(|name| preference_list_of(&nodes[0], name, 2))
        .collect();

    let seed = nodes[0].addr();
    nodes.push(start_node(&faults, &replicator_config(), vec![seed]).await);
    handles.push(open(&nodes[4]));
    wait_until("every node sees 5 Up", Duration::from_secs(20), || {
        nodes.iter().all(|n| n.cluster.up_members().len() == 5)
    })
    .await;
    let after: Vec<BTreeSet<SocketAddr>> = names
        .iter()
        .map(|name| preference_list_of(&nodes[0], name, 2))
        .collect();
    let moved: Vec<usize> = (0..NAMES).filter(|i| before[*i] != after[*i]).collect();
    assert!(!moved.is_empty(), "the newcomer took no name over");

    wait_until(
        "the holders of every name have its value, nobody else has anything",
        Duration::from_secs(20),
        || {
            (0..NAMES).all(|i| {
                nodes.iter().zip(&handles).all(|(node, hs)| {
                    let value = hs[i].value().expect("value");
                    if after[i].contains(&node.addr()) {
                        value == i as u64 + 1
                    } else {
                        value == 0
                    }
                })
            })
        },
    )
    .await;
    for hs in &handles {
        for (i, handle) in hs.iter().enumerate() {
            let read = handle.read(Consistency::All(Duration::from_secs(10))).await;
            assert_eq!(read.expect("read"), i as u64 + 1);
        }
    }
}
