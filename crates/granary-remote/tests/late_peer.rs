//! A peer that starts after others tried to reach it: they dialled it, failed, declared it
//! unreachable and backed off. When it comes up and connects to one of them, that one
//! must reach it at once, not after its backoff: every frame to an unreachable peer
//! fails, replies included, so until then asks the newcomer relays or sends get no
//! answer. (On the test bed a node found by DNS before it listened lost replies for up
//! to 2 s this way, and a client's relayed ask waited out its timeout.)

use std::time::{Duration, Instant};

use granary_core::prelude::*;
use granary_remote::{register_message, ActorRefRemoteExt, PeerEvent, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};

/// Far longer than the test's bound below: without the early redial the first node
/// would wait this out (±25 %) before it could send to the newcomer again.
const BACKOFF: Duration = Duration::from_secs(8);
/// How soon after the newcomer connected the first node must reach it.
const PROMPT: Duration = Duration::from_millis(1500);

#[derive(Serialize, Deserialize, Debug)]
struct Ping;
impl Message for Ping {
    type Reply = Pong7;
}
register_message!(Ping, "late-peer-test.Ping");

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pong7(u8);
register_message!(Pong7, "late-peer-test.Pong7");

struct Pong;
impl Actor for Pong {}
impl Handler<Ping> for Pong {
    async fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self>) -> Pong7 {
        Pong7(7)
    }
}

async fn node(listen: std::net::SocketAddr) -> RemoteNode {
    let mut config = TransportConfig::new("late-peer-test", b"cookie".to_vec()).with_listen(listen);
    config.backoff_min = BACKOFF / 2;
    config.backoff_max = BACKOFF;
    config.unreachable_after = 1;
    let node = RemoteNode::start(ActorSystem::new(), config)
        .await
        .expect("node");
    let pong = node.system().spawn(Pong);
    node.expose("pong", &pong)
        .unwrap()
        .accept::<Ping>()
        .unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_starts_late_is_reachable_as_soon_as_it_connects() {
    let first = node("127.0.0.1:0".parse().unwrap()).await;
    // An address nobody listens at yet: the newcomer's, before it starts.
    let late_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut events = first.transport().subscribe();
    first.transport().connect(late_addr).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(PeerEvent::Unreachable { addr, .. }) = events.recv().await {
                if addr == late_addr {
                    return;
                }
            }
        }
    })
    .await
    .expect("the first node declares the absent peer unreachable");
    assert!(first.transport().is_unreachable(late_addr));

    // Now it starts and talks to the first node (which accepts its connections).
    let late = node(late_addr).await;
    let from_late = ActorRef::<Pong>::remote(&late, first.local_addr(), "pong");
    assert_eq!(from_late.ask(Ping).await.unwrap(), Pong7(7));
    let connected = Instant::now();

    // The first node reaches it well within its backoff.
    let to_late = ActorRef::<Pong>::remote(&first, late_addr, "pong");
    loop {
        match to_late.ask_timeout(Ping, Duration::from_millis(500)).await {
            Ok(n) => {
                assert_eq!(n, Pong7(7));
                break;
            }
            Err(e) => {
                assert!(
                    connected.elapsed() < PROMPT,
                    "the first node still cannot reach the peer {:?} after it connected \
                     (its backoff is {BACKOFF:?}): {e}",
                    connected.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    eprintln!(
        "reached the late peer {:?} after it connected",
        connected.elapsed()
    );
    late.shutdown();
    first.shutdown();
}
