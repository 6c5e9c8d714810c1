//! Tombstones are pruned after `tombstone_ttl`, so the table does not grow with churn;
//! a node that crashes while still Joining is watched like any member and goes Down.

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{Cluster, ClusterConfig, MemberStatus};

const TTL: Duration = Duration::from_secs(5);

fn short_ttl(i: u16) -> ClusterConfig {
    ClusterConfig {
        tombstone_ttl: TTL,
        ..config(i)
    }
}

#[tokio::test(start_paused = true)]
async fn tombstones_are_pruned_so_the_table_does_not_grow_with_churn() {
    let net = MemoryNetwork::new(3);
    let mut survivors = Vec::new();
    for i in 0..3 {
        survivors.push(start_with(&net, i, short_ttl(i)).await);
    }
    for s in &survivors {
        assert!(wait_until(s, Duration::from_secs(30), |c| c.up_members().len() == 3).await);
    }
    let mut largest = 0;
    for round in 0..8u16 {
        let i = 10 + round;
        let churner = start_with(&net, i, short_ttl(i)).await;
        for s in &survivors {
            assert!(
                wait_until(s, Duration::from_secs(20), |c| sees(
                    c,
                    addr(i),
                    MemberStatus::Up
                ))
                .await
            );
        }
        churner.stop().await;
        for s in &survivors {
            assert!(
                wait_until(s, Duration::from_secs(20), |c| sees(
                    c,
                    addr(i),
                    MemberStatus::Down
                ))
                .await,
                "round {round}: {} never saw {} Down",
                s.local_id(),
                addr(i)
            );
            largest = largest.max(s.members().len());
        }
    }
    // Eight nodes came and went; at most a few tombstones were ever held at once.
    assert!(largest > 3, "the churn left no tombstone to prune");
    assert!(largest <= 3 + 4, "tombstones piled up: {largest} rows");
    for s in &survivors {
        assert!(
            poll_until(TTL * 3, || s.members().len() == 3).await,
            "{} still holds {:?}",
            s.local_id(),
            s.members()
                .iter()
                .map(|m| (m.id, m.status))
                .collect::<Vec<_>>()
        );
    }
    // Gossip from a peer that pruned later does not bring a pruned row back.
    tokio::time::sleep(TTL * 3).await;
    for s in &survivors {
        assert_eq!(
            s.members().len(),
            3,
            "{} resurrected a tombstone",
            s.local_id()
        );
        assert_eq!(s.up_members().len(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_crashes_while_joining_goes_down() {
    let net = MemoryNetwork::new(4);
    let nodes = start_cluster(&net, 3).await;
    let joiner = addr(20);
    // The members hear the join request but their accepts never reach the joiner, so it
    // stays Joining in their tables...
    for i in 0..3 {
        net.cut(addr(i), joiner);
    }
    let transport = net.bind(joiner).expect("bind");
    let start = tokio::spawn(Cluster::start_with_seeds(
        config(20),
        transport,
        vec![addr(0)],
    ));
    for n in &nodes {
        assert!(
            wait_until(n, Duration::from_secs(20), |c| sees(
                c,
                joiner,
                MemberStatus::Joining
            ))
            .await,
            "{} never saw the joiner",
            n.local_id()
        );
    }
    // ...then it crashes (its task and transport are dropped) and the links heal.
    start.abort();
    assert!(start.await.is_err(), "the join must not have completed");
    net.heal();
    for n in &nodes {
        assert!(
            wait_until(n, Duration::from_secs(20), |c| sees(
                c,
                joiner,
                MemberStatus::Down
            ))
            .await,
            "{} still holds the crashed joiner as {:?}",
            n.local_id(),
            status_of(n, joiner)
        );
        assert_eq!(n.up_members().len(), 3, "no member went Down with it");
    }
}
