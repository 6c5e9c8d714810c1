//! A client with no listening socket: members answer on the connections it opened, it
//! talks to a few of them (its gateways), fails over when one dies, and no member ever
//! dials it.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use granary_virtual::prelude::*;

/// Asks from every node to `ids` identities, so every pair of nodes has connected
/// (lookups to every owner, activations on every host) before dials are counted.
async fn warm_up(nodes: &[Node], ids: usize) {
    for node in nodes {
        for i in 0..ids {
            let r = node.get::<Counter>(format!("warm-{i}"));
            r.ask(Where).await.unwrap();
        }
    }
}

fn dials(nodes: &[Node]) -> Vec<u64> {
    nodes.iter().map(|n| n.transport_stats().dials).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_listener_is_answered_by_three_nodes_that_never_dial_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    warm_up(&nodes, 30).await;
    let before = dials(&nodes);

    let client = Client::connect([nodes[0].addr()]).await.unwrap();
    // Its identity is a made-up address no host can be dialled at: it listens nowhere.
    let ip = client.addr().ip().to_string();
    assert!(ip.starts_with("0."), "client identity {ip}");
    assert_eq!(client.gateways().len(), 2, "talks to two members, not all");
    let mut hosts = HashSet::new();
    for round in 1..=3u64 {
        for i in 0..100 {
            let r = client.get::<Counter>(format!("dial-out-{i}"));
            assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(round), "identity {i}");
        }
    }
    for i in 0..100 {
        let (host, n) = client
            .get::<Counter>(format!("dial-out-{i}"))
            .ask(Where)
            .await
            .unwrap();
        assert_eq!(n, 3);
        hosts.insert(host);
    }
    let members: HashSet<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    assert_eq!(hosts, members, "identities on all three nodes answered");
    assert_eq!(
        dials(&nodes),
        before,
        "a node dialled while serving the client (it must answer on the client's connections)"
    );
    client.close().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_over_when_a_gateway_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| b.host(counter_kind())).await;
    let client = Client::builder()
        .seeds(nodes.iter().map(|n| n.addr()))
        .gateways(2)
        .connect()
        .await
        .unwrap();
    let ids = 40;
    let mut acked = vec![0u64; ids];
    for (i, count) in acked.iter_mut().enumerate() {
        let r = client.get::<Counter>(format!("failover-{i}"));
        assert_eq!(r.ask(Add(1)).await.unwrap(), Ok(1));
        *count += 1;
    }
    let gateways = client.gateways();
    let victim = gateways[0];
    let killed = nodes.iter().position(|n| n.addr() == victim).unwrap();
    nodes[killed].kill().await;

    // Every call goes on being answered (the killed gateway also hosted some of the
    // identities: those are activated again elsewhere from their saved state).
    for round in 0..3 {
        for (i, count) in acked.iter_mut().enumerate() {
            let r = client.get::<Counter>(format!("failover-{i}"));
            let n = r.ask(Add(1)).await.unwrap().unwrap();
            *count += 1;
            assert_eq!(
                n, *count,
                "identity {i}, round {round}: every acknowledged increment kept"
            );
        }
    }
    // The dead gateway is replaced by the member that was not one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = client.gateways();
        if !now.contains(&victim) && now.len() == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateways still {now:?} after {victim} was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.close().await;
    for (i, n) in nodes.into_iter().enumerate() {
        if i != killed {
            n.shutdown().await;
        }
    }
}
