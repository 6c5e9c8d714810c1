//! Calls that arrive while a cluster is forming: each identity must still get exactly
//! one activation.
//!
//! Ignored: it fails in most runs today (docs/semantics.md, "Known gap"; two of three
//! debug runs in session 23, with 13 and 16 of 300 identities activated twice; with
//! the other tests' `cluster_config` it passed five of five). A joiner is Up, and owns
//! its ranges, as soon as the node it joined through accepts it; a member that has not
//! heard of it yet still owns those ranges in its own ring, asks nobody and places on
//! itself. Found by a newcomer program in session 23; un-ignore it with the fix.

mod common;

use common::*;
use granary_virtual::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known gap: a joiner is Up before every member has seen it (docs/semantics.md)"]
async fn calls_while_the_cluster_forms_give_each_identity_one_activation() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let builder = || {
        // The default cluster settings, as a deployment has them.
        Node::builder().store(&store).host(counter_kind())
    };
    // Started back to back, as a deployment starts them, not one after another has
    // converged (as `start_nodes` waits).
    let first = builder().start().await.expect("the first node starts");
    let seeds = vec![first.addr()];
    let mut nodes = vec![first];
    for _ in 0..2 {
        let node = builder().seeds(seeds.clone()).start().await;
        nodes.push(node.expect("a node starts"));
    }
    for node in &nodes {
        node.ready(WAIT).await.expect("every node gets ready");
    }
    let keys: Vec<String> = (0..300).map(|i| format!("forming-{i}")).collect();
    let mut calls = Vec::new();
    for node in &nodes {
        for key in &keys {
            let counter = node.get::<Counter>(key.clone());
            calls.push(tokio::spawn(async move { counter.ask(Add(1)).await }));
        }
    }
    for call in calls {
        // Whether each call succeeded is not the point: where it ran is.
        let _ = call.await.expect("the call's task ran");
    }
    let twice: Vec<&String> = keys
        .iter()
        .filter(|key| log_of(&format!("test.Counter/{key}")).max_live > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{} of {} identities had two activations at once: {:?}",
        twice.len(),
        keys.len(),
        twice.iter().take(10).collect::<Vec<_>>()
    );
    for node in nodes {
        node.shutdown().await;
    }
}
