//! Cluster events: a snapshot first, then every change in order with no gaps.

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{ClusterEvent, MemberEvent, MemberStatus};

#[tokio::test(start_paused = true)]
async fn subscriber_sees_snapshot_then_every_change_without_gaps() {
    let net = MemoryNetwork::new(5);
    let first = start(&net, 0).await;
    let mut events = first.subscribe();
    let ClusterEvent::Snapshot(snapshot) = events.recv().await.unwrap() else {
        panic!("first event must be the snapshot");
    };
    assert_eq!(snapshot.local, first.local_id());
    assert_eq!(snapshot.members.len(), 1);
    assert!(snapshot.ring.contains(addr(0)));

    let second = start(&net, 1).await;
    let third = start(&net, 2).await;
    assert!(
        wait_until(&first, Duration::from_secs(10), |c| c.up_members().len()
            == 3)
        .await
    );
    third.leave().await.unwrap();
    second.stop().await;
    assert!(
        wait_until(&first, Duration::from_secs(20), |c| sees(
            c,
            addr(1),
            MemberStatus::Down
        ))
        .await
    );

    let mut expected_seq = snapshot.seq + 1;
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        let ClusterEvent::Change { seq, event, ring } = ev else {
            panic!("only one snapshot per subscription");
        };
        assert_eq!(seq, expected_seq, "gap or reorder in event sequence");
        expected_seq += 1;
        // The ring in each event is the ring after that change.
        match &event {
            MemberEvent::Up(m) => assert!(ring.contains(m.id.addr)),
            MemberEvent::Leaving(m) | MemberEvent::Down(m) | MemberEvent::Removed(m) => {
                assert!(!ring.contains(m.id.addr))
            }
            _ => {}
        }
        let kind = match event {
            MemberEvent::Joined(m) => ("joined", m.id.addr),
            MemberEvent::Up(m) => ("up", m.id.addr),
            MemberEvent::Leaving(m) => ("leaving", m.id.addr),
            MemberEvent::Exiting(m) => ("exiting", m.id.addr),
            MemberEvent::Down(m) => ("down", m.id.addr),
            MemberEvent::Removed(m) => ("removed", m.id.addr),
            MemberEvent::IncarnationChanged { member, .. } => ("incarnation", member.id.addr),
            MemberEvent::Updated(m) => ("updated", m.id.addr),
        };
        seen.push(kind);
    }
    let of = |a| {
        seen.iter()
            .filter(|(_, x)| *x == a)
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
    };
    assert_eq!(of(addr(1)), vec!["joined", "up", "down"]);
    assert_eq!(
        of(addr(2)),
        vec!["joined", "up", "leaving", "exiting", "removed"]
    );
}

#[tokio::test(start_paused = true)]
async fn late_subscriber_snapshot_contains_current_members_and_ring() {
    let net = MemoryNetwork::new(6);
    let nodes = start_cluster(&net, 3).await;
    let mut events = nodes[1].subscribe();
    let Some(ClusterEvent::Snapshot(s)) = events.recv().await else {
        panic!("expected snapshot");
    };
    assert_eq!(s.local, nodes[1].local_id());
    assert_eq!(s.members.len(), 3);
    assert_eq!(s.ring.len(), 3);
    assert!(
        events.try_recv().is_err(),
        "no change happened after the snapshot"
    );
}

#[tokio::test(start_paused = true)]
async fn metadata_change_reaches_every_member_as_updated() {
    let net = MemoryNetwork::new(7);
    let nodes = start_cluster(&net, 3).await;
    let mut events = nodes[2].subscribe();
    nodes[0]
        .set_metadata("load", Some("0.7".to_string()))
        .unwrap();
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(10), |c| {
                c.members().iter().any(|m| {
                    m.id.addr == addr(0)
                        && m.metadata.get("load").map(String::as_str) == Some("0.7")
                })
            })
            .await
        );
    }
    let updated = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.recv().await {
            if let ClusterEvent::Change {
                event: MemberEvent::Updated(m),
                ..
            } = ev
            {
                return m.id.addr == addr(0);
            }
        }
        false
    })
    .await;
    assert_eq!(updated, Ok(true));
}
