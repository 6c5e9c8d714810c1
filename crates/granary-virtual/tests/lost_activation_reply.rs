//! A directory owner that never hears back from the host it asked to activate an
//! identity must not place that identity a second time: the host did activate it, and
//! only the answer was lost. (Seen on the peer-to-peer overlay, where a relayed reply
//! can be lost: the owner's retry placed the identity on another host while the first
//! activation lived on, unrecorded.)
//!
//! The placement strategy makes the loss exact: on its first call it drops every
//! control frame from the chosen host to the owner, so the host's answer to `Activate`
//! never arrives; and every later call would choose another host, so a second
//! placement always makes a second activation — the failure this test catches.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};
use granary_virtual::{Placement, PlacementRequest, PlacementStrategy};

/// Places away from the owner, on each other candidate in turn; the first placement's
/// answer is lost (see the module doc).
struct AwayFromOwner {
    faults: Arc<FaultInjector>,
    /// (owner, chosen host) of every placement.
    picks: Mutex<Vec<(SocketAddr, SocketAddr)>>,
    first: tokio::sync::Notify,
}

impl PlacementStrategy for AwayFromOwner {
    fn place(&self, req: &PlacementRequest<'_>) -> SocketAddr {
        let mut others: Vec<SocketAddr> = req
            .candidates
            .iter()
            .copied()
            .filter(|c| *c != req.owner)
            .collect();
        others.sort();
        let mut picks = self.picks.lock().unwrap();
        let chosen = others[picks.len() % others.len()];
        if picks.is_empty() {
            self.faults.set(
                Scope {
                    from: Some(chosen),
                    to: Some(req.owner),
                    channel: Some("control".into()),
                },
                LinkFaults {
                    drop_probability: 1.0,
                    delay: None,
                },
            );
            self.first.notify_one();
        }
        picks.push((req.owner, chosen));
        chosen
    }
}

/// Failure detection patient enough that the second or so of dropped control frames
/// (gossip included) from the host to the owner downs nobody: the test is about the
/// lost answer, not a failover.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_activation_answer_never_places_the_identity_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let faults = FaultInjector::new(7);
    let strategy = Arc::new(AwayFromOwner {
        faults: faults.clone(),
        picks: Mutex::new(Vec::new()),
        first: tokio::sync::Notify::new(),
    });
    let (f, s) = (faults.clone(), strategy.clone());
    let nodes = start_nodes(4, &store, move |_, b| {
        b.host(counter_kind().placement(Placement::Custom(s.clone())))
            .cluster_config(patient_cluster(PATIENCE))
            .faults(f.clone())
            .rpc_timeout(Duration::from_millis(300))
            .ask_timeout(Duration::from_secs(25))
    })
    .await;

    let key = "lost-answer-1".to_owned();
    let asker = nodes[0].get::<Counter>(key.clone());
    let ask = tokio::spawn(async move { asker.ask(Where).await });
    strategy.first.notified().await;
    // The fault's length, not a synchronisation: long enough for the owner's request
    // to time out (300 ms) and for the caller to retry a few times meanwhile.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    faults.clear();

    let (host, n) = ask
        .await
        .unwrap()
        .expect("answered once the host's answers get through");
    let picks = strategy.picks.lock().unwrap().clone();
    assert_eq!(
        picks.len(),
        1,
        "the owner placed the identity again while its first activation lived: {picks:?}"
    );
    assert_eq!(host, picks[0].1, "served by the activation placed first");
    assert_eq!(n, 0);
    let identity = format!("{}/{key}", <Counter as granary_virtual::VirtualActor>::KIND);
    assert_eq!(log_of(&identity).activations, 1, "one activation ever");
    let hosted: usize = nodes.iter().map(|n| n.activations("test.Counter")).sum();
    assert_eq!(hosted, 1, "one activation live");
    // Recorded now: a call from every node reaches the same activation.
    for node in &nodes {
        let (at, _) = node.get::<Counter>(key.clone()).ask(Where).await.unwrap();
        assert_eq!(at, host);
    }
    for node in nodes {
        node.shutdown().await;
    }
}
