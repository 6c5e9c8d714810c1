//! The protocol over real sockets on 127.0.0.1 (granary-remote's TCP transport, control
//! channel): nodes join, a crash (transport shut down abruptly) is seen Down by the
//! survivors, and a node with the wrong secret is refused by the handshake.

mod common;

use std::time::Duration;

use common::{sees, wait_until};
use granary_cluster::transport::tcp::{TcpClusterTransport, TransportConfig};
use granary_cluster::{
    Cluster, ClusterConfig, ClusterError, JoinConfig, MemberStatus, NoSeedPolicy,
};

fn transport_config(secret: &str) -> TransportConfig {
    TransportConfig::new("tcp-test", secret.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tcp_nodes_join_and_survivors_see_a_killed_node_down() {
    let first = TcpClusterTransport::bind(transport_config("s"))
        .await
        .expect("bind");
    let seed = first.transport().local_addr();
    let traffic = first.traffic();
    let a = Cluster::start_with_seeds(ClusterConfig::default(), first, vec![])
        .await
        .expect("first node");
    let b = Cluster::start_tcp(ClusterConfig::default(), transport_config("s"), vec![seed])
        .await
        .expect("second node");
    let victim_transport = TcpClusterTransport::bind(transport_config("s"))
        .await
        .expect("bind");
    let victim_socket = victim_transport.transport().clone();
    let victim = Cluster::start_with_seeds(ClusterConfig::default(), victim_transport, vec![seed])
        .await
        .expect("third node");
    let victim_addr = victim.local_id().addr;
    for node in [&a, &b, &victim] {
        assert!(
            wait_until(node, Duration::from_secs(20), |c| c.up_members().len() == 3).await,
            "{} sees {} Up",
            node.local_id(),
            node.up_members().len()
        );
    }
    assert!(traffic.snapshot().sent_bytes > 0 && traffic.snapshot().received_messages > 0);

    // The crash: every socket of the victim closes at once, nobody is told.
    victim_socket.shutdown();
    for node in [&a, &b] {
        assert!(
            wait_until(node, Duration::from_secs(20), |c| sees(
                c,
                victim_addr,
                MemberStatus::Down
            ))
            .await,
            "{} never saw {victim_addr} Down",
            node.local_id()
        );
        assert_eq!(node.up_members().len(), 2, "only the victim is Down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_secret_is_refused_by_the_handshake() {
    let a = Cluster::start_tcp(ClusterConfig::default(), transport_config("right"), vec![])
        .await
        .expect("first node");
    let config = ClusterConfig {
        join: JoinConfig {
            timeout: Duration::from_millis(1500),
            on_no_seed: NoSeedPolicy::Fail,
            ..JoinConfig::default()
        },
        ..ClusterConfig::default()
    };
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        Cluster::start_tcp(config, transport_config("wrong"), vec![a.local_id().addr]),
    )
    .await
    .expect("start must give up, not hang");
    assert!(
        matches!(refused, Err(ClusterError::NoSeedAnswered(_))),
        "{:?}",
        refused.err()
    );
    assert_eq!(a.members().len(), 1);
}
