//! Nodes of protocol versions 4 and 5 over real sockets: what the handshake agrees on,
//! which encoding each side sends, and the typed answer to a message of a contract
//! version the receiver does not accept.

use std::time::Duration;

use bytes::Bytes;
use granary_core::prelude::*;
use granary_core::{DeadLetter, DeadLetterReason, RemoteError};
use granary_remote::wire::{FrameHeader, FrameKind, PROTOCOL_VERSION};
use granary_remote::{
    register_message, versioned_tag, ActorRefRemoteExt, Encoding, RemoteNode, SendOptions,
    TransportConfig,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
struct Add {
    n: u64,
}
impl Message for Add {
    type Reply = u64;
}
register_message!(Add, "versioned.Add", version = 2);

#[derive(Default)]
struct Counter(u64);
impl Actor for Counter {}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.0 += msg.n;
        self.0
    }
}

fn config(max_protocol: u8) -> TransportConfig {
    TransportConfig::new("versioned-test", b"cookie".to_vec()).with_max_protocol(max_protocol)
}

async fn server(max_protocol: u8) -> RemoteNode {
    let node = RemoteNode::start(ActorSystem::new(), config(max_protocol))
        .await
        .expect("node");
    let counter = node.system().spawn(Counter::default());
    node.expose("counter", &counter)
        .unwrap()
        .accept::<Add>()
        .unwrap();
    node
}

async fn client(max_protocol: u8) -> RemoteNode {
    RemoteNode::start(ActorSystem::new(), config(max_protocol))
        .await
        .expect("node")
}

#[tokio::test]
async fn every_pair_of_versions_agrees_on_the_lower_and_asks_work_both_ways() {
    for (server_max, client_max, agreed) in [
        (PROTOCOL_VERSION, PROTOCOL_VERSION, PROTOCOL_VERSION),
        (4, PROTOCOL_VERSION, 4),
        (PROTOCOL_VERSION, 4, 4),
        (4, 4, 4),
    ] {
        let server = server(server_max).await;
        let client = client(client_max).await;
        let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
        // The first ask may go out before the handshake (in the client's own encoding):
        // a server of this build decodes both encodings whatever it agreed, so it is
        // answered; only a build before version 5 would not know the versioned tag
        // (docs/wire.md, "Bodies").
        let first = remote.ask_timeout(Add { n: 1 }, WAIT).await;
        assert_eq!(first.unwrap(), 1, "{server_max} <- {client_max}");
        let agreed_here = client.transport().peer_protocol(server.local_addr());
        assert_eq!(agreed_here, Some(agreed), "{server_max} <- {client_max}");
        let total = remote.ask_timeout(Add { n: 2 }, WAIT).await.unwrap();
        assert_eq!(total, 3);
        let expected = if agreed >= 5 {
            Encoding::Versioned
        } else {
            Encoding::Postcard
        };
        assert_eq!(
            client.transport().encoding_for(server.local_addr()),
            expected
        );
        assert_eq!(
            server.transport().encoding_for(client.local_addr()),
            expected
        );
        client.shutdown();
        server.shutdown();
    }
}

/// A body of contract version 3 (a newer build's `Add`) reaches a node of version 2:
/// it is refused as `MessageTooNew`, with both versions, not misread.
#[tokio::test]
async fn a_message_of_a_newer_contract_version_is_refused_as_too_new() {
    let server = server(PROTOCOL_VERSION).await;
    let mut dead = server.system().events().subscribe::<DeadLetter>();
    let client = client(PROTOCOL_VERSION).await;
    // Contract version 3, then `{ "n": 5 }` in MessagePack.
    let mut body = vec![3u8];
    body.extend(rmp_serde::to_vec_named(&Add { n: 5 }).unwrap());
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: versioned_tag("versioned.Add"),
        correlation: 0,
        sender: "",
        recipient: "counter",
        trace: None,
    };
    client
        .transport()
        .send(
            server.local_addr(),
            header,
            Bytes::from(body),
            SendOptions::data(),
        )
        .unwrap();
    let letter = tokio::time::timeout(WAIT, dead.recv())
        .await
        .expect("dead letter within timeout")
        .expect("event stream open");
    match letter.reason {
        DeadLetterReason::Remote(RemoteError::MessageTooNew { name, theirs, ours }) => {
            assert_eq!((name.as_str(), theirs, ours), ("versioned.Add", 3, 2));
        }
        other => panic!("{other:?}"),
    }
    client.shutdown();
    server.shutdown();
}
