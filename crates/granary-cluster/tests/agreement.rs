//! Agreement (`node/agreement.rs`): every member comes to count every other once each
//! has published a view holding it — after forming, after a join and after a crash —
//! over the in-memory transport with a paused clock.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::{Cluster, MemberStatus, NodeId, SEEN_METADATA_KEY};

fn up_ids(c: &Cluster) -> BTreeSet<NodeId> {
    c.up_members().into_iter().map(|m| m.id).collect()
}

/// Every node in `nodes` counts exactly the members it sees Up.
async fn all_agree(nodes: &[Cluster], within: Duration) -> bool {
    poll_until(within, || {
        nodes.iter().all(|n| {
            let up = up_ids(n);
            up.len() == nodes.len() && n.agreed_members() == up
        })
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn twenty_five_members_agree_after_forming_a_join_and_a_crash() {
    let net = MemoryNetwork::new(7);
    let mut nodes = start_cluster(&net, 25).await;
    assert!(
        all_agree(&nodes, Duration::from_secs(30)).await,
        "after forming"
    );
    let views: BTreeSet<Option<String>> = (nodes[3].members().iter())
        .map(|m| m.metadata.get(SEEN_METADATA_KEY).cloned())
        .collect();
    assert_eq!(
        views.len(),
        1,
        "one view, published by every member: {views:?}"
    );
    assert!(views.iter().all(Option::is_some), "published: {views:?}");

    nodes.push(start(&net, 25).await);
    let joined = tokio::time::Instant::now();
    assert!(
        all_agree(&nodes, Duration::from_secs(30)).await,
        "after a join"
    );
    println!("26 members agree on a joiner after {:?}", joined.elapsed());

    let victim = nodes.remove(7);
    victim.stop().await;
    for node in &nodes {
        assert!(
            wait_until(node, Duration::from_secs(20), |c| sees(
                c,
                addr(7),
                MemberStatus::Down
            ))
            .await
        );
    }
    assert!(
        all_agree(&nodes, Duration::from_secs(30)).await,
        "after a crash"
    );

    // The same address comes back as a new life (a restart after kill -9).
    let mut cfg = config(7);
    cfg.incarnation = Some(2);
    nodes.push(start_with(&net, 7, cfg).await);
    let restarted = tokio::time::Instant::now();
    assert!(
        all_agree(&nodes, Duration::from_secs(30)).await,
        "after a restart"
    );
    println!(
        "26 members agree on a restarted life after {:?}",
        restarted.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_view_key_is_the_clusters_own() {
    let net = MemoryNetwork::new(1);
    let nodes = start_cluster(&net, 1).await;
    let refused = nodes[0].set_metadata(SEEN_METADATA_KEY, Some("x".into()));
    assert!(matches!(
        refused,
        Err(granary_cluster::ClusterError::ReservedMetadataKey(_))
    ));
}
