//! A client's call relayed through a live gateway to a host the cluster downs (paused,
//! cut off: its sockets stay open and its packets vanish) is resent to the next
//! activation as soon as the gateway sees the Down, not when the gateway's transport
//! gives up on the host (its heartbeat timeout, here 60 s).
//!
//! The chaos bed's 5 s `SIGSTOP` showed it: every identity of the paused node whose
//! calls went through another gateway waited the whole pause, although the members
//! downed the node after 1.5 s (docs/BENCHMARKS.md, "Chaos test bed").

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use granary_remote::faults::{Direction, FaultInjector};
use granary_virtual::{Client, TransportSettings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_call_to_a_downed_host_is_resent_at_the_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(7);
    let f = faults.clone();
    // The members' transports would take a minute to give up on a silent peer: only
    // the cluster's Down can end the relayed call within the client's timeout.
    let transport = TransportSettings {
        heartbeat_timeout_ms: 60_000,
        ..TransportSettings::default()
    };
    let mut nodes = start_nodes(3, &store, move |_, b| {
        b.host(counter_kind())
            .faults(f.clone())
            .transport(transport.clone())
    })
    .await;
    let client = Client::builder()
        .seeds([nodes[0].addr()])
        .cluster_secret("granary", b"granary-dev-secret".to_vec())
        .gateways(1)
        .connect()
        .await
        .unwrap();
    let gateway = client.gateways()[0];

    // An identity hosted on another node than the client's one gateway: its calls are
    // relayed. `Where` also leaves its location in the client's cache.
    let mut found = None;
    for i in 0..64 {
        let r = client.get::<Counter>(format!("relayed-{i}"));
        let (host, _) = r.ask(Where).await.unwrap();
        if host != gateway {
            found = Some((r, host));
            break;
        }
    }
    let (r, host) = found.expect("random placement put one of 64 off the gateway");

    // The host falls silent; its connections stay up.
    let others: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.addr())
        .filter(|a| *a != host)
        .collect();
    faults.partition(&[host], &others, Direction::BothWays);
    let outcome = r.ask_timeout(Add(1), Duration::from_secs(20)).await;
    assert_eq!(
        outcome.expect("resent once the gateway saw the host Down, within 20 s"),
        Ok(1),
        "the relayed Add never reached the silent host; its successor applied it once"
    );
    let (now_on, _) = r.ask(Where).await.unwrap();
    assert_ne!(now_on, host, "served by an activation on a live member");

    client.close().await;
    let silent = nodes.iter().position(|n| n.addr() == host).unwrap();
    nodes.remove(silent).kill().await;
    for n in nodes {
        n.shutdown().await;
    }
}
