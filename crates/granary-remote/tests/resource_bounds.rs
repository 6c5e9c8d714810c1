//! What an unauthenticated attacker can make a node hold: a real node process (the
//! `granary-remote-node` binary) takes 10,000 refused handshakes with maximal cluster names
//! and 5,000 half-open connections that each sent part of a frame, while a real peer keeps
//! asking. Afterwards the node's resident memory is back within 20 MB of where it started,
//! and the peer's asks were answered throughout with p99 under 50 ms.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::NodeProcess;
use granary_core::prelude::*;
use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

const REFUSED_HANDSHAKES: usize = 10_000;
const HALF_OPEN: usize = 5_000;
const RSS_SLACK_KB: u64 = 20 * 1024;

/// Resident set size of `node` in KiB, from /proc/PID/status.
fn rss_kb(node: &NodeProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id()))
        .expect("node process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Raise this process's soft open-file limit to the hard limit: the attack holds
/// thousands of sockets at once.
fn raise_fd_limit(needed: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= needed,
        "open-file limit {} is below the {needed} this test needs",
        lim.rlim_cur
    );
}

/// Send one Hello for another cluster and read until the node closes the connection.
async fn refused_handshake(addr: SocketAddr, hello: &[u8]) {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return;
    };
    // The node may close before reading it all (an oversized frame is refused at its
    // length prefix): write errors are expected.
    let _ = tcp.write_all(hello).await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_attack_leaves_memory_bounded_and_peers_served() {
    raise_fd_limit(HALF_OPEN as u64 + 1_000);
    let node = NodeProcess::start("127.0.0.1:0", "bounds-test");
    let peer = RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("bounds-test", b"cookie".to_vec()),
    )
    .await
    .unwrap();
    let counter = ActorRef::<Counter>::remote(&peer, node.addr, "counter");
    for i in 0..200 {
        counter
            .ask(Add(1))
            .await
            .unwrap_or_else(|e| panic!("warm-up ask {i}: {e:?}"));
    }
    let rss_before = rss_kb(&node);

    // The real peer asks every 5 ms for the whole attack.
    let stop = Arc::new(AtomicBool::new(false));
    let asker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                counter
                    .ask_timeout(Add(1), Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|e| panic!("ask during the attack: {e:?}"));
                latencies.push(start.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        }
    });

    // 1. Refused handshakes with maximal names: half far over the handshake frame limit
    //    (a 60,000-byte name), half just under it, so the refusal names another cluster.
    let oversized = Arc::new(granary_remote::__fuzz::hello_frame(&"x".repeat(60_000)));
    let largest = Arc::new(granary_remote::__fuzz::hello_frame(&"y".repeat(900)));
    let mut attackers = tokio::task::JoinSet::new();
    for worker in 0..64usize {
        let (oversized, largest) = (oversized.clone(), largest.clone());
        let addr = node.addr;
        attackers.spawn(async move {
            for i in (worker..REFUSED_HANDSHAKES).step_by(64) {
                let hello = if i % 2 == 0 { &oversized } else { &largest };
                refused_handshake(addr, hello).await;
            }
        });
    }
    while attackers.join_next().await.is_some() {}
    let rss_after_refusals = rss_kb(&node);

    // 2. Half-open connections, each with the first half of a frame, held open together.
    let partial = &largest[..largest.len() / 2];
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        if let Ok(mut tcp) = TcpStream::connect(node.addr).await {
            let _ = tcp.write_all(partial).await;
            half_open.push(tcp);
        }
    }
    assert!(
        half_open.len() >= HALF_OPEN * 9 / 10,
        "{} connected",
        half_open.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_peak = rss_kb(&node);
    drop(half_open);

    stop.store(true, Ordering::Relaxed);
    let mut latencies = asker.await.unwrap();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];

    // Memory back within bounds after the connections closed (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(15);
    let rss_after = loop {
        let rss = rss_kb(&node);
        if rss <= rss_before + RSS_SLACK_KB || Instant::now() > deadline {
            break rss;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "rss KiB: before {rss_before}, after refusals {rss_after_refusals}, \
         with half-open {rss_peak}, after {rss_after}; {} asks, p99 {p99:?}",
        latencies.len()
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KB,
        "node RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(p99 < Duration::from_millis(50), "ask p99 {p99:?}");
    peer.shutdown();
}
