//! The publish-subscribe overlay (seed 002 §3.6): three virtual-actor nodes whose every
//! connection and whose membership go through the RabbitMQ server at 127.0.0.1:5672
//! (guest/guest), with no socket of their own for peers. Virtual actor asks reach
//! identities on every node; a stopped node's and a killed node's identities are
//! reactivated on the others (failure detection and downing over the broker). Skipped
//! with a reason when the broker is unreachable, unless CI=true.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use granary_virtual::{LinkKind, MembershipSettings, Node, ProviderKind, TransportSettings};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const KEYS: usize = 24;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether the broker answers; panics when it does not and CI=true.
async fn broker_up() -> bool {
    match tokio::net::TcpStream::connect("127.0.0.1:5672").await {
        Ok(_) => true,
        Err(e) if !ci() => {
            eprintln!("SKIPPED: RabbitMQ at 127.0.0.1:5672 unavailable: {e}");
            false
        }
        Err(e) => panic!("RabbitMQ is required when CI=true: {e}"),
    }
}

fn cluster_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("amqp-{tag}-{}-{nanos}", std::process::id())
}

/// Starts `n` nodes on the amqp link and provider, one after the other (each finds
/// the earlier ones on the broker), and waits until all see all Up and can host.
async fn start_broker_nodes(n: usize, store: &str, cluster: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let transport = TransportSettings {
            link: LinkKind::Amqp,
            amqp_url: Some(URL.into()),
            ..TransportSettings::default()
        };
        let membership = MembershipSettings {
            provider: ProviderKind::Amqp,
            ..MembershipSettings::default()
        };
        let node = Node::builder()
            .store(store)
            .cluster_secret(cluster, "amqp-test-secret")
            .transport(transport)
            .membership(membership)
            .cluster_config(cluster_config())
            .host(counter_kind())
            .start()
            .await
            .expect("node starts on the broker");
        nodes.push(node);
    }
    for node in &nodes {
        assert!(wait_members(node, n).await, "{} sees {n} Up", node.addr());
        node.ready(WAIT)
            .await
            .expect("every node holds a host lease");
    }
    nodes
}

/// Nothing listens at a node's address: every frame it got came through the broker.
async fn assert_no_socket(nodes: &[Node]) {
    for node in nodes {
        let dialled = tokio::net::TcpStream::connect(node.addr()).await;
        assert!(dialled.is_err(), "{} has no listening socket", node.addr());
        let stats = node.transport_stats();
        assert!(stats.frames_received > 0, "{}: {stats:?}", node.addr());
    }
}

/// Where each of the keys lives, asked from `via`, after adding 1 to each.
async fn add_everywhere(via: &Node, tag: &str) -> BTreeMap<String, (SocketAddr, u64)> {
    let mut out = BTreeMap::new();
    for k in 0..KEYS {
        let key = format!("{tag}-{k}");
        let r = via.get::<Counter>(key.clone());
        r.ask_timeout(Add(1), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let (host, n) = r.ask_timeout(Where, Duration::from_secs(30)).await.unwrap();
        out.insert(key, (host, n));
    }
    out
}

async fn moves_off(stopping: bool) {
    if !broker_up().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let tag = if stopping { "stop" } else { "kill" };
    let mut nodes = start_broker_nodes(3, &store, &cluster_name(tag)).await;
    // Asks from every node reach identities on every node.
    let mut placed = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let here = add_everywhere(node, tag).await;
        assert!(here.values().all(|(_, n)| *n == i as u64 + 1), "{here:?}");
        placed = here;
    }
    let hosts: BTreeSet<SocketAddr> = placed.values().map(|(h, _)| *h).collect();
    assert_eq!(hosts.len(), 3, "identities live on every node: {placed:?}");
    assert_no_socket(&nodes).await;

    // The node hosting the first key goes away; its identities come back elsewhere
    // with their stored state.
    let gone = placed.values().next().unwrap().0;
    let at = nodes.iter().position(|n| n.addr() == gone).unwrap();
    let victim = nodes.remove(at);
    let started = Instant::now();
    if stopping {
        victim.shutdown().await;
    } else {
        victim.kill().await;
    }
    for node in &nodes {
        assert!(
            wait_members(node, 2).await,
            "{} saw {gone} leave or go Down",
            node.addr()
        );
    }
    let after = add_everywhere(&nodes[0], tag).await;
    let elapsed = started.elapsed();
    for (key, (host, n)) in &after {
        assert_ne!(*host, gone, "{key} moved off {gone}");
        assert_eq!(*n, 4, "{key} kept its stored state");
    }
    eprintln!("{tag}: identities of {gone} reactivated on the others in {elapsed:?}");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_the_broker_serve_virtual_actors_and_a_stopped_node_hands_over() {
    moves_off(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_noticed_over_the_broker_and_its_identities_move() {
    moves_off(false).await;
}
