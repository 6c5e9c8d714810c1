//! The layers above the transport run unchanged on the broker link: three nodes
//! (RemoteNode, Cluster found through `AmqpProvider`, the CRDT Replicator) whose
//! connections all go through RabbitMQ at 127.0.0.1:5672 converge on a replicated
//! counter. Skipped with a reason when the broker is unreachable, unless CI=true.

use std::sync::Arc;
use std::time::Duration;

use granary_amqp::{AmqpConfig, AmqpLink, AmqpProvider};
use granary_cluster::transport::remote::RemoteClusterTransport;
use granary_cluster::{Cluster, ClusterConfig};
use granary_core::ActorSystem;
use granary_crdt::{PNCounter, Replicator, ReplicatorConfig};
use granary_remote::{RemoteNode, TransportConfig};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

struct BrokerNode {
    remote: RemoteNode,
    cluster: Cluster,
    replicator: Replicator,
}

async fn start(cluster_name: &str) -> Option<BrokerNode> {
    let config = AmqpConfig::new(URL, cluster_name).with_discover_wait(Duration::from_millis(500));
    let link = match AmqpLink::connect(config).await {
        Ok(link) => link,
        Err(e) if !ci() => {
            eprintln!("SKIPPED: RabbitMQ at 127.0.0.1:5672 unavailable: {e}");
            return None;
        }
        Err(e) => panic!("RabbitMQ is required when CI=true: {e}"),
    };
    let transport =
        TransportConfig::new(cluster_name, b"crdt-amqp-secret".to_vec()).with_link(link.link());
    let remote = RemoteNode::start(ActorSystem::new(), transport)
        .await
        .unwrap();
    let cluster = Cluster::start(
        ClusterConfig {
            gossip_interval: Duration::from_millis(100),
            ..ClusterConfig::default()
        },
        RemoteClusterTransport::start(&remote).unwrap(),
        Arc::new(AmqpProvider::new(&link)),
    )
    .await
    .unwrap();
    let replicator = Replicator::start(
        &remote,
        &cluster,
        ReplicatorConfig {
            delta_interval: Duration::from_millis(50),
            ..ReplicatorConfig::default()
        },
    )
    .unwrap();
    Some(BrokerNode {
        remote,
        cluster,
        replicator,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_the_broker_converge_on_a_replicated_counter() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("test-crdt-{}-{nanos}", std::process::id());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let Some(node) = start(&name).await else {
            return;
        };
        nodes.push(node);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(|n| n.cluster.up_members().len() == 3) {
        assert!(tokio::time::Instant::now() < deadline, "three members Up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counters: Vec<_> = (nodes.iter())
        .map(|n| n.replicator.crdt::<PNCounter>("hits").unwrap())
        .collect();
    for (i, counter) in counters.iter().enumerate() {
        counter
            .update(|c, me| c.increment(me, 10u64.pow(i as u32)))
            .unwrap();
    }
    while !counters.iter().all(|c| c.value().unwrap() == 111) {
        let values: Vec<_> = counters.iter().map(|c| c.value().unwrap()).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "converged: {values:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in nodes {
        node.replicator.stop();
        node.cluster.stop().await;
        node.remote.shutdown();
    }
}
