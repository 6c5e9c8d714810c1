//! The counter kind driven through its contract only: a `granary::Client` over the
//! wire with `counter-client`'s functions, a member node that does not host the kind,
//! and the hosting node itself (the local path). Every test waits on the cluster's
//! own signals (`Node::ready`, replies), never on sleeps.

use std::time::Duration;

use counter_api::{Add, CounterApi, Get};
use counter_host::Counter;
use granary::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

granary::contract! {
    /// A contract whose kind no node hosts.
    contract NowhereApi {
        kind = "examples.Nowhere";
        key = String;
        accepts = [Get];
    }
}

/// A node hosting the counter kind (in-memory store), ready to take activations.
async fn host() -> Node {
    let node = Node::builder()
        .store("memory:")
        .host(Counter::kind())
        .start()
        .await
        .expect("node starts");
    node.ready(WAIT).await.expect("ready");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_links_only_the_contract_drives_the_kind_over_the_wire() {
    let node = host().await;
    let client = Client::connect([node.addr()])
        .await
        .expect("client connects");
    assert_eq!(counter_client::bump(&client, "alice", 2).await.unwrap(), 2);
    assert_eq!(counter_client::bump(&client, "alice", 3).await.unwrap(), 5);
    assert_eq!(counter_client::bump(&client, "bob", 40).await.unwrap(), 40);
    assert_eq!(counter_client::read(&client, "alice").await.unwrap(), 5);
    // The host's handler answers a typed error through the contract, too.
    let overflow = counter_client::bump(&client, "alice", u64::MAX).await;
    assert!(
        matches!(overflow, Err(counter_client::BumpError::NotStored(_))),
        "{overflow:?}"
    );
    assert_eq!(counter_client::read(&client, "alice").await.unwrap(), 5);
    // The implementation's own ref sees what the contract ref wrote: one identity.
    assert_eq!(
        node.get::<Counter>("alice".to_string())
            .ask(Get)
            .await
            .unwrap(),
        5
    );
    let alice = counter_client::counter(&client, "alice");
    assert_eq!(alice.identity().to_string(), "examples.Counter/alice");
    client.close().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosting_node_asks_its_own_kind_through_a_contract_ref() {
    let node = host().await;
    let counter = node.contract::<CounterApi>("local".to_string());
    assert_eq!(counter.ask(Add(4)).await.unwrap(), Ok(4));
    counter.tell(Add(1)).await.unwrap();
    // Same caller, same activation, one mailbox: the ask is served after the tell.
    assert_eq!(counter.ask(Get).await.unwrap(), 5);
    assert_eq!(node.activations("examples.Counter"), 1, "activated here");
    assert_eq!(
        node.get::<Counter>("local".to_string())
            .ask(Get)
            .await
            .unwrap(),
        5
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_does_not_host_the_kind_reaches_it_through_the_contract() {
    let hosting = host().await;
    let other = Node::builder()
        .store("memory:")
        .seeds([hosting.addr()])
        .start()
        .await
        .expect("second node starts");
    other.ready(WAIT).await.expect("second node ready");
    let counter = other.contract::<CounterApi>("shared".to_string());
    assert_eq!(counter.ask(Add(7)).await.unwrap(), Ok(7));
    assert_eq!(hosting.activations("examples.Counter"), 1);
    assert_eq!(other.activations("examples.Counter"), 0);
    assert_eq!(
        hosting
            .contract::<CounterApi>("shared".to_string())
            .ask(Get)
            .await
            .unwrap(),
        7
    );
    other.shutdown().await;
    hosting.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_whose_kind_nobody_hosts_fails_with_no_host() {
    let node = host().await;
    let client = Client::connect([node.addr()])
        .await
        .expect("client connects");
    let from_client = client
        .contract::<NowhereApi>("x".to_string())
        .ask(Get)
        .await;
    assert!(
        matches!(from_client, Err(VirtualError::NoHost(ref kind)) if kind == "examples.Nowhere"),
        "{from_client:?}"
    );
    let from_node = node.contract::<NowhereApi>("x".to_string()).ask(Get).await;
    assert!(
        matches!(from_node, Err(VirtualError::NoHost(_))),
        "{from_node:?}"
    );
    client.close().await;
    node.shutdown().await;
}
