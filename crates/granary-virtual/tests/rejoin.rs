//! A node killed and restarted on the same address takes its directory ranges back:
//! an activation placed for an identity of such a range by its previous owner, while
//! the range was moving back, must end up recorded by the new owner (or not start),
//! never live beside a second one (issue 13).

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::HashRing;
use granary_virtual::prelude::*;

/// Margin after a Down before the directory places an identity of the downed node:
/// long enough for the victim to restart and rejoin inside it.
const DOWN_MARGIN: Duration = Duration::from_secs(4);

/// How long the directory owner used to wait for hosts to re-register after a
/// membership change before placing without asking them (REBUILD_GRACE before the
/// fix); the test passes that point so that a forgotten activation is not found by
/// asking.
const OLD_REBUILD_GRACE: Duration = Duration::from_secs(5);

fn ring_key(key: &str) -> Vec<u8> {
    format!("{}/{key}", Counter::KIND).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_activation_placed_by_the_old_owner_during_a_rejoin_is_never_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let configure = |_, b: granary_virtual::NodeBuilder| {
        b.down_margin(DOWN_MARGIN)
            // The owner places on itself: the old owner hosts what it places.
            .host(counter_kind().placement(Placement::Hash))
    };
    let mut nodes = start_nodes(3, &store, configure).await;
    let victim_addr = nodes[2].addr();

    // An identity the victim owns, that the first node owns while the victim is
    // out of the ring.
    let full: HashRing = (*nodes[0].cluster().ring()).clone();
    let mut without = full.clone();
    without.remove(victim_addr);
    let key = (0..10_000)
        .map(|i| format!("rejoin-{i}"))
        .find(|k| {
            full.owner(&ring_key(k)).map(|n| n.addr) == Some(victim_addr)
                && without.owner(&ring_key(k)).map(|n| n.addr) == Some(nodes[0].addr())
        })
        .expect("some key moves between the victim and the first node");
    let identity = format!("{}/{key}", Counter::KIND);

    let victim = nodes.remove(2);
    victim.kill().await;
    for node in &nodes {
        assert!(wait_members(node, 2).await, "the victim is Down");
    }

    // The first message goes to the first node, the owner while the victim is
    // out; it holds the placement back for the down margin (the identity's owner
    // went Down). Meanwhile the victim comes back on its address and takes the
    // range back.
    let first = {
        let r = nodes[1].get::<Counter>(key.clone());
        tokio::spawn(async move { r.ask(Add(1)).await })
    };
    let restarted = Node::builder()
        .bind(victim_addr)
        .store(&store)
        .seeds([nodes[0].addr()])
        .cluster_config(cluster_config());
    let restarted = configure(2, restarted)
        .start()
        .await
        .expect("victim restarts");
    nodes.push(restarted);
    for node in &nodes {
        assert!(wait_members(node, 3).await, "the victim rejoined");
    }
    assert_eq!(
        first
            .await
            .unwrap()
            .expect("the first increment is acknowledged"),
        Ok(1)
    );

    // Past the old re-registration grace, the new owner is asked directly.
    tokio::time::sleep(OLD_REBUILD_GRACE).await;
    let (live_at, n) = nodes[2]
        .get::<Counter>(key.clone())
        .ask(Where)
        .await
        .expect("the counter answers through its new owner");
    assert_eq!(n, 1, "the read sees the acknowledged increment");
    // Another member sends its call straight to the owner (hash placement): the
    // one activation answers, wherever the rejoin left it.
    let (host, n) = nodes[1]
        .get::<Counter>(key.clone())
        .ask(Where)
        .await
        .expect("the counter answers a member's call sent to its owner");
    assert_eq!((host, n), (live_at, 1), "the same activation answers");
    let live: usize = nodes.iter().map(|n| n.activations(Counter::KIND)).sum();
    assert_eq!(live, 1, "one activation of {identity} in the cluster");
    assert_eq!(
        log_of(&identity).max_live,
        1,
        "never two activations of {identity} at once"
    );
    for node in nodes {
        node.shutdown().await;
    }
}
