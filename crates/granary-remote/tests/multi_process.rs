//! Two OS processes: a node started from the `granary-remote-node` binary and this test.
//! Killing the process produces real failures (unreachable, node lost); restarting it on
//! the same address is detected as a new incarnation.

mod common;

use std::time::Duration;

use common::NodeProcess;
use granary_core::prelude::*;
use granary_core::RemoteError;
use granary_remote::{register_message, ActorRefRemoteExt, PeerEvent, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

/// The same wire type as the node binary's (same name, same shape).
#[derive(Serialize, Deserialize)]
struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
register_message!(Add, "node.Add");

/// Local stand-in for the remote actor's type.
struct Counter;
impl Actor for Counter {}
impl Handler<Add> for Counter {
    async fn handle(&mut self, _msg: Add, _ctx: &mut Context<Self>) -> u64 {
        unreachable!("only used remotely")
    }
}

async fn event(
    events: &mut tokio::sync::broadcast::Receiver<PeerEvent>,
    pred: impl Fn(&PeerEvent) -> bool,
) -> PeerEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(e) = events.recv().await {
                if pred(&e) {
                    return e;
                }
            }
        }
    })
    .await
    .expect("event within timeout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_process_is_lost_and_its_restart_is_a_new_incarnation() {
    let mut server = NodeProcess::start("127.0.0.1:0", "mp-test");
    let addr = server.addr;
    let client = RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("mp-test", b"cookie".to_vec()),
    )
    .await
    .unwrap();
    let mut events = client.transport().subscribe();
    let counter = ActorRef::<Counter>::remote(&client, addr, "counter");
    assert_eq!(counter.ask(Add(2)).await.unwrap(), 2);
    assert_eq!(counter.ask(Add(3)).await.unwrap(), 5);
    // The asks may travel on a data connection before the control connection, which
    // records the peer's incarnation, is up: wait for that one.
    let e = event(&mut events, |e| matches!(e, PeerEvent::Connected { .. })).await;
    let PeerEvent::Connected { node: first } = e else {
        unreachable!()
    };
    assert_eq!(client.transport().peer_node(addr), Some(first));

    // Kill -9: the watcher hears of the lost node, asks fail as unreachable.
    let lost = counter.wait_stopped();
    tokio::pin!(lost);
    assert!(futures::poll!(&mut lost).is_pending());
    server.kill();
    let reason = tokio::time::timeout(WAIT, &mut lost).await.unwrap();
    assert_eq!(reason, StopReason::NodeLost);
    // The node is already declared unreachable, so the ask fails before leaving.
    let err = counter.ask_timeout(Add(1), WAIT).await.unwrap_err();
    assert!(
        matches!(
            err,
            AskError::Send(granary_core::SendError::Remote {
                error: RemoteError::Unreachable,
                ..
            })
        ),
        "{err:?}"
    );

    // Restart on the same address: a new incarnation with fresh state answers.
    let _server2 = NodeProcess::start(&addr.to_string(), "mp-test");
    let e = event(&mut events, |e| matches!(e, PeerEvent::Restarted { .. })).await;
    let PeerEvent::Restarted { old, new } = e else {
        unreachable!()
    };
    assert_eq!(old, first);
    assert_eq!(new.addr(), addr);
    assert_ne!(new.incarnation(), first.incarnation());
    assert_eq!(counter.ask(Add(7)).await.unwrap(), 7);
    client.shutdown();
}
