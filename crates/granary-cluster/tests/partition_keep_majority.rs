//! A 2 | 3 partition: the 2 go Down and stop, the 3 stay Up; after healing the 2 rejoin
//! with new incarnations.

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{ClusterEvent, MemberEvent, MemberStatus};

#[tokio::test(start_paused = true)]
async fn minority_downs_itself_majority_stays_and_minority_rejoins_after_heal() {
    let net = MemoryNetwork::new(1);
    let nodes = start_cluster(&net, 5).await;
    let minority = [addr(3), addr(4)];
    let majority = [addr(0), addr(1), addr(2)];
    let old_ids: Vec<_> = nodes.iter().map(|n| n.local_id()).collect();
    let mut minority_events: Vec<_> = nodes[3..].iter().map(|n| n.subscribe()).collect();

    net.partition(&[&majority, &minority]);

    // The majority marks both minority nodes Down and keeps its three Up.
    for node in &nodes[..3] {
        assert!(
            wait_until(node, Duration::from_secs(20), |c| {
                minority.iter().all(|a| sees(c, *a, MemberStatus::Down))
            })
            .await,
            "{} does not see the minority Down: {:?}",
            node.local_id(),
            node.members()
                .iter()
                .map(|m| (m.id, m.status))
                .collect::<Vec<_>>()
        );
        assert_eq!(node.up_members().len(), 3);
        for a in majority {
            assert!(sees(node, a, MemberStatus::Up));
        }
    }
    // Each minority node downed itself (its own Down event) and stopped taking part:
    // it is off its own ring and does not mark the majority Down.
    for (i, events) in minority_events.iter_mut().enumerate() {
        let me = old_ids[3 + i];
        let downed = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = events.recv().await {
                if let ClusterEvent::Change {
                    event: MemberEvent::Down(m),
                    ..
                } = ev
                {
                    assert_ne!(m.id.addr, addr(0), "minority must not down the majority");
                    if m.id == me {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        assert_eq!(downed, Ok(true), "minority node {me} did not down itself");
        let node = &nodes[3 + i];
        assert!(!node.ring().contains(me.addr));
        assert_eq!(node.local_status(), Some(MemberStatus::Down));
        for a in majority {
            assert!(!sees(node, a, MemberStatus::Down));
        }
    }

    let mut majority_events = nodes[0].subscribe();
    net.heal();

    // The minority comes back with new incarnations, seen Up everywhere.
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(30), |c| {
                c.up_members().len() == 5
                    && minority.iter().enumerate().all(|(i, a)| {
                        status_of(c, *a).is_some_and(|(id, s)| {
                            s == MemberStatus::Up && id.incarnation > old_ids[3 + i].incarnation
                        })
                    })
            })
            .await,
            "{} after heal: {:?}",
            node.local_id(),
            node.members()
                .iter()
                .map(|m| (m.id, m.status))
                .collect::<Vec<_>>()
        );
    }
    // The majority saw each minority node come back as a new life of the same address.
    let mut came_back = Vec::new();
    while let Ok(ev) = majority_events.try_recv() {
        if let ClusterEvent::Change {
            event: MemberEvent::IncarnationChanged { previous, member },
            ..
        } = ev
        {
            assert!(member.id.incarnation > previous.incarnation);
            came_back.push(member.id.addr);
        }
    }
    came_back.sort();
    came_back.dedup();
    assert_eq!(came_back, minority.to_vec());
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.local_status(), Some(MemberStatus::Up));
        if i < 3 {
            assert_eq!(
                node.local_id(),
                old_ids[i],
                "majority keeps its incarnations"
            );
        } else {
            assert!(node.local_id().incarnation > old_ids[i].incarnation);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn even_split_keeps_the_side_with_the_lowest_address() {
    let net = MemoryNetwork::new(2);
    let nodes = start_cluster(&net, 4).await;
    let low = [addr(0), addr(1)];
    let high = [addr(2), addr(3)];
    net.partition(&[&low, &high]);
    for node in &nodes[..2] {
        assert!(
            wait_until(node, Duration::from_secs(20), |c| {
                high.iter().all(|a| sees(c, *a, MemberStatus::Down))
            })
            .await
        );
        assert_eq!(node.up_members().len(), 2);
    }
}

/// Four nodes cut from each other: each is a minority of one and downs itself, so no
/// member is Up to let the others back in. After the heal the rejoiners find each
/// other asking to join, the lowest address forms the cluster again and the other three
/// join it, each with a new incarnation.
#[tokio::test(start_paused = true)]
async fn when_every_member_went_down_the_rejoiners_form_the_cluster_again() {
    let net = MemoryNetwork::new(3);
    let nodes = start_cluster(&net, 4).await;
    let old_ids: Vec<_> = nodes.iter().map(|n| n.local_id()).collect();
    let singles: Vec<[std::net::SocketAddr; 1]> = (0..4).map(|i| [addr(i)]).collect();
    let sides: Vec<&[std::net::SocketAddr]> = singles.iter().map(|s| &s[..]).collect();
    net.partition(&sides);
    for node in &nodes {
        assert!(
            poll_until(Duration::from_secs(20), || {
                node.local_status() != Some(MemberStatus::Up)
            })
            .await,
            "{} stayed Up alone",
            node.local_id()
        );
    }
    net.heal();
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            wait_until(node, Duration::from_secs(60), |c| {
                c.up_members().len() == 4
                    && (0..4).all(|j| {
                        status_of(c, addr(j)).is_some_and(|(id, s)| {
                            s == MemberStatus::Up
                                && id.incarnation > old_ids[j as usize].incarnation
                        })
                    })
            })
            .await,
            "{} after heal: {:?}",
            old_ids[i],
            node.members()
                .iter()
                .map(|m| (m.id, m.status))
                .collect::<Vec<_>>()
        );
    }
}
