//! One-way frame throughput over loopback through the transport (no actors).
//!
//! Run: `cargo run --release -p granary-remote --example oneway_throughput -- [N] [BODY] [P]`
//! (defaults: 2,000,000 frames of 16 bytes, P = 1). Both nodes live in this process on
//! 127.0.0.1; frames are counted at the receiver's inbound handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{NodeId, SendError, SendOptions, Transport, TransportConfig};
use tokio::sync::Notify;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let body_len: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let parallelism: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);

    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (r, d) = (received.clone(), done.clone());
    let config = TransportConfig::new("bench", b"secret".to_vec()).with_parallelism(parallelism);
    let receiver = Transport::bind(config.clone(), move |_: NodeId, _: Frame| {
        if r.fetch_add(1, Ordering::Relaxed) + 1 == n {
            d.notify_one();
        }
    })
    .await?;
    let sender = Transport::bind(config, |_: NodeId, _: Frame| {}).await?;
    let to = receiver.local_addr();
    let body = Bytes::from(vec![7u8; body_len]);
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: granary_remote::type_tag("bench.Oneway"),
        correlation: 0,
        sender: "src",
        recipient: "sink",
        trace: None,
    };

    // Warm-up: connect and handshake outside the measurement.
    sender.connect(to)?;
    while sender.peer_node(to).is_none() {
        tokio::task::yield_now().await;
    }

    let start = Instant::now();
    let mut backpressure = 0u64;
    let mut i = 0;
    while i < n {
        match sender.send(to, header, body.clone(), SendOptions::data()) {
            Ok(()) => i += 1,
            Err(SendError::Backpressure { .. }) => {
                backpressure += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => return Err(e.into()),
        }
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let sent = start.elapsed();
    tokio::time::timeout(Duration::from_secs(120), done.notified()).await?;
    let elapsed = start.elapsed();
    let stats = sender.stats();
    println!(
        "oneway: {n} frames of {body_len} B, P={parallelism}: {:.0} frames/s at the receiver \
         ({:.2?} total, sender done after {:.2?}), {} writes ({:.1} frames/write), \
         {backpressure} backpressure retries",
        n as f64 / elapsed.as_secs_f64(),
        elapsed,
        sent,
        stats.writes,
        n as f64 / stats.writes.max(1) as f64,
    );
    sender.shutdown();
    receiver.shutdown();
    Ok(())
}
