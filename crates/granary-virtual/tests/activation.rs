//! Activation on first message and single activation under concurrent first
//! messages from every node.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_message_activates_and_state_persists() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| b.host(counter_kind())).await;
    let a = nodes[1].get::<Counter>("first-1".to_string());
    assert_eq!(
        log_of("test.Counter/first-1").activations,
        0,
        "getting a ref activates nothing"
    );
    assert_eq!(a.ask(Add(2)).await.unwrap(), Ok(2));
    assert_eq!(a.ask(Add(3)).await.unwrap(), Ok(5));
    let from_other = nodes[0].get::<Counter>("first-1".to_string());
    assert_eq!(from_other.ask(Add(1)).await.unwrap(), Ok(6));
    assert_eq!(log_of("test.Counter/first-1").activations, 1);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_times_100_concurrent_first_messages_make_one_activation() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    let mut calls = Vec::new();
    for node in &nodes {
        for _ in 0..100 {
            let r = node.get::<Counter>("hot".to_string());
            calls.push(tokio::spawn(async move { r.ask(Add(1)).await }));
        }
    }
    let mut max = 0;
    for c in calls {
        let n = c.await.unwrap().unwrap().unwrap();
        max = max.max(n);
    }
    assert_eq!(max, 300, "every increment landed on the one activation");
    let log = log_of("test.Counter/hot");
    assert_eq!(log.activations, 1, "{log:?}");
    let total: usize = nodes.iter().map(|n| n.activations("test.Counter")).sum();
    assert_eq!(total, 1);
    for n in nodes {
        n.shutdown().await;
    }
}
