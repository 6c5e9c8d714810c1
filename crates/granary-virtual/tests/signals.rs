//! Awaitable node signals (issue 13): ready to host, all passivated, shutdown from
//! any task.

mod common;

use std::time::Duration;

use common::*;
use granary_virtual::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_is_ready_once_up_with_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let first = start_nodes(1, &store, |_, b| b.host(counter_kind())).await;
    let second = Node::builder()
        .store(&store)
        .seeds([first[0].addr()])
        .cluster_config(cluster_config())
        .host(counter_kind())
        .start()
        .await
        .unwrap();
    second
        .ready(WAIT)
        .await
        .expect("the joining node becomes ready");
    assert!(
        second
            .cluster()
            .up_members()
            .iter()
            .any(|m| m.id.addr == second.addr()),
        "ready means Up in its own view"
    );
    second.shutdown().await;
    first[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_means_on_deactivate_ran_and_the_entries_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(1, &store_url(&dir), |_, b| {
        b.host(counter_kind().idle_timeout(Duration::from_millis(100)))
    })
    .await;
    let node = &nodes[0];
    let keys: Vec<String> = (0..200).map(|i| format!("signal-{i}")).collect();
    for key in &keys {
        node.get::<Counter>(key.clone())
            .ask(Add(1))
            .await
            .unwrap()
            .unwrap();
    }
    node.passivated(Counter::KIND, WAIT)
        .await
        .expect("every activation passivates");
    for key in &keys {
        let log = log_of(&format!("{}/{key}", Counter::KIND));
        assert_eq!(log.live, 0, "on_deactivate ran for {key}");
    }
    assert_eq!(node.directory_entries(), 0, "every directory entry is gone");
    assert_eq!(node.activations(Counter::KIND), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_times_out_while_activations_live() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(1, &store_url(&dir), |_, b| b.host(counter_kind())).await;
    let node = &nodes[0];
    node.get::<Counter>("kept".to_string())
        .ask(Add(1))
        .await
        .unwrap()
        .unwrap();
    let waited = node
        .passivated(Counter::KIND, Duration::from_millis(200))
        .await;
    assert!(matches!(waited, Err(VirtualError::Timeout)), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_clone_of_a_node_shuts_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(1, &store_url(&dir), |_, b| b.host(counter_kind())).await;
    let node = nodes[0].clone();
    node.get::<Counter>("shut".to_string())
        .ask(Add(1))
        .await
        .unwrap()
        .unwrap();
    let other = node.clone();
    tokio::spawn(async move { other.shutdown().await })
        .await
        .unwrap();
    node.passivated(Counter::KIND, WAIT)
        .await
        .expect("shutdown deactivated everything");
    assert_eq!(log_of(&format!("{}/shut", Counter::KIND)).live, 0);
}
