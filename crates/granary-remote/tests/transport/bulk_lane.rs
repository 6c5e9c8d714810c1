//! The bulk lane: large data frames on their own connection, FIFO per pair across the
//! switch, held frames bounded, resent barriers, held frames dropped with a lost peer.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};
use granary_remote::{PeerEvent, SendError, SendOptions, Transport};

use super::support::*;

/// Frames above this travel on the bulk lane in these tests.
const CHUNK: usize = 1024;

/// A frame of `pair` carrying `seq`, padded to `len` bytes.
fn numbered(a: &Transport, to: std::net::SocketAddr, pair: usize, seq: u32, len: usize) {
    let mut body = vec![0u8; len.max(4)];
    body[..4].copy_from_slice(&seq.to_le_bytes());
    let sender = format!("sender-{pair}");
    let recipient = format!("recipient-{pair}");
    a.send(
        to,
        tell(&sender, &recipient),
        Bytes::from(body),
        SendOptions::data(),
    )
    .expect("send");
}

/// Receive `total` frames and check that every pair's sequence numbers come in order;
/// returns the count per pair.
async fn in_order(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(
        granary_remote::NodeId,
        granary_remote::wire::Frame,
    )>,
    total: usize,
) -> HashMap<String, u32> {
    let mut next: HashMap<String, u32> = HashMap::new();
    for _ in 0..total {
        let (_, frame) = recv(rx).await;
        let seq = u32::from_le_bytes(frame.body[..4].try_into().unwrap());
        let expected = next.entry(frame.sender().to_owned()).or_default();
        assert_eq!(
            seq,
            *expected,
            "pair {} out of order ({} B frame)",
            frame.sender(),
            frame.body.len()
        );
        *expected += 1;
    }
    next
}

/// Each pair sends small frames, then at a different point for each pair a large one
/// (its switch to the bulk lane), then small and large frames mixed. The bulk lane is
/// already connected (a warm-up pair switched first) and the data connections are
/// crowded with every pair's small frames, so a pair's later frames on the bulk lane
/// would overtake its earlier ones on the data connection without the barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_mixing_small_and_large_frames_keeps_fifo_across_its_lane_switch() {
    for (round, parallelism) in [1, 4, 1, 4, 2].into_iter().enumerate() {
        let (b, mut rx) = collecting(config().with_chunk_size(CHUNK)).await;
        let a = discard(
            config()
                .with_chunk_size(CHUNK)
                .with_parallelism(parallelism),
        )
        .await;
        let to = b.local_addr();
        // Warm-up: the bulk lane's connection is up before the real pairs switch.
        send(&a, to, "warm", &[0u8; 4 * CHUNK]);
        assert_eq!(recv(&mut rx).await.1.body.len(), 4 * CHUNK);
        let pairs = 24;
        let per_pair = 150u32;
        for seq in 0..per_pair {
            for pair in 0..pairs {
                let large = (seq as usize + pair * 7 + round) % 40 == 13;
                let len = if large { 3 * CHUNK + pair } else { 16 };
                numbered(&a, to, pair, seq, len);
            }
        }
        let counts = in_order(&mut rx, pairs * per_pair as usize).await;
        assert_eq!(counts.len(), pairs);
        assert!(counts.values().all(|&n| n == per_pair), "{counts:?}");
        a.shutdown();
        b.shutdown();
    }
}

/// While the peer's ack cannot get through, a switching pair's frames are held up to
/// the queue capacity (then backpressure); the barrier is sent again, and once an ack
/// gets through every held frame arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_frames_are_bounded_and_released_in_order_when_a_resent_barrier_is_acked() {
    let faults = FaultInjector::new(7);
    let (b, mut rx) = collecting(config().with_chunk_size(CHUNK).with_faults(faults.clone())).await;
    // Barriers are resent every heartbeat interval; a long heartbeat timeout keeps `b`
    // reachable while its control traffic (acks and heartbeats) is dropped.
    let a = discard(
        config()
            .with_chunk_size(CHUNK)
            .with_queue_capacity(16 * 1024)
            .with_heartbeat(Duration::from_millis(100), Duration::from_secs(60)),
    )
    .await;
    let to = b.local_addr();
    send(&a, to, "warm-up", b"x");
    recv(&mut rx).await;
    faults.set(
        Scope::to(a.local_addr()).on_channel("control"),
        LinkFaults {
            drop_probability: 1.0,
            delay: None,
        },
    );
    // The large frame starts the switch; the pair's frames are held from here on.
    numbered(&a, to, 0, 0, 4 * CHUNK);
    let mut sent = 1u32;
    let refused = loop {
        let mut body = vec![0u8; 512];
        body[..4].copy_from_slice(&sent.to_le_bytes());
        match a.send(
            to,
            tell("sender-0", "recipient-0"),
            Bytes::from(body),
            SendOptions::data(),
        ) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "held frames are not bounded");
    };
    assert_eq!(refused, SendError::Backpressure { peer: to });
    assert!(a.stats().backpressure >= 1);
    // Other pairs are not held.
    send(&a, to, "other", b"free");
    assert_eq!(recv(&mut rx).await.1.recipient(), "other");
    assert_silent(&mut rx, Duration::from_millis(300)).await;
    faults.clear();
    let counts = in_order(&mut rx, sent as usize).await;
    assert_eq!(counts.get("sender-0"), Some(&sent));
    a.shutdown();
    b.shutdown();
}

/// A peer lost while a pair's frames are held: they are dropped like queued frames
/// (counted in the `Unreachable` event) and sends fail fast.
#[tokio::test]
async fn frames_held_for_a_lost_peer_are_dropped_with_its_queues() {
    let (b, mut rx) = collecting(config().with_chunk_size(CHUNK)).await;
    let a = discard(config().with_chunk_size(CHUNK)).await;
    let mut events = a.subscribe();
    let to = b.local_addr();
    send(&a, to, "r", b"1");
    recv(&mut rx).await;
    b.shutdown();
    // Sent before the peer can have been declared unreachable (that takes several
    // failed dials): the frame is held, since no ack can come.
    let large = 8 * CHUNK;
    send(&a, to, "r", &vec![0u8; large]);
    let e = event(&mut events, "unreachable", |e| {
        matches!(e, PeerEvent::Unreachable { .. })
    })
    .await;
    assert!(
        matches!(e, PeerEvent::Unreachable { dropped_bytes, .. } if dropped_bytes >= large),
        "{e:?}"
    );
    assert_eq!(
        a.send(to, tell("s", "r"), Bytes::new(), SendOptions::data()),
        Err(SendError::Unreachable { peer: to })
    );
    a.shutdown();
}

/// With the bulk lane off, large frames share the data connections as before and a pair
/// still keeps its order.
#[tokio::test]
async fn with_the_bulk_lane_off_large_frames_share_the_data_connection_in_order() {
    let (b, mut rx) = collecting(config().with_chunk_size(CHUNK)).await;
    let a = discard(config().with_chunk_size(CHUNK).with_bulk_lane(false)).await;
    let to = b.local_addr();
    for seq in 0..200u32 {
        let len = if seq % 9 == 4 { 5 * CHUNK } else { 16 };
        numbered(&a, to, 0, seq, len);
    }
    assert_eq!(in_order(&mut rx, 200).await.get("sender-0"), Some(&200));
    a.shutdown();
    b.shutdown();
}
