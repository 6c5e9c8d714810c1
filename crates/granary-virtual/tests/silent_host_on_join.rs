//! A node joins and takes over a directory range; a host that holds an activation of
//! that range has not re-registered it with the new owner yet, and its answers do not
//! reach the new owner (a one-way cut). The new owner must not read that host's
//! silence as "not here" and place a second activation beside the live one (issue 13):
//! it fails the lookup (the caller retries) until the host answers or departs.
//!
//! The cut is exact: every control frame from the host to the joining node is
//! dropped, so the host's re-registration never gets through and it keeps the
//! activation for its own (long) control timeout before giving up on it; meanwhile a
//! call made on the joining node needs its directory.

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::{HashRing, NodeId};
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};
use granary_virtual::prelude::*;

/// The host's control timeout: how long its re-registration with the joining node
/// waits before the host gives up and deactivates the activation.
const HOST_RPC_TIMEOUT: Duration = Duration::from_secs(4);

/// Failure detection patient enough that the dropped frames (heartbeats included)
/// down nobody: the test is about the silent host, not a failover.
const PATIENCE: Duration = Duration::from_secs(20);

fn ring_key(key: &str) -> Vec<u8> {
    format!("{}/{key}", Counter::KIND).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_host_that_has_not_re_registered_holds_back_the_placement() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(11);
    let f = faults.clone();
    let configure = move |i: usize, b: granary_virtual::NodeBuilder| {
        let b = b
            // The owner places on itself, so the host of an identity is its owner.
            .host(counter_kind().placement(Placement::Hash))
            .cluster_config(patient_cluster(PATIENCE))
            .faults(f.clone())
            .ask_timeout(Duration::from_secs(25));
        if i == 2 {
            b.rpc_timeout(HOST_RPC_TIMEOUT)
        } else {
            b.rpc_timeout(Duration::from_millis(400))
        }
    };
    let mut nodes = start_nodes(3, &store, configure.clone()).await;
    let host = nodes[2].addr();
    let joiner = free_addrs(1)[0];

    // Identities the host owns (so hosts) now, that the joining node will own.
    let before: HashRing = (*nodes[0].cluster().ring()).clone();
    let mut after = before.clone();
    after.insert(NodeId::new(joiner, 1), cluster_config().vnodes);
    let keys: Vec<String> = (0..20_000)
        .map(|i| format!("silent-{i}"))
        .filter(|k| {
            before.owner(&ring_key(k)).map(|n| n.addr) == Some(host)
                && after.owner(&ring_key(k)).map(|n| n.addr) == Some(joiner)
        })
        .take(3)
        .collect();
    assert_eq!(keys.len(), 3, "some keys move from the host to the joiner");
    for key in &keys {
        let (at, _) = nodes[0]
            .get::<Counter>(key.clone())
            .ask(Where)
            .await
            .expect("placed before the join");
        assert_eq!(at, host, "hash placement puts {key} on its owner");
    }

    // The cut: nothing the host sends on the control channel reaches the joiner.
    faults.set(
        Scope {
            from: Some(host),
            to: Some(joiner),
            channel: Some("control".into()),
        },
        LinkFaults {
            drop_probability: 1.0,
            delay: None,
        },
    );
    let joined = configure(
        3,
        Node::builder()
            .bind(joiner)
            .store(&store)
            .seeds([nodes[0].addr()])
            .cluster_config(cluster_config()),
    )
    .start()
    .await
    .expect("the joiner starts");
    nodes.push(joined);
    for node in &nodes {
        assert!(wait_members(node, 4).await, "the joiner is Up everywhere");
    }
    nodes[3]
        .ready(WAIT)
        .await
        .expect("the joiner holds a lease");

    // Calls made on the joiner, which owns the identities now: its directory has no
    // entry for them, and the host that has them does not answer.
    let asks: Vec<_> = keys
        .iter()
        .map(|key| {
            let r = nodes[3].get::<Counter>(key.clone());
            tokio::spawn(async move { r.ask(Where).await })
        })
        .collect();

    // The host gives up re-registering them once its control timeout passes, and
    // deactivates them; only then may they be placed again.
    wait_for("the host deactivates what it could not re-register", || {
        nodes[2].activations(Counter::KIND) == 0
    })
    .await;
    faults.clear();

    for (key, ask) in keys.iter().zip(asks) {
        let (at, n) = ask
            .await
            .unwrap()
            .expect("answered once the host answers again");
        assert_eq!((at, n), (joiner, 0), "{key} placed on its new owner");
        let identity = format!("{}/{key}", Counter::KIND);
        assert_eq!(
            log_of(&identity).max_live,
            1,
            "never two activations of {identity} at once"
        );
    }
    for node in nodes {
        node.shutdown().await;
    }
}
