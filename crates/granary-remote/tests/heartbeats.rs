//! Control-channel heartbeats over real sockets: a peer blackholed by fault injection
//! (both ways; its sockets stay open, so only the missing heartbeats tell) is lost after
//! `heartbeat_timeout`: watchers get `Terminated` with `NodeLost`, pending asks fail with
//! `Unreachable`, new sends fail fast, its connections are dropped and dialled anew;
//! healing the partition brings it back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use granary_core::prelude::*;
use granary_core::RemoteError;
use granary_remote::faults::{Direction, FaultInjector};
use granary_remote::{register_message, ActorRefRemoteExt, PeerEvent, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

const INTERVAL: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
struct Bump;
impl Message for Bump {
    type Reply = u64;
}
register_message!(Bump, "heartbeat-test.Bump");

#[derive(Serialize, Deserialize, Debug)]
struct Stall;
impl Message for Stall {
    type Reply = ();
}
register_message!(Stall, "heartbeat-test.Stall");

struct Counter(u64);
impl Actor for Counter {}
impl Handler<Bump> for Counter {
    async fn handle(&mut self, _msg: Bump, _ctx: &mut Context<Self>) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Never answers: its asker waits for the ask timeout or for the node to be lost.
struct Staller;
impl Actor for Staller {}
impl Handler<Stall> for Staller {
    async fn handle(&mut self, _msg: Stall, _ctx: &mut Context<Self>) {
        std::future::pending::<()>().await;
    }
}

async fn node(faults: &Arc<FaultInjector>) -> RemoteNode {
    let config = TransportConfig::new("heartbeat-test", b"cookie".to_vec())
        .with_heartbeat(INTERVAL, TIMEOUT)
        .with_faults(faults.clone());
    RemoteNode::start(ActorSystem::new(), config)
        .await
        .expect("node")
}

/// The next event matching `want`, within `within`.
async fn next_event(
    events: &mut broadcast::Receiver<PeerEvent>,
    within: Duration,
    want: impl Fn(&PeerEvent) -> bool,
) -> Option<PeerEvent> {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(event) if want(&event) => return Some(event),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn a_blackholed_peer_is_lost_after_the_heartbeat_timeout_and_comes_back_when_healed() {
    let faults = FaultInjector::new(7);
    let server = node(&faults).await;
    let counter = server.system().spawn(Counter(0));
    server
        .expose("counter", &counter)
        .unwrap()
        .accept::<Bump>()
        .unwrap();
    let staller = server.system().spawn(Staller);
    server
        .expose("staller", &staller)
        .unwrap()
        .accept::<Stall>()
        .unwrap();
    let client = node(&faults).await;
    let mut events = client.transport().subscribe();
    let unreachable = |e: &PeerEvent| matches!(e, PeerEvent::Unreachable { .. });

    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    assert_eq!(remote.ask(Bump).await.unwrap(), 1);
    // Healthy: several heartbeat timeouts pass without the peer being declared lost.
    assert_eq!(
        next_event(&mut events, TIMEOUT * 3, unreachable).await,
        None
    );

    let lost = remote.wait_stopped();
    tokio::pin!(lost);
    // The first poll registers the watch.
    assert!(futures::poll!(&mut lost).is_pending());
    let stalled = ActorRef::<Staller>::remote(&client, server.local_addr(), "staller");
    let pending = tokio::spawn(async move { stalled.ask_timeout(Stall, WAIT * 3).await });
    // The watch and the ask are out before the partition.
    assert_eq!(remote.ask(Bump).await.unwrap(), 2);

    let dials_before_cut = client.transport().stats().dials;
    faults.partition(
        &[server.local_addr()],
        &[client.local_addr()],
        Direction::BothWays,
    );
    let cut = Instant::now();
    let reason = tokio::time::timeout(WAIT, lost)
        .await
        .expect("watcher told");
    assert_eq!(reason, StopReason::NodeLost);
    let err = tokio::time::timeout(WAIT, pending)
        .await
        .expect("pending ask ends")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::Unreachable)),
        "{err:?}"
    );
    // Silence counts from the last heartbeat heard, up to one interval before the cut.
    let took = cut.elapsed();
    assert!(
        took >= TIMEOUT - 2 * INTERVAL && took < TIMEOUT * 8,
        "lost after {took:?}, heartbeat timeout {TIMEOUT:?}"
    );
    // While lost, sends fail fast instead of queueing.
    let err = remote.ask(Bump).await.unwrap_err();
    assert!(format!("{err:?}").contains("Unreachable"), "{err:?}");
    // And the client drops its connections to the silent peer and dials new ones: kept,
    // a connection cut by the network comes back only when TCP retransmits, seconds
    // after the heal (its retransmission timer backs off while the cut lasts).
    let dropped = next_event(&mut events, WAIT, |e| {
        matches!(e, PeerEvent::Disconnected { node, reason }
            if node.addr() == server.local_addr() && reason.contains("heartbeats stopped"))
    })
    .await;
    assert!(
        dropped.is_some(),
        "the connection to the silent peer is dropped"
    );
    let deadline = Instant::now() + WAIT;
    while client.transport().stats().dials <= dials_before_cut {
        assert!(Instant::now() < deadline, "no new dial within {WAIT:?}");
        tokio::time::sleep(INTERVAL).await;
    }

    faults.heal();
    let back = next_event(
        &mut events,
        WAIT,
        |e| matches!(e, PeerEvent::Connected { node } if node.addr() == server.local_addr()),
    )
    .await;
    assert!(back.is_some(), "the healed peer is heard from again");
    assert_eq!(remote.ask(Bump).await.unwrap(), 3);
    client.shutdown();
    server.shutdown();
}
