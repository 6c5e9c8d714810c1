//! A node wrongly marked Down learns it through gossip and rejoins with a new incarnation.

mod common;

use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{ClusterEvent, MemberEvent, MemberStatus};

#[tokio::test(start_paused = true)]
async fn wrongly_downed_node_rejoins_with_new_incarnation() {
    let net = MemoryNetwork::new(3);
    let nodes = start_cluster(&net, 5).await;
    let victim = addr(2);
    let old = nodes[2].local_id();
    // The victim's answers to its monitors are lost (it still hears everyone, and its
    // own probes of its successors work): its monitors suspect a node that is alive.
    let monitors = nodes[0].ring().predecessors(victim, 3);
    for m in &monitors {
        net.cut(victim, m.addr);
    }
    let mut victim_events = nodes[2].subscribe();

    // The others declare it Down...
    for (i, node) in nodes.iter().enumerate() {
        if i == 2 {
            continue;
        }
        assert!(
            wait_until(node, Duration::from_secs(20), |c| {
                status_of(c, victim).is_some_and(|(id, s)| id == old && s == MemberStatus::Down)
                    || status_of(c, victim).is_some_and(|(id, _)| id.incarnation > old.incarnation)
            })
            .await
        );
    }
    // ...and the victim learns it from gossip (its own Down event).
    let learned = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = victim_events.recv().await {
            if let ClusterEvent::Change {
                event: MemberEvent::Down(m),
                ..
            } = ev
            {
                if m.id == old {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(learned, Ok(true));

    net.heal();
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(30), |c| {
                c.up_members().len() == 5
                    && status_of(c, victim).is_some_and(|(id, s)| {
                        s == MemberStatus::Up && id.incarnation > old.incarnation
                    })
            })
            .await,
            "{}: {:?}",
            node.local_id(),
            node.members()
                .iter()
                .map(|m| (m.id, m.status))
                .collect::<Vec<_>>()
        );
    }
    assert!(nodes[2].local_id().incarnation > old.incarnation);
}

#[tokio::test(start_paused = true)]
async fn lossy_links_cause_no_false_downs() {
    let net = MemoryNetwork::new(4);
    let nodes = start_cluster(&net, 5).await;
    net.set_default_faults(granary_cluster::transport::memory::LinkFaults {
        drop_probability: 0.05,
        delay: Duration::from_millis(20),
    });
    let mut events = nodes[0].subscribe();
    // 60 s of virtual time with 5% loss: nobody is marked Down.
    let quiet = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(ev) = events.recv().await {
            if let ClusterEvent::Change {
                event: MemberEvent::Down(m),
                ..
            } = ev
            {
                return Some(m.id);
            }
        }
        None
    })
    .await;
    assert!(quiet.is_err(), "false Down: {quiet:?}");
    for node in &nodes {
        assert_eq!(node.up_members().len(), 5);
    }
}
