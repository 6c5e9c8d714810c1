use std::collections::HashMap;

use bytes::Bytes;
use granary_remote::wire::{FrameKind, DATA_CHANNEL};
use granary_remote::{PeerEvent, SendOptions};

use super::support::*;

#[tokio::test]
async fn frame_arrives_with_header_body_and_authenticated_sender_node() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config()).await;
    let mut events = a.subscribe();
    send(&a, b.local_addr(), "bob", b"hello");
    let (from, frame) = recv(&mut rx).await;
    assert_eq!(from, a.node_id());
    assert_eq!(frame.kind, FrameKind::Tell);
    assert_eq!(frame.channel, DATA_CHANNEL);
    assert_eq!((frame.sender(), frame.recipient()), ("s", "bob"));
    assert_eq!(&frame.body[..], b"hello");
    // The frame may travel on a data connection before the control connection, which
    // records the peer's incarnation, is up: wait for that one.
    event(
        &mut events,
        "connected",
        |e| matches!(e, PeerEvent::Connected { node } if *node == b.node_id()),
    )
    .await;
    assert_eq!(a.peer_node(b.local_addr()), Some(b.node_id()));
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pair_keeps_fifo_order_across_parallel_connections() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config().with_parallelism(4)).await;
    let pairs = 16;
    let per_pair = 500u32;
    for seq in 0..per_pair {
        for p in 0..pairs {
            let sender = format!("sender-{p}");
            let recipient = format!("recipient-{p}");
            a.send(
                b.local_addr(),
                tell(&sender, &recipient),
                Bytes::copy_from_slice(&seq.to_le_bytes()),
                SendOptions::data(),
            )
            .unwrap();
        }
    }
    let mut next: HashMap<String, u32> = HashMap::new();
    for _ in 0..pairs * per_pair as usize {
        let (_, frame) = recv(&mut rx).await;
        let seq = u32::from_le_bytes(frame.body[..4].try_into().unwrap());
        let expected = next.entry(frame.sender().to_owned()).or_default();
        assert_eq!(seq, *expected, "pair {} out of order", frame.sender());
        *expected += 1;
    }
    assert!(next.values().all(|&n| n == per_pair));
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn partition_key_picks_the_connection_and_keeps_its_order() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config().with_parallelism(3).with_affinity(false)).await;
    for seq in 0..300u32 {
        // Different senders, one key: one connection, so global order holds.
        let sender = format!("s{seq}");
        a.send(
            b.local_addr(),
            tell(&sender, "r"),
            Bytes::copy_from_slice(&seq.to_le_bytes()),
            SendOptions::data().partition_key(7),
        )
        .unwrap();
    }
    for seq in 0..300u32 {
        let (_, frame) = recv(&mut rx).await;
        assert_eq!(frame.body[..4], seq.to_le_bytes());
    }
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn large_bodies_travel_intact_between_small_ones() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config()).await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    send(&a, b.local_addr(), "r", b"before");
    send(&a, b.local_addr(), "r", &big);
    send(&a, b.local_addr(), "r", b"after");
    assert_eq!(&recv(&mut rx).await.1.body[..], b"before");
    assert_eq!(&recv(&mut rx).await.1.body[..], &big[..]);
    assert_eq!(&recv(&mut rx).await.1.body[..], b"after");
    a.shutdown();
    b.shutdown();
}
