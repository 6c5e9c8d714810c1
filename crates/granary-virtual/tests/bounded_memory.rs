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
    assert!(
        node.cached_locations() > 0,
        "locations are cached while active"
    );
    assert!(
        eventually(|| node.activations(Counter::KIND) == 0 && node.cached_locations() == 0).await,
        "after passivation: {} activations, {} cached locations",
        node.activations(Counter::KIND),
        node.cached_locations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_location_cache_stays_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(1, &store_url(&dir), |_, b| {
        b.location_cache(50).host(counter_kind())
    })
    .await;
    let node = &nodes[0];
    for i in 0..200 {
        node.get::<Counter>(format!("bound-{i}"))
            .ask(Add(1))
            .await
            .unwrap()
            .unwrap();
        assert!(node.cached_locations() <= 50, "{}", node.cached_locations());
    }
    assert_eq!(node.cached_locations(), 50);
    // Evicted identities are found again through the directory.
    let (_, n) = node
        .get::<Counter>("bound-0".to_string())
        .ask(Where)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
