//! Head-of-line blocking through the transport (seed 002 §4): 64 pairs play ping-pong with
//! 16-byte frames while one extra pair streams 1 MiB frames on the same data channel.
//! Prints the small pairs' round-trip p50/p99 for P = 1 and P = 4 (affinity on).
//!
//! Run: `cargo run --release -p granary-remote --example head_of_line -- [ROUND_TRIPS_PER_PAIR]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{NodeId, SendError, SendOptions, Transport, TransportConfig};
use tokio::sync::mpsc;

const PAIRS: usize = 64;

fn header<'a>(sender: &'a str, recipient: &'a str) -> FrameHeader<'a> {
    FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: 1,
        correlation: 0,
        sender,
        recipient,
        trace: None,
    }
}

async fn run(parallelism: usize, round_trips: usize, queue: usize) -> (Duration, Duration, u64) {
    let config = TransportConfig::new("hol", b"s".to_vec())
        .with_parallelism(parallelism)
        .with_queue_capacity(queue);
    // B echoes small frames back to A on the reverse pair; bulk frames are dropped.
    let b_slot: Arc<OnceLock<(Transport, std::net::SocketAddr)>> = Arc::new(OnceLock::new());
    let slot = b_slot.clone();
    let b = Transport::bind(config.clone(), move |_from: NodeId, f: Frame| {
        if f.recipient().starts_with("echo") {
            if let Some((b, a_addr)) = slot.get() {
                let _ = b.send(
                    *a_addr,
                    header(f.recipient(), f.sender()),
                    f.body.clone(),
                    SendOptions::data(),
                );
            }
        }
    })
    .await
    .unwrap();
    let mut waiters = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..PAIRS {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        senders.push(tx);
        waiters.push(rx);
    }
    let senders = Arc::new(senders);
    let s = senders.clone();
    let a = Transport::bind(config, move |_from: NodeId, f: Frame| {
        if let Some(i) = f
            .recipient()
            .strip_prefix("pinger-")
            .and_then(|i| i.parse::<usize>().ok())
        {
            let _ = s[i].send(());
        }
    })
    .await
    .unwrap();
    let _ = b_slot.set((b.clone(), a.local_addr()));
    let b_addr = b.local_addr();

    // The bulk pair: 1 MiB frames as fast as the queue takes them.
    let stop = Arc::new(AtomicBool::new(false));
    let bulk = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            let body = Bytes::from(vec![0u8; 1 << 20]);
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match a.send(
                    b_addr,
                    header("bulk-src", "bulk-sink"),
                    body.clone(),
                    SendOptions::data(),
                ) {
                    Ok(()) => sent += 1,
                    Err(SendError::Backpressure { .. }) => {
                        tokio::time::sleep(Duration::from_micros(200)).await
                    }
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
            sent
        })
    };

    let mut tasks = Vec::new();
    for (i, mut rx) in waiters.into_iter().enumerate() {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let (me, peer) = (format!("pinger-{i}"), format!("echo-{i}"));
            let mut rtts = Vec::with_capacity(round_trips);
            for _ in 0..round_trips {
                let t0 = Instant::now();
                // A ping that shares the bulk pair's connection may meet a full queue:
                // retrying is part of the latency it pays.
                let ping = Bytes::from_static(&[0; 16]);
                loop {
                    match a.send(
                        b_addr,
                        header(&me, &peer),
                        ping.clone(),
                        SendOptions::data(),
                    ) {
                        Ok(()) => break,
                        Err(SendError::Backpressure { .. }) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
                tokio::time::timeout(Duration::from_secs(30), rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                rtts.push(t0.elapsed());
            }
            rtts
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let bulk_sent = bulk.await.unwrap();
    all.sort();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    a.shutdown();
    b.shutdown();
    (p(0.50), p(0.99), bulk_sent)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let round_trips: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let queue_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    for p in [1, 4] {
        let (p50, p99, bulk) = run(p, round_trips, queue_mib << 20).await;
        println!(
            "P={p} affinity=on queue={queue_mib} MiB: {PAIRS} pairs x {round_trips} round trips \
             of 16 B beside a 1 MiB stream ({bulk} MiB sent): p50 {p50:.2?}, p99 {p99:.2?}"
        );
    }
}
