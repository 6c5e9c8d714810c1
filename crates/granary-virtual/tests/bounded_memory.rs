//! Per-identity memory a node keeps after activations end (issue 13): the location
//! cache forgets a passivated identity and never grows past its bound.

mod common;

use std::time::Duration;

use common::*;
use granary_virtual::prelude::*;

/// Waits (on a deadline, polling the node's counters) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_identities_leave_no_cached_location() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(1, &store_url(&dir), |_, b| {
        b.host(counter_kind().idle_timeout(Duration::from_millis(100)))
    })
    .await;
    let node = &nodes[0];
    for i in 0..300 {
        node.get::<Counter>(format!("mem-{i}"))
            .ask(Add(1))
            .await
            .unwrap()
            .unwrap();
    }
    // Its own activations are found in the node's local table: none takes a cache
    // entry, so an activation costs no memory in the cache while it lives.
    assert_eq!(
        node.cached_locations(),
        0,
        "local activations are not cached"
    );
    assert!(
        eventually(|| node.activations(Counter::KIND) == 0).await,
        "after passivation: {} activations",
        node.activations(Counter::KIND),
    );
    assert_eq!(node.cached_locations(), 0);
}

/// Node 0 hosts nothing, so every identity it calls lives on node 1 and its location
/// is cached on node 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_cache_stays_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(2, &store_url(&dir), |i, b| {
        if i == 0 {
            b.location_cache(50)
        } else {
            b.host(counter_kind())
        }
    })
    .await;
    let caller = &nodes[0];
    for i in 0..200 {
        caller
            .get::<Counter>(format!("bound-{i}"))
            .ask(Add(1))
            .await
            .unwrap()
            .unwrap();
        assert!(
            caller.cached_locations() <= 50,
            "{}",
            caller.cached_locations()
        );
    }
    assert_eq!(caller.cached_locations(), 50);
    assert_eq!(nodes[1].activations(Counter::KIND), 200);
    assert_eq!(
        nodes[1].cached_locations(),
        0,
        "the host caches none of its own"
    );
    // Evicted identities are found again through the directory.
    let (_, n) = caller
        .get::<Counter>("bound-0".to_string())
        .ask(Where)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
