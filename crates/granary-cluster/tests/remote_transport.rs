//! The protocol on granary-remote `RemoteNode`s (one port per node, shared with the
//! application's actors): three nodes join through a seed, an actor exposed on the same
//! node stays reachable beside the cluster, and a crashed node is seen Down.

mod common;

use std::time::Duration;

use common::{sees, wait_until};
use granary_cluster::transport::remote::RemoteClusterTransport;
use granary_cluster::{Cluster, ClusterConfig, ClusterError, MemberStatus, TransportError};
use granary_core::{Actor, ActorRef, ActorSystem, Context, Handler, Message};
use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Echo(u64);
impl Message for Echo {
    type Reply = u64;
}
register_message!(Echo, "granary.cluster.test.Echo");

struct Echoer;
impl Actor for Echoer {}
impl Handler<Echo> for Echoer {
    async fn handle(&mut self, msg: Echo, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

async fn remote_node() -> RemoteNode {
    RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("remote-test", b"s".to_vec()),
    )
    .await
    .expect("remote node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_over_remote_nodes_and_share_the_port_with_actors() {
    let nodes = [
        remote_node().await,
        remote_node().await,
        remote_node().await,
    ];
    let seed = nodes[0].local_addr();
    let mut clusters = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        let cluster = Cluster::start_on_remote(ClusterConfig::default(), node, seeds)
            .await
            .expect("start on remote");
        assert_eq!(
            cluster.local_id().addr,
            node.local_addr(),
            "one port per node"
        );
        assert!(cluster.remote_node().is_some());
        clusters.push(cluster);
    }
    for c in &clusters {
        assert!(
            wait_until(c, Duration::from_secs(20), |c| c.up_members().len() == 3).await,
            "{} sees {} Up",
            c.local_id(),
            c.up_members().len()
        );
    }

    // Application actors keep working on the same node and port.
    let echoer = nodes[2].system().spawn(Echoer);
    nodes[2]
        .expose("echo", &echoer)
        .and_then(|e| e.accept::<Echo>())
        .expect("expose");
    let remote = ActorRef::<Echoer>::remote(&nodes[0], nodes[2].local_addr(), "echo");
    assert_eq!(remote.ask(Echo(41)).await.expect("ask"), 41);

    // A crash: the victim's sockets close at once, nobody is told.
    let victim = nodes[2].local_addr();
    nodes[2].shutdown();
    for c in &clusters[..2] {
        assert!(
            wait_until(c, Duration::from_secs(20), |c| sees(
                c,
                victim,
                MemberStatus::Down
            ))
            .await,
            "{} never saw {victim} Down",
            c.local_id()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_on_one_node_is_a_typed_error() {
    let node = remote_node().await;
    let first = RemoteClusterTransport::start(&node).expect("first");
    let second = Cluster::start_on_remote(ClusterConfig::default(), &node, vec![]).await;
    assert!(
        matches!(
            second,
            Err(ClusterError::Transport(TransportError::Remote(_)))
        ),
        "{:?}",
        second.err()
    );
    drop(first);
}
