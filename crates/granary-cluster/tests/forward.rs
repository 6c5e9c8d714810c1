//! `Cluster::forward` over three `RemoteNode`s: A → C directly; with A and C cut apart
//! both ways by fault injection, a plain forward is a typed error and a transitive one
//! is relayed through B (on a named channel with a partition key); bad targets (unknown,
//! left) are typed errors.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{poll_until, wait_until};
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{
    Cluster, ClusterConfig, DowningConfig, ForwardError, ForwardOptions, ForwardRoute, MemberStatus,
};
use granary_core::{Actor, ActorSystem, Context, Handler, Message};
use granary_remote::faults::{Direction, FaultInjector};
use granary_remote::{register_message, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Note(String);
impl Message for Note {
    type Reply = ();
}
register_message!(Note, "granary.cluster.test.Note");

/// Hands every note it receives to the test.
struct Collector(mpsc::UnboundedSender<Note>);
impl Actor for Collector {}
impl Handler<Note> for Collector {
    async fn handle(&mut self, msg: Note, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        // A-C cut while both reach B is a partial partition, which downing resolves by
        // downing one end (tests/partial_partition.rs); this test is about forwarding
        // between both ends, so downing waits far longer than the test runs.
        downing: DowningConfig {
            stable_after: Duration::from_secs(600),
            ..DowningConfig::default()
        },
        ..ClusterConfig::default()
    }
}

async fn next_note(rx: &mut mpsc::UnboundedReceiver<Note>) -> Note {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("note not delivered within 10 s")
        .expect("collector gone")
}

fn suspects(c: &Cluster, target: SocketAddr) -> bool {
    c.members()
        .iter()
        .find(|m| m.id == c.local_id())
        .is_some_and(|own| own.suspects.iter().any(|s| s.addr == target))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_goes_direct_and_relays_around_a_cut_link_only_when_transitive() {
    let faults = FaultInjector::new(5);
    let transport = TransportConfig::new("forward-test", b"s".to_vec())
        .with_channel("bulk", 2)
        .with_faults(Arc::clone(&faults));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            RemoteNode::start(ActorSystem::new(), transport.clone())
                .await
                .expect("remote node"),
        );
    }
    let (a_addr, b_addr, c_addr) = (
        nodes[0].local_addr(),
        nodes[1].local_addr(),
        nodes[2].local_addr(),
    );
    let (tx, mut notes) = mpsc::unbounded_channel();
    let collector = nodes[2].system().spawn(Collector(tx));
    nodes[2]
        .expose("notes", &collector)
        .and_then(|e| e.accept::<Note>())
        .expect("expose");
    let mut clusters = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let seeds = if i == 0 { vec![] } else { vec![a_addr] };
        clusters.push(
            Cluster::start_on_remote(cluster_config(), node, seeds)
                .await
                .expect("start"),
        );
    }
    for c in &clusters {
        assert!(wait_until(c, Duration::from_secs(20), |c| c.up_members().len() == 3).await);
    }
    let a = &clusters[0];

    let direct = a.forward(
        c_addr,
        "notes",
        Note("direct".into()),
        &ForwardOptions::default(),
    );
    assert_eq!(direct, Ok(ForwardRoute::Direct));
    assert_eq!(next_note(&mut notes).await, Note("direct".into()));

    faults.partition(&[a_addr], &[c_addr], Direction::BothWays);
    assert!(
        poll_until(Duration::from_secs(20), || suspects(a, c_addr)).await,
        "A never suspected C across the cut"
    );
    let plain = a.forward(
        c_addr,
        "notes",
        Note("lost".into()),
        &ForwardOptions::default(),
    );
    assert_eq!(plain, Err(ForwardError::Unreachable(c_addr)));

    let options = ForwardOptions::default()
        .channel("bulk")
        .partition_key(3)
        .transitive();
    let relayed = a.forward(c_addr, "notes", Note("relayed".into()), &options);
    assert_eq!(relayed, Ok(ForwardRoute::Via(b_addr)));
    assert_eq!(next_note(&mut notes).await, Note("relayed".into()));
    assert!(
        notes.try_recv().is_err(),
        "the plain forward must not arrive"
    );

    // Bad targets are typed errors.
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(
        a.forward(nowhere, "notes", Note("x".into()), &options),
        Err(ForwardError::UnknownNode(nowhere))
    );
    faults.heal();

    // A member that left is a tombstone: not a member to forward to any more.
    clusters[2].leave().await.expect("leave");
    assert!(
        wait_until(a, Duration::from_secs(20), |c| common::status_of(c, c_addr)
            .is_none())
        .await,
        "A never saw C leave"
    );
    assert_eq!(
        a.forward(c_addr, "notes", Note("late".into()), &options),
        Err(ForwardError::NotMember {
            node: c_addr,
            status: MemberStatus::Removed
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_without_a_remote_node_is_a_typed_error() {
    let net = MemoryNetwork::new(1);
    let addr = common::addr(1);
    let alone =
        Cluster::start_with_seeds(ClusterConfig::default(), net.bind(addr).unwrap(), vec![])
            .await
            .expect("start");
    assert_eq!(
        alone.forward(addr, "notes", Note("x".into()), &ForwardOptions::default()),
        Err(ForwardError::NoRemoteNode)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_between_clients_of_a_client_server_overlay_goes_through_the_server() {
    use granary_cluster::{OverlayConfig, Role};
    let transport = TransportConfig::new("forward-overlay-test", b"s".to_vec());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            RemoteNode::start(ActorSystem::new(), transport.clone())
                .await
                .expect("remote node"),
        );
    }
    let (server, a_addr, c_addr) = (
        nodes[0].local_addr(),
        nodes[1].local_addr(),
        nodes[2].local_addr(),
    );
    let (tx, mut notes) = mpsc::unbounded_channel();
    let collector = nodes[2].system().spawn(Collector(tx));
    nodes[2]
        .expose("notes", &collector)
        .and_then(|e| e.accept::<Note>())
        .expect("expose");
    let mut clusters = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let role = if i == 0 { Role::Server } else { Role::Client };
        let config = ClusterConfig {
            overlay: OverlayConfig::ClientServer { role },
            ..cluster_config()
        };
        let seeds = if i == 0 { vec![] } else { vec![server] };
        clusters.push(
            Cluster::start_on_remote(config, node, seeds)
                .await
                .expect("start"),
        );
    }
    for c in &clusters {
        assert!(wait_until(c, Duration::from_secs(20), |c| c.up_members().len() == 3).await);
    }
    let a = &clusters[1];
    assert!(
        poll_until(Duration::from_secs(10), || a.overlay_connections()
            == Some(vec![server]))
        .await,
        "the client never connected to its server: {:?}",
        a.overlay_connections()
    );

    let plain = a.forward(
        c_addr,
        "notes",
        Note("lost".into()),
        &ForwardOptions::default(),
    );
    assert_eq!(
        plain,
        Err(ForwardError::Unreachable(c_addr)),
        "the overlay routes C"
    );
    let options = ForwardOptions::default().transitive();
    let relayed = a.forward(c_addr, "notes", Note("relayed".into()), &options);
    assert_eq!(relayed, Ok(ForwardRoute::Via(server)));
    assert_eq!(next_note(&mut notes).await, Note("relayed".into()));
    let direct = clusters[0].forward(c_addr, "notes", Note("direct".into()), &options);
    assert_eq!(
        direct,
        Ok(ForwardRoute::Direct),
        "the server is connected to its clients"
    );
    assert_eq!(next_note(&mut notes).await, Note("direct".into()));
    assert!(
        !nodes[1].transport().peers().contains(&c_addr),
        "client A dialled client C: {:?}",
        nodes[1].transport().peers()
    );
    assert_eq!(a_addr, a.local_id().addr);
}
