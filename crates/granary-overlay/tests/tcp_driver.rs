//! The overlays on real sockets: 32 peer-to-peer nodes, each with its own listener on
//! 127.0.0.x, join, broadcast, lose 5 members to kills and keep delivering; a small
//! client-server network delivers through its server.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use granary_overlay::{
    ClientServer, Delivery, DriverConfig, Overlay, OverlayNode, PeerId, PeerToPeer, Role,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

fn bind(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, 3, i as u8 + 1), 0))
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Receives until every node in `expect` delivered a payload equal to `payload`.
async fn received_by(
    inboxes: &mut [(PeerId, UnboundedReceiver<Delivery>)],
    payload: &[u8],
    expect: usize,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let mut got = BTreeSet::new();
    while got.len() < expect && Instant::now() < deadline {
        for (id, inbox) in inboxes.iter_mut() {
            while let Ok(delivery) = inbox.try_recv() {
                if delivery.payload == payload {
                    got.insert(*id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_peer_to_peer_nodes_on_sockets_broadcast_and_heal_after_kills() {
    let n = 32;
    let mut nodes = Vec::new();
    let mut inboxes = Vec::new();
    for i in 0..n {
        let (node, inbox) = OverlayNode::start(
            bind(i),
            |me| PeerToPeer::for_cluster_size(me, n, i as u64),
            DriverConfig::default(),
        )
        .await
        .expect("start");
        let contacts = if i == 0 {
            vec![]
        } else {
            vec![nodes_addr(&nodes, i / 2)]
        };
        node.join(contacts).expect("join");
        inboxes.push((node.addr(), inbox));
        nodes.push(node);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let capacity = 6;
    // Views fill and stay symmetric.
    let settled = eventually(Duration::from_secs(20), || async {
        let mut views = Vec::new();
        for node in &nodes {
            views.push((
                node.addr(),
                node.inspect(|o| o.connections()).await.unwrap(),
            ));
        }
        views.iter().all(|(me, view)| {
            !view.is_empty()
                && view.len() <= capacity
                && view
                    .iter()
                    .all(|p| views.iter().any(|(q, v)| q == p && v.contains(me)))
        })
    })
    .await;
    assert!(settled, "views did not settle symmetric and bounded");
    // The join's short-lived connections (forward-join welcomes, neighbour requests)
    // close after the idle timeout; what stays is the active view, plus a shuffle's
    // reply now and then.
    let trimmed = eventually(Duration::from_secs(15), || async {
        nodes
            .iter()
            .all(|node| node.stats().open_connections <= capacity as u64 + 2)
    })
    .await;
    let open: Vec<u64> = nodes.iter().map(|n| n.stats().open_connections).collect();
    assert!(trimmed, "open connections per node: {open:?}");

    nodes[0].broadcast(Bytes::from_static(b"first")).unwrap();
    let got = received_by(&mut inboxes, b"first", n - 1, Duration::from_secs(10)).await;
    assert_eq!(got, n - 1);

    // Kill 5 (not node 0, which broadcasts next).
    for i in [3, 9, 14, 20, 27] {
        nodes[i].kill();
    }
    let dead: BTreeSet<PeerId> = [3, 9, 14, 20, 27]
        .iter()
        .map(|i| nodes[*i].addr())
        .collect();
    inboxes.retain(|(id, _)| !dead.contains(id));
    let healed = eventually(Duration::from_secs(20), || async {
        for node in nodes.iter().filter(|n| !dead.contains(&n.addr())) {
            let view = node.inspect(|o| o.connections()).await.unwrap();
            if view.is_empty() || view.iter().any(|p| dead.contains(p)) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(healed, "survivors still hold dead members or no one");
    for round in 0..3u8 {
        let payload = [b'a' + round];
        nodes[0]
            .broadcast(Bytes::copy_from_slice(&payload))
            .unwrap();
        let got = received_by(&mut inboxes, &payload, n - 6, Duration::from_secs(10)).await;
        assert_eq!(got, n - 6, "round {round}");
    }
    assert!(nodes[0].stats().bytes_sent > 0);
}

fn nodes_addr(nodes: &[OverlayNode<PeerToPeer>], i: usize) -> PeerId {
    nodes[i].addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_server_on_sockets_delivers_through_the_server() {
    let mut nodes = Vec::new();
    let mut inboxes = Vec::new();
    for i in 0..8 {
        let role = if i == 0 { Role::Server } else { Role::Client };
        let (node, inbox) = OverlayNode::start(
            bind(100 + i),
            |me| ClientServer::new(me, role),
            DriverConfig::default(),
        )
        .await
        .expect("start");
        let contacts = if i == 0 {
            vec![]
        } else {
            vec![nodes_cs(&nodes)]
        };
        node.join(contacts).expect("join");
        inboxes.push((node.addr(), inbox));
        nodes.push(node);
    }
    let joined = eventually(Duration::from_secs(10), || async {
        nodes[0].inspect(|o| o.connections().len()).await.unwrap() == 7
    })
    .await;
    assert!(joined);
    nodes[5].broadcast(Bytes::from_static(b"ad")).unwrap();
    let got = received_by(&mut inboxes, b"ad", 7, Duration::from_secs(10)).await;
    assert_eq!(got, 7);
    // Clients hold one connection each (to the server).
    let open: Vec<u64> = nodes
        .iter()
        .skip(1)
        .map(|n| n.stats().open_connections)
        .collect();
    assert!(open.iter().all(|c| *c == 1), "{open:?}");
}

fn nodes_cs(nodes: &[OverlayNode<ClientServer>]) -> PeerId {
    nodes[0].addr()
}
