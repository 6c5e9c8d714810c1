use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_remote::faults::{Direction, FaultInjector, LinkFaults, Scope};
use granary_remote::SendOptions;

use super::support::*;

#[tokio::test]
async fn drop_rate_over_the_wire_is_within_statistical_bounds() {
    let faults = FaultInjector::new(2024);
    let (b, mut rx) = collecting(config()).await;
    let a = discard(
        config()
            .with_channel("lossy", 1)
            .with_faults(faults.clone()),
    )
    .await;
    faults.set(
        Scope::to(b.local_addr()).on_channel("lossy"),
        LinkFaults {
            drop_probability: 0.25,
            delay: None,
        },
    );
    let n = 4000;
    let lossy = SendOptions::channel("lossy");
    for i in 0..n {
        a.send(
            b.local_addr(),
            tell("s", "r"),
            Bytes::from(format!("{i}")),
            lossy,
        )
        .unwrap();
    }
    faults.clear();
    // Same channel and connection, sent last: arrives after every surviving frame.
    a.send(
        b.local_addr(),
        tell("s", "r"),
        Bytes::from_static(b"end"),
        lossy,
    )
    .unwrap();
    let mut received = 0usize;
    loop {
        let (_, frame) = recv(&mut rx).await;
        if &frame.body[..] == b"end" {
            break;
        }
        received += 1;
    }
    let dropped = (n - received) as f64;
    let sd = (n as f64 * 0.25 * 0.75).sqrt();
    assert!(
        (dropped - 0.25 * n as f64).abs() < 5.0 * sd,
        "dropped {dropped} of {n}"
    );
    assert_eq!(a.stats().fault_drops as f64, dropped);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn delayed_frames_arrive_late_and_in_order() {
    let faults = FaultInjector::new(1);
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config().with_parallelism(1).with_faults(faults.clone())).await;
    // Warm the connection up so the delay is the only wait measured.
    send(&a, b.local_addr(), "r", b"warm");
    recv(&mut rx).await;
    faults.set(
        Scope::to(b.local_addr()),
        LinkFaults {
            drop_probability: 0.0,
            delay: Some(Duration::from_millis(20)..Duration::from_millis(60)),
        },
    );
    let start = Instant::now();
    for i in 0..50u32 {
        a.send(
            b.local_addr(),
            tell("s", "r"),
            Bytes::copy_from_slice(&i.to_le_bytes()),
            SendOptions::data(),
        )
        .unwrap();
    }
    for i in 0..50u32 {
        let (_, frame) = recv(&mut rx).await;
        assert_eq!(frame.body[..], i.to_le_bytes());
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
    assert_eq!(faults.stats().delayed, 50);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn partition_blocks_both_ways_until_healed() {
    let faults = FaultInjector::new(1);
    let (a, mut rx_a) = collecting(config().with_faults(faults.clone())).await;
    let (b, mut rx_b) = collecting(config().with_faults(faults.clone())).await;
    faults.partition(&[a.local_addr()], &[b.local_addr()], Direction::BothWays);
    send(&a, b.local_addr(), "r", b"a->b blocked");
    send(&b, a.local_addr(), "r", b"b->a blocked");
    assert_eq!(faults.stats().blocked, 2);
    faults.heal();
    send(&a, b.local_addr(), "r", b"a->b");
    send(&b, a.local_addr(), "r", b"b->a");
    assert_eq!(&recv(&mut rx_b).await.1.body[..], b"a->b");
    assert_eq!(&recv(&mut rx_a).await.1.body[..], b"b->a");
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn one_way_partition_blocks_only_one_direction() {
    let faults = FaultInjector::new(1);
    let (a, mut rx_a) = collecting(config().with_faults(faults.clone())).await;
    let (b, mut rx_b) = collecting(config().with_faults(faults.clone())).await;
    faults.partition(&[a.local_addr()], &[b.local_addr()], Direction::OneWay);
    send(&a, b.local_addr(), "r", b"blocked");
    send(&b, a.local_addr(), "r", b"passes");
    assert_eq!(&recv(&mut rx_a).await.1.body[..], b"passes");
    faults.heal();
    send(&a, b.local_addr(), "r", b"after heal");
    assert_eq!(&recv(&mut rx_b).await.1.body[..], b"after heal");
    a.shutdown();
    b.shutdown();
}

/// A both-ways partition set on one node's injector only (the peer has its own
/// injector, with no rule) cuts both directions of the link: what the node sends is
/// dropped on sending, what the peer sends is dropped on arrival. Healing restores
/// both. Heartbeats are off (an hour apart), so the injector's counters count only
/// this test's frames.
#[tokio::test]
async fn a_both_ways_partition_set_on_one_side_cuts_both_directions() {
    let quiet = || config().with_heartbeat(Duration::from_secs(3600), Duration::from_secs(7200));
    let faults_a = FaultInjector::new(1);
    let faults_b = FaultInjector::new(2);
    let (a, mut rx_a) = collecting(quiet().with_faults(faults_a.clone())).await;
    let (b, mut rx_b) = collecting(quiet().with_faults(faults_b.clone())).await;
    // Both connections up before the partition, so a frame's silence is the rule's.
    send(&a, b.local_addr(), "r", b"warm a->b");
    send(&b, a.local_addr(), "r", b"warm b->a");
    assert_eq!(&recv(&mut rx_b).await.1.body[..], b"warm a->b");
    assert_eq!(&recv(&mut rx_a).await.1.body[..], b"warm b->a");

    faults_a.partition(&[a.local_addr()], &[b.local_addr()], Direction::BothWays);
    send(&a, b.local_addr(), "r", b"a->b blocked");
    assert_eq!(faults_a.stats().blocked, 1, "dropped on sending");
    send(&b, a.local_addr(), "r", b"b->a blocked");
    // The frame leaves b (b has no rule) and is dropped when it arrives at a.
    let deadline = Instant::now() + WAIT;
    while faults_a.stats().blocked_on_arrival < 1 {
        assert!(
            Instant::now() < deadline,
            "b's frame was not dropped on arrival at a within {WAIT:?} (stats {:?})",
            faults_a.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_silent(&mut rx_a, Duration::from_millis(100)).await;
    assert_silent(&mut rx_b, Duration::from_millis(100)).await;
    assert_eq!(faults_a.stats().blocked_on_arrival, 1);
    assert_eq!(
        faults_b.stats().blocked + faults_b.stats().blocked_on_arrival,
        0
    );

    faults_a.heal();
    send(&a, b.local_addr(), "r", b"a->b healed");
    send(&b, a.local_addr(), "r", b"b->a healed");
    assert_eq!(&recv(&mut rx_b).await.1.body[..], b"a->b healed");
    assert_eq!(&recv(&mut rx_a).await.1.body[..], b"b->a healed");
    a.shutdown();
    b.shutdown();
}
