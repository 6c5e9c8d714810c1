//! The same application on every overlay (issue 16, `docs/overlays.md`): virtual actors
//! owned by every node are asked from every node, a node is killed and its identities
//! are reactivated elsewhere with their state, on the full mesh, a static star,
//! client-server and peer-to-peer. On the overlays that restrict connections, the
//! transports' peer lists are checked against the overlay's rule, so a test fails if
//! the overlay is ignored and every node dials every other.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use granary_virtual::prelude::*;
use granary_virtual::{OverlayKind, OverlayRole, OverlaySettings};

/// How long a node may still hold a connection outside its overlay's connections
/// (one the join or a send before the routes formed opened; the cluster closes them
/// after 3 s outside).
const SETTLE: Duration = Duration::from_secs(10);

/// The other nodes `node`'s transport keeps a peer for right now.
fn member_peers(node: &Node, nodes: &[Node]) -> BTreeSet<SocketAddr> {
    let members: BTreeSet<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
    let transport = node.cluster().remote_node().expect("rides on a RemoteNode");
    (transport.transport().peers().into_iter())
        .filter(|p| *p != node.addr() && members.contains(p))
        .collect()
}

/// Waits until `rule` holds for every node's member peers (polling the transports, up
/// to `settle`; zero checks once); panics naming the first node that breaks it.
async fn assert_connections(
    nodes: &[Node],
    what: &str,
    settle: Duration,
    rule: impl Fn(usize, &BTreeSet<SocketAddr>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let broken = (nodes.iter().enumerate())
            .map(|(i, n)| (i, member_peers(n, nodes)))
            .find(|(i, peers)| !rule(*i, peers));
        let Some((i, peers)) = broken else {
            return;
        };
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{what}: node {i} ({}) holds connections to {peers:?} (overlay connections {:?})",
                nodes[i].addr(),
                nodes[i].cluster().overlay_connections(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Activates identities until every node hosts at least one; returns one per node.
async fn identities_on_every_node(nodes: &[Node], prefix: &str) -> HashMap<SocketAddr, String> {
    let mut found: HashMap<SocketAddr, String> = HashMap::new();
    for i in 0..400 {
        let key = format!("{prefix}-{i}");
        let (host, _) = nodes[i % nodes.len()]
            .get::<Counter>(key.clone())
            .ask_timeout(Where, WAIT)
            .await
            .expect("an identity answers from any node");
        found.entry(host).or_insert(key);
        if found.len() == nodes.len() {
            return found;
        }
    }
    panic!(
        "400 identities never covered every node: hosts {:?}",
        found.keys()
    );
}

/// The application, first half: asks from every node to identities owned by every
/// node; returns one identity per host.
async fn ask_everywhere(nodes: &[Node], prefix: &str) -> HashMap<SocketAddr, String> {
    let owned = identities_on_every_node(nodes, prefix).await;
    for node in nodes {
        for key in owned.values() {
            node.get::<Counter>(key.clone())
                .ask_timeout(Add(1), WAIT)
                .await
                .expect("asked across the overlay")
                .expect("state written");
        }
    }
    for (host, key) in &owned {
        for node in nodes {
            let (at, n) = node
                .get::<Counter>(key.clone())
                .ask_timeout(Where, WAIT)
                .await
                .expect("asked across the overlay");
            assert_eq!(at, *host, "{key} stays on its host");
            assert_eq!(n, nodes.len() as u64, "{key} counted one ask per node");
        }
    }
    owned
}

/// The application, second half: the node `victim` is killed and its identity answers
/// from every survivor with its state.
async fn kill_and_reactivate(
    mut nodes: Vec<Node>,
    owned: &HashMap<SocketAddr, String>,
    victim: usize,
) -> Vec<Node> {
    let before = nodes.len() as u64;
    let killed = nodes.remove(victim);
    let lost = owned[&killed.addr()].clone();
    killed.kill().await;
    for node in &nodes {
        node.get::<Counter>(lost.clone())
            .ask_timeout(Add(1), Duration::from_secs(20))
            .await
            .expect("the killed node's identity is reactivated elsewhere")
            .expect("state written");
    }
    let (at, n) = nodes[0]
        .get::<Counter>(lost.clone())
        .ask_timeout(Where, WAIT)
        .await
        .unwrap();
    assert_ne!(at, killed.addr(), "{lost} moved off the killed node");
    assert_eq!(
        n,
        before + nodes.len() as u64,
        "{lost} kept its state: no increment lost or doubled"
    );
    nodes
}

/// The whole application on `nodes`, checking `rule` on the connections once they
/// settled, right after the asks (so a send that ignored the overlay's route is
/// caught before the cluster closes the connection it opened), and after the kill.
async fn run_application(
    nodes: Vec<Node>,
    prefix: &str,
    victim: usize,
    what: &str,
    rule: impl Fn(&[Node], usize, &BTreeSet<SocketAddr>) -> bool,
) -> Vec<Node> {
    assert_connections(&nodes, what, SETTLE, |i, p| rule(&nodes, i, p)).await;
    let owned = ask_everywhere(&nodes, prefix).await;
    assert_connections(&nodes, what, Duration::ZERO, |i, p| rule(&nodes, i, p)).await;
    let nodes = kill_and_reactivate(nodes, &owned, victim).await;
    assert_connections(&nodes, what, SETTLE, |i, p| rule(&nodes, i, p)).await;
    nodes
}

async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_runs_on_the_full_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(4, &store, |_, b| b.host(counter_kind())).await;
    assert_eq!(nodes[0].cluster().overlay_connections(), None);
    let owned = ask_everywhere(&nodes, "mesh").await;
    let nodes = kill_and_reactivate(nodes, &owned, 2).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_runs_on_a_static_star() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let addrs = free_addrs(4);
    let hub = addrs[0];
    let spokes: Vec<SocketAddr> = addrs[1..].to_vec();
    let nodes = start_nodes(4, &store, |i, b| {
        let peers = if i == 0 { spokes.clone() } else { vec![hub] };
        let cluster = granary_cluster::ClusterConfig {
            // A spoke has one monitor, the hub: one vote must be enough to down it.
            downing: granary_cluster::DowningConfig {
                quorum: 1,
                ..cluster_config().downing
            },
            ..cluster_config()
        };
        b.bind(addrs[i])
            .cluster_config(cluster)
            .overlay(OverlaySettings {
                kind: OverlayKind::Static,
                peers,
                ..OverlaySettings::default()
            })
            .host(counter_kind())
    })
    .await;
    let spoke_rule = |_: &[Node], i: usize, peers: &BTreeSet<SocketAddr>| {
        i == 0 || peers.iter().all(|p| *p == hub)
    };
    let nodes = run_application(
        nodes,
        "star",
        2,
        "a spoke connects only to the hub",
        spoke_rule,
    )
    .await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_runs_on_client_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let servers = 2;
    let nodes = start_nodes(5, &store, |i, b| {
        let role = if i < servers {
            OverlayRole::Server
        } else {
            OverlayRole::Client
        };
        b.overlay(OverlaySettings {
            kind: OverlayKind::ClientServer,
            role,
            ..OverlaySettings::default()
        })
        .host(counter_kind())
    })
    .await;
    let client_rule = |nodes: &[Node], i: usize, peers: &BTreeSet<SocketAddr>| {
        let servers: Vec<SocketAddr> = nodes[..servers].iter().map(|n| n.addr()).collect();
        i < servers.len() || peers.iter().all(|p| servers.contains(p))
    };
    let what = "a client connects to no other client";
    let nodes = run_application(nodes, "client-server", 3, what, client_rule).await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_runs_on_peer_to_peer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let active_view = 2;
    let nodes = start_nodes(5, &store, |_, b| {
        b.overlay(OverlaySettings {
            kind: OverlayKind::PeerToPeer,
            active_view,
            ..OverlaySettings::default()
        })
        .host(counter_kind())
    })
    .await;
    let bound = |_: &[Node], _: usize, peers: &BTreeSet<SocketAddr>| peers.len() <= active_view;
    let what = "no node holds more connections than its active view";
    let nodes = run_application(nodes, "peer-to-peer", 3, what, bound).await;
    shutdown(nodes).await;
}
