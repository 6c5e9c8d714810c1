//! An external client, and each placement strategy placing where it says.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use granary_virtual::prelude::*;
use granary_virtual::{PlacementRequest, PlacementStrategy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_outside_the_cluster_reaches_virtual_actors() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| b.host(counter_kind())).await;
    let client = Client::connect([nodes[0].addr()]).await.unwrap();
    assert_eq!(
        client.members().len(),
        2,
        "learned the members from a member"
    );
    let r = client.get::<Counter>("client-1".to_string());
    assert_eq!(r.ask(Add(3)).await.unwrap(), Ok(3));
    let (host, _) = r.ask(Where).await.unwrap();
    assert!(nodes.iter().any(|n| n.addr() == host));
    assert!(
        nodes.iter().all(|n| n.cluster().up_members().len() == 2),
        "the client is no member"
    );
    assert_eq!(
        nodes[1]
            .get::<Counter>("client-1".to_string())
            .ask(Add(1))
            .await
            .unwrap(),
        Ok(4)
    );
    client.close().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// A client told to listen on another loopback address listens there, and members
/// reach it there with their replies (the test bed's clients bind to their network
/// namespace's address this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_binds_to_the_address_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| b.host(counter_kind())).await;
    let bind: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let client = Client::builder()
        .seeds([nodes[0].addr()])
        .cluster_secret("granary", b"granary-dev-secret".to_vec())
        .bind(bind)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.addr().ip(), bind.ip(), "listens where it was told");
    assert_ne!(client.addr().port(), 0, "port 0 picked a port");
    let r = client.get::<Counter>("bound-client".to_string());
    assert_eq!(
        r.ask(Add(2)).await.unwrap(),
        Ok(2),
        "replies reach it there"
    );
    client.close().await;
    for n in nodes {
        n.shutdown().await;
    }
}

async fn hosts_for(nodes: &[Node], from: usize, prefix: &str, n: usize) -> Vec<SocketAddr> {
    let mut hosts = Vec::new();
    for i in 0..n {
        let r = nodes[from].get::<Counter>(format!("{prefix}-{i}"));
        hosts.push(r.ask(Where).await.unwrap().0);
    }
    hosts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_local_places_on_the_calling_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| {
        b.host(counter_kind().placement(Placement::PreferLocal))
    })
    .await;
    for (i, node) in nodes.iter().enumerate() {
        let hosts = hosts_for(&nodes, i, &format!("local{i}"), 10).await;
        assert!(hosts.iter().all(|h| *h == node.addr()), "{hosts:?}");
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_places_on_the_directory_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| {
        b.host(counter_kind().placement(Placement::Hash))
    })
    .await;
    let ring = nodes[0].cluster().ring();
    for i in 0..20 {
        let key = format!("hash-{i}");
        let counter = nodes[1].get::<Counter>(key.clone());
        let host = counter.ask(Where).await.unwrap().0;
        let owner = ring
            .owner(format!("test.Counter/{key}").as_bytes())
            .unwrap()
            .addr;
        assert_eq!(host, owner);
        // The ref's next call reuses the location it reached (no lookup either).
        assert_eq!(counter.ask(Add(1)).await.unwrap(), Ok(1));
        assert_eq!(counter.ask(Where).await.unwrap(), (owner, 1));
    }
    // Each first call went straight to the owner (`door.rs`, "`<key>#*`"), not
    // through a lookup whose answer the caller would have cached.
    assert_eq!(
        nodes[1].cached_locations(),
        0,
        "a hash-placed identity is called at its owner without a lookup"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_hosting_the_kind_are_chosen_and_random_spreads() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    // Node 2 does not host the kind.
    let nodes = start_nodes(
        3,
        &store,
        |i, b| if i < 2 { b.host(counter_kind()) } else { b },
    )
    .await;
    let hosts = hosts_for(&nodes, 2, "rand", 30).await;
    assert!(hosts.iter().all(|h| *h != nodes[2].addr()));
    assert!(
        hosts.contains(&nodes[0].addr()) && hosts.contains(&nodes[1].addr()),
        "{hosts:?}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_least_loaded_balance_activations() {
    for placement in [Placement::RoundRobin, Placement::LeastLoaded] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_url(&dir);
        let p = placement.clone();
        let nodes = start_nodes(3, &store, move |_, b| {
            b.host(counter_kind().placement(p.clone()))
        })
        .await;
        let name = format!("{placement:?}");
        hosts_for(&nodes, 0, &name, 60).await;
        let counts: Vec<usize> = nodes
            .iter()
            .map(|n| n.activations("test.Counter"))
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 60);
        // Each directory owner rotates (or balances) on its own, so the spread is
        // even within a small margin.
        assert!(
            counts.iter().all(|c| (12..=28).contains(c)),
            "{name}: {counts:?}"
        );
        for n in nodes {
            n.shutdown().await;
        }
    }
}

/// Under random placement the caller places: its first call goes to a random host,
/// which claims the identity at its directory owner (`runtime/claim.rs`). Callers on
/// the other nodes pick their own random hosts, which are wrong two times in three:
/// there the owner answers where the identity lives, the host refuses the call and
/// the caller looks it up. Every identity lives once, and every call reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_placement_is_the_caller_s_and_each_identity_lives_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    let keys: Vec<String> = (0..60).map(|i| format!("placed-{i}")).collect();
    let mut first_hosts = Vec::new();
    for key in &keys {
        let counter = nodes[1].get::<Counter>(key.clone());
        assert_eq!(counter.ask(Add(1)).await.unwrap(), Ok(1));
        first_hosts.push(counter.ask(Where).await.unwrap().0);
    }
    let counts: Vec<usize> = (nodes.iter())
        .map(|n| n.activations("test.Counter"))
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), keys.len(), "{counts:?}");
    assert!(
        counts.iter().all(|c| *c >= 5),
        "the caller's random picks spread: {counts:?}"
    );
    for (key, host) in keys.iter().zip(&first_hosts) {
        for caller in [&nodes[0], &nodes[2]] {
            let counter = caller.get::<Counter>(key.clone());
            assert!(counter.ask(Add(1)).await.unwrap().is_ok());
        }
        let reached = nodes[0].get::<Counter>(key.clone()).ask(Where).await;
        assert_eq!(reached.unwrap(), (*host, 3), "{key}: one activation");
    }
    let after: Vec<usize> = (nodes.iter())
        .map(|n| n.activations("test.Counter"))
        .collect();
    assert_eq!(after, counts, "no call started a second activation");
    for n in nodes {
        n.shutdown().await;
    }
}

/// Tells do not go to a host the caller picks: one that found the identity living
/// elsewhere would refuse it, and a tell, already sent, would be lost. Every tell from
/// the nodes that did not place an identity arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_to_identities_living_elsewhere_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    let keys: Vec<String> = (0..30).map(|i| format!("told-{i}")).collect();
    for key in &keys {
        let counter = nodes[0].get::<Counter>(key.clone());
        assert_eq!(counter.ask(Add(1)).await.unwrap(), Ok(1));
    }
    for key in &keys {
        for caller in [&nodes[1], &nodes[2]] {
            caller
                .get::<Counter>(key.clone())
                .tell(Add(1))
                .await
                .unwrap();
        }
    }
    // Each identity handled its ask and the two tells: three messages in the log.
    let handled_of = |key: &str| {
        let identity = format!("test.Counter/{key}");
        (handled().lock().unwrap())
            .iter()
            .filter(|(id, _, _)| *id == identity)
            .count()
    };
    wait_for("every tell handled", || {
        keys.iter().all(|key| handled_of(key) >= 3)
    })
    .await;
    for key in &keys {
        let (_, n) = nodes[0]
            .get::<Counter>(key.clone())
            .ask(Where)
            .await
            .unwrap();
        assert_eq!(n, 3, "{key}: {n} of 3 adds counted");
    }
    for n in nodes {
        n.shutdown().await;
    }
}

struct Highest;
impl PlacementStrategy for Highest {
    fn place(&self, req: &PlacementRequest<'_>) -> SocketAddr {
        *req.candidates.iter().max().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_strategy_decides_placement() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| {
        b.host(counter_kind().placement(Placement::Custom(Arc::new(Highest))))
    })
    .await;
    let highest = nodes.iter().map(|n| n.addr()).max().unwrap();
    let hosts = hosts_for(&nodes, 0, "custom", 10).await;
    assert!(hosts.iter().all(|h| *h == highest), "{hosts:?}");
    for n in nodes {
        n.shutdown().await;
    }
}

/// Under hash placement a member sends its first call straight to the identity's
/// owner; when the identity lives elsewhere (activated before its range moved), the
/// owner's door refuses it and the caller looks the identity up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sent_to_the_owner_of_an_identity_living_elsewhere_is_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let configure =
        |_, b: granary_virtual::NodeBuilder| b.host(counter_kind().placement(Placement::Hash));
    let first = start_nodes(1, &store, configure).await.remove(0);
    let keys: Vec<String> = (0..64).map(|i| format!("moved-{i}")).collect();
    for key in &keys {
        assert_eq!(
            first.get::<Counter>(key.clone()).ask(Add(1)).await.unwrap(),
            Ok(1)
        );
    }
    let mut others = Vec::new();
    for i in 1..3 {
        let builder = Node::builder()
            .store(&store)
            .seeds([first.addr()])
            .cluster_config(cluster_config());
        others.push(configure(i, builder).start().await.expect("node starts"));
    }
    for node in std::iter::once(&first).chain(&others) {
        assert!(wait_members(node, 3).await, "all three Up");
        node.ready(WAIT).await.expect("a host lease");
    }
    let ring = first.cluster().ring();
    let (owner, caller) = (&others[0], &others[1]);
    let key = (keys.iter())
        .find(|k| {
            let position = format!("test.Counter/{k}");
            ring.owner(position.as_bytes()).map(|n| n.addr) == Some(owner.addr())
        })
        .expect("one of 64 keys moved to the second node");
    let (host, n) = caller.get::<Counter>(key.clone()).ask(Where).await.unwrap();
    assert_eq!(
        (host, n),
        (first.addr(), 1),
        "the activation on the first node answers"
    );
    assert_eq!(
        caller.cached_locations(),
        1,
        "refused by the owner's door, then located through a lookup"
    );
    assert_eq!(first.activations(Counter::KIND), keys.len(), "none moved");
    for node in others.into_iter().chain([first]) {
        node.shutdown().await;
    }
}
