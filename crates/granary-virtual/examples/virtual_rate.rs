//! Activation rate and call throughput of virtual actors, several nodes in one
//! process over TCP on 127.0.0.1, `memory:` stores.
//!
//! `cargo run --release -p granary-virtual --example virtual_rate -- [identities] [seconds]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

struct Echo;

impl VirtualActor for Echo {
    const KIND: &'static str = "rate.Echo";
    type Key = i64;
    type State = ();
    fn activate(_: &i64) -> Self {
        Echo
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Ping(u64);
impl Message for Ping {
    type Reply = u64;
}
register_message!(Ping, "rate.Ping");

impl VirtualHandler<Ping> for Echo {
    async fn handle(&mut self, msg: Ping, _ctx: &mut VirtualContext<'_, Self>) -> u64 {
        msg.0
    }
}

async fn nodes(n: usize) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for _ in 0..n {
        let seeds: Vec<_> = out.first().map(|n| n.addr()).into_iter().collect();
        let node = Node::builder()
            .store("memory:")
            .seeds(seeds)
            .host(Kind::<Echo>::new().handles::<Ping>())
            .start()
            .await
            .expect("node starts");
        out.push(node);
    }
    for node in &out {
        while node.cluster().up_members().len() < n {
            let mut ev = node.cluster().subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(1), ev.recv()).await;
        }
    }
    out
}

/// Activates `count` new identities through `node` with `tasks` concurrent callers.
async fn activate(node: &Node, base: i64, count: i64, tasks: i64) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let refs: Vec<VirtualRef<Echo>> = (0..count)
            .filter(|i| i % tasks == t)
            .map(|i| node.get::<Echo>(base + i))
            .collect();
        handles.push(tokio::spawn(async move {
            for r in refs {
                r.ask(Ping(1)).await.expect("activation");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);

    let one = nodes(1).await;
    let rate1 = activate(&one[0], 0, count, 256).await;
    println!("activate, 1 node : {count} identities, {rate1:.0} activations/s");
    for n in one {
        n.shutdown().await;
    }

    let three = nodes(3).await;
    let rate3 = activate(&three[0], 1_000_000, count, 256).await;
    println!(
        "activate, 3 nodes: {count} identities, {rate3:.0} activations/s (calls from one node)"
    );

    // Steady-state calls to 1,000 live identities from every node.
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for (i, node) in three.iter().enumerate() {
        for t in 0..32i64 {
            let r = node.get::<Echo>(1_000_000 + (t * 31 + i as i64) % 1000);
            let done = done.clone();
            handles.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    r.ask(Ping(7)).await.expect("ask");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    let asks = done.load(Ordering::Relaxed) as f64 / secs as f64;
    println!("ask, 3 nodes, 96 callers: {asks:.0} asks/s");
    for n in three {
        n.shutdown().await;
    }
}
