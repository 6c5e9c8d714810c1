//! Join, graceful leave and kill with 3 and 10 nodes over the in-memory transport.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{Cluster, ClusterConfig, ClusterError, MemberStatus, NoSeedPolicy};

async fn join_then_leave_then_kill(n: u16) {
    let net = MemoryNetwork::new(1);
    let nodes = start_cluster(&net, n).await;
    // Every node agrees on the ring.
    let ring = nodes[0].ring();
    assert_eq!(ring.len(), n as usize);
    for node in &nodes {
        assert_eq!(*node.ring(), *ring);
    }

    // Graceful leave of the last node: everyone else sees it Removed.
    let leaver = nodes[n as usize - 1].clone();
    let handed_off = Arc::new(AtomicBool::new(false));
    let flag = handed_off.clone();
    leaver.set_handoff_hook(Arc::new(move |ring| {
        let flag = flag.clone();
        Box::pin(async move {
            assert!(
                !ring.contains(addr(n - 1)),
                "hook sees the ring without the leaver"
            );
            flag.store(true, Ordering::SeqCst);
        })
    }));
    leaver.leave().await.expect("leave");
    assert!(handed_off.load(Ordering::SeqCst));
    assert!(!leaver.is_running());
    for node in &nodes[..n as usize - 1] {
        assert!(
            wait_until(node, Duration::from_secs(10), |c| status_of(c, addr(n - 1))
                .is_none())
            .await,
            "{} still lists the leaver",
            node.local_id()
        );
    }

    // Kill (no goodbye) node 1: the survivors mark it Down.
    let victim = nodes[1].clone();
    victim.stop().await;
    for (i, node) in nodes.iter().enumerate() {
        if i == 1 || i == n as usize - 1 {
            continue;
        }
        assert!(
            wait_until(node, Duration::from_secs(15), |c| sees(
                c,
                addr(1),
                MemberStatus::Down
            ))
            .await,
            "{} does not see the killed node Down",
            node.local_id()
        );
        assert!(!node.ring().contains(addr(1)));
        assert_eq!(node.up_members().len(), n as usize - 2);
    }
}

#[tokio::test(start_paused = true)]
async fn three_nodes_join_leave_and_detect_a_kill() {
    join_then_leave_then_kill(3).await;
}

#[tokio::test(start_paused = true)]
async fn ten_nodes_join_leave_and_detect_a_kill() {
    join_then_leave_then_kill(10).await;
}

#[tokio::test(start_paused = true)]
async fn no_seed_answering_forms_a_new_cluster_by_default() {
    let net = MemoryNetwork::new(1);
    let lonely = Cluster::start_with_seeds(config(5), net.bind(addr(5)).unwrap(), vec![addr(99)])
        .await
        .expect("forms its own cluster");
    assert_eq!(lonely.up_members().len(), 1);
    assert!(lonely.ring().contains(addr(5)));
}

#[tokio::test(start_paused = true)]
async fn no_seed_answering_fails_when_configured() {
    let net = MemoryNetwork::new(1);
    let mut cfg = config(5);
    cfg.join.on_no_seed = NoSeedPolicy::Fail;
    let err = Cluster::start_with_seeds(cfg, net.bind(addr(5)).unwrap(), vec![addr(99)])
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, ClusterError::NoSeedAnswered(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn join_merges_two_clusters() {
    let net = MemoryNetwork::new(1);
    let a = start(&net, 0).await;
    let b = Cluster::start_with_seeds(config(1), net.bind(addr(1)).unwrap(), vec![])
        .await
        .unwrap();
    assert_eq!(b.up_members().len(), 1);
    b.join(addr(0)).await.expect("join accepted");
    for c in [&a, &b] {
        assert!(wait_until(c, Duration::from_secs(10), |c| c.up_members().len() == 2).await);
    }
}

#[tokio::test(start_paused = true)]
async fn restarted_node_rejoins_with_a_newer_incarnation() {
    let net = MemoryNetwork::new(1);
    let nodes = start_cluster(&net, 3).await;
    nodes[2].stop().await;
    // Same address, same configured incarnation: the cluster's memory forces a newer one.
    let again = start_with(&net, 2, ClusterConfig { ..config(2) }).await;
    assert!(again.local_id().incarnation > 1);
    for node in &nodes[..2] {
        assert!(
            wait_until(node, Duration::from_secs(10), |c| {
                status_of(c, addr(2)) == Some((again.local_id(), MemberStatus::Up))
            })
            .await
        );
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_started_together_as_each_others_seeds_form_one_cluster() {
    let net = MemoryNetwork::new(1);
    let all: Vec<_> = (0..3).map(addr).collect();
    let starts = (0..3u16).map(|i| {
        let transport = net.bind(addr(i)).unwrap();
        Cluster::start_with_seeds(config(i), transport, all.clone())
    });
    let nodes: Vec<Cluster> = futures::future::try_join_all(starts).await.unwrap();
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(30), |c| c.up_members().len() == 3).await,
            "{} sees {:?}",
            node.local_id(),
            node.up_members()
        );
    }
}
