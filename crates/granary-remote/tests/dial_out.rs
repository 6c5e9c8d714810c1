//! A node that listens nowhere (`RemoteNode::start_dial_out`): the nodes it reaches answer
//! on the connections it opened, relay for it to hosts it has no connection to, and
//! never dial it.

use std::time::Duration;

use granary_core::prelude::*;
use granary_core::{AskError, RemoteError};
use granary_remote::{register_message, PeerEvent, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
register_message!(Add, "dialout.Add");

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Bump;
impl Message for Bump {
    type Reply = ();
}
register_message!(Bump, "dialout.Bump");

/// A large body: above the chunk size, so it takes the bulk lane.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Blob(Vec<u8>);
impl Message for Blob {
    type Reply = Vec<u8>;
}
register_message!(Blob, "dialout.Blob");

struct Counter(u64);
impl Actor for Counter {}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.0 += msg.0;
        self.0
    }
}
impl Handler<Blob> for Counter {
    /// Answers with the body reversed, as large as it came.
    async fn handle(&mut self, msg: Blob, _ctx: &mut Context<Self>) -> Vec<u8> {
        msg.0.into_iter().rev().collect()
    }
}
impl Handler<Bump> for Counter {
    async fn handle(&mut self, _msg: Bump, _ctx: &mut Context<Self>) {
        self.0 += 1;
    }
}

fn config() -> TransportConfig {
    TransportConfig::new("dial-out-test", b"cookie".to_vec())
}

/// A node exposing a `Counter` as "counter".
async fn server() -> RemoteNode {
    let node = RemoteNode::start(ActorSystem::new(), config())
        .await
        .expect("server");
    let counter = node.system().spawn(Counter(0));
    node.expose("counter", &counter)
        .unwrap()
        .accept::<Add>()
        .unwrap()
        .accept::<Bump>()
        .unwrap()
        .accept::<Blob>()
        .unwrap();
    node
}

#[tokio::test]
async fn a_dial_out_node_is_answered_on_its_own_connections_directly_and_relayed() {
    let (a, b) = (server().await, server().await);
    // a and b know each other before the client comes, so relaying dials nothing new.
    let b_from_a: ActorRef<Counter> = a.remote_ref(b.local_addr(), "counter");
    assert_eq!(b_from_a.ask(Add(0)).await.unwrap(), 0);
    // A large ask and reply: their bulk lanes are dialled now too.
    b_from_a.ask(Blob(vec![7; 300_000])).await.unwrap();
    let dials = (a.transport().stats().dials, b.transport().stats().dials);

    let client = RemoteNode::start_dial_out(ActorSystem::new(), config())
        .await
        .expect("client");
    assert!(client.transport().is_dial_out());
    let direct: ActorRef<Counter> = client.remote_ref(a.local_addr(), "counter");
    let relayed: ActorRef<Counter> =
        client.remote_ref_via(a.local_addr(), b.local_addr(), "counter");
    let mut expected = 0;
    for i in 1..=100u64 {
        expected += i;
        let (x, y) = tokio::join!(direct.ask(Add(i)), relayed.ask(Add(i)));
        assert_eq!(x.unwrap(), expected);
        assert_eq!(y.unwrap(), expected);
    }
    // Tells are relayed too, in order behind the asks.
    relayed.tell(Bump).unwrap();
    assert_eq!(relayed.ask(Add(0)).await.unwrap(), expected + 1);
    // Large bodies both ways (chunked, and the client's on its bulk lane), direct and
    // relayed.
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reversed: Vec<u8> = blob.iter().rev().copied().collect();
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            direct.ask(Blob(blob.clone())),
            relayed.ask(Blob(blob.clone()))
        );
        assert!(x.unwrap() == reversed, "direct large reply");
        assert!(y.unwrap() == reversed, "relayed large reply");
    }
    // A relayed ref is the same actor as a direct one.
    let direct_b: ActorRef<Counter> = client.remote_ref(b.local_addr(), "counter");
    assert_eq!(relayed.id(), direct_b.id());
    // The client dialled a only; neither server dialled anyone for it.
    assert!(client.transport().is_connected(a.local_addr()));
    assert!(!client.transport().is_connected(b.local_addr()));
    assert_eq!(
        (a.transport().stats().dials, b.transport().stats().dials),
        dials,
        "a server dialled while serving the dial-out client"
    );
    client.shutdown();
}

#[tokio::test]
async fn frames_for_a_gone_dial_out_node_fail_fast_and_nothing_dials_it() {
    let a = server().await;
    let mut events = a.transport().subscribe();
    let client = RemoteNode::start_dial_out(ActorSystem::new(), config())
        .await
        .expect("client");
    let listener = client.system().spawn(Counter(0));
    client
        .expose("counter", &listener)
        .unwrap()
        .accept::<Add>()
        .unwrap();
    let to_a: ActorRef<Counter> = client.remote_ref(a.local_addr(), "counter");
    assert_eq!(to_a.ask(Add(1)).await.unwrap(), 1);
    // While the client is connected, a reaches the actor it exposes, on its connection.
    let back: ActorRef<Counter> = a.remote_ref(client.local_addr(), "counter");
    assert_eq!(back.ask(Add(5)).await.unwrap(), 5);
    let dials = a.transport().stats().dials;

    let gone = client.local_addr();
    client.shutdown();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("a notices the client left")
            .expect("events");
        if matches!(event, PeerEvent::Unreachable { addr, .. } if addr == gone) {
            break;
        }
    }
    let started = tokio::time::Instant::now();
    let err = back.ask(Add(1)).await.unwrap_err();
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
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "did not fail fast"
    );
    assert!(back.tell(Add(1)).is_err());
    assert_eq!(
        a.transport().stats().dials,
        dials,
        "a dialled the gone client"
    );
}

/// A gateway told that a host is gone (`fail_relayed_to`, a cluster's Down) refuses to
/// relay asks to it, answering `Unreachable` at once although its connection to the
/// host is fine, and relays again once told the host is back (`relay_to_again`).
#[tokio::test]
async fn a_gateway_refuses_to_relay_to_a_host_declared_gone_until_it_is_back() {
    let (a, b) = (server().await, server().await);
    let client = RemoteNode::start_dial_out(ActorSystem::new(), config())
        .await
        .expect("client");
    let relayed: ActorRef<Counter> =
        client.remote_ref_via(a.local_addr(), b.local_addr(), "counter");
    assert_eq!(relayed.ask(Add(1)).await.unwrap(), 1);

    assert_eq!(a.fail_relayed_to(b.local_addr()), 0, "nothing was waiting");
    let refused = relayed.ask_timeout(Add(1), Duration::from_secs(10)).await;
    assert!(
        matches!(refused, Err(AskError::Remote(RemoteError::Unreachable))),
        "refused by the gateway: {refused:?}"
    );
    // Nothing reached b: its count is still 1.
    let direct_b: ActorRef<Counter> = a.remote_ref(b.local_addr(), "counter");
    assert_eq!(direct_b.ask(Add(0)).await.unwrap(), 1);

    a.relay_to_again(b.local_addr());
    assert_eq!(relayed.ask(Add(1)).await.unwrap(), 2);
    client.shutdown();
}
