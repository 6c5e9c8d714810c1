//! Cluster demo: persisted virtual-actor counters survive a node crash.
//!
//! Run with `cargo run --release --example cluster_counter`. Three nodes start in
//! this process on 127.0.0.1 (port 0), all hosting the `Counter` virtual actor kind,
//! sharing one embedded file store in a temp dir. An external `Client` increments
//! five counters and prints where each one lives. Then a node hosting some counters
//! is killed (a simulated crash: nothing is saved, nobody is told) and the client
//! keeps incrementing: the counters reactivate on the survivors from their last
//! written state. The final counts are checked; the process exits non-zero if any
//! count is wrong, and every wait is bounded by a timeout.
use std::net::SocketAddr;
use std::time::Duration;

use granary::prelude::*;
use granary::register_message;
use serde::{Deserialize, Serialize};

/// The persisted state of one counter.
#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

/// A counter keyed by name; its state lives in the store, not in the node.
struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "example.Counter";
    type Key = String;
    type State = Count;

    fn activate(_key: &String) -> Self {
        Counter
    }
}

/// Adds to the counter, writes the state, and answers (hosting node, new value).
#[derive(Clone, Serialize, Deserialize)]
struct Increment(u64);
impl Message for Increment {
    type Reply = Result<(SocketAddr, u64), String>;
}
register_message!(Increment, "example.Increment");
register_message!(Result<(SocketAddr, u64), String>, "example.IncrementReply");

impl VirtualHandler<Increment> for Counter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(SocketAddr, u64), String> {
        ctx.state_mut().n += msg.0;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok((ctx.node_addr(), ctx.state().n))
    }
}

const KEYS: usize = 5;
const BEFORE_CRASH: u64 = 4;
const AFTER_CRASH: u64 = 3;
/// Bound on one request, including a failover's retries.
const ASK: Duration = Duration::from_secs(20);
/// Bound on the whole demo: it never hangs.
const WHOLE_RUN: Duration = Duration::from_secs(90);

type Error = Box<dyn std::error::Error>;

/// Sends `times` increments of 1 to `key`; answers the last (host, value).
async fn increment(client: &Client, key: &str, times: u64) -> Result<(SocketAddr, u64), Error> {
    let counter = client.get::<Counter>(key.to_string());
    let mut last = None;
    for _ in 0..times {
        let reply = counter
            .ask_timeout(Increment(1), ASK)
            .await
            .map_err(|e| format!("{key}: {e}"))?;
        last = Some(reply.map_err(|e| format!("{key}: {e}"))?);
    }
    Ok(last.ok_or("no increments sent")?)
}

async fn run() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let store = format!("file:{}", dir.path().join("counters.db").display());
    println!("store: {store}");

    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..3 {
        let seeds: Vec<SocketAddr> = nodes.first().map(Node::addr).into_iter().collect();
        let node = Node::builder()
            .bind("127.0.0.1:0".parse()?)
            .seeds(seeds)
            .store(store.as_str())
            .host(Kind::<Counter>::new().handles::<Increment>())
            .start()
            .await?;
        println!("node started at {}", node.addr());
        nodes.push(node);
    }
    for node in &nodes {
        wait_members(node, nodes.len()).await?;
    }
    println!("cluster up: {} members", nodes.len());

    let client = Client::connect(nodes.iter().map(Node::addr)).await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("counter-{i}")).collect();

    println!("\n-- {BEFORE_CRASH} increments per counter --");
    let mut hosts = Vec::new();
    for key in &keys {
        let (host, n) = increment(&client, key, BEFORE_CRASH).await?;
        println!("  {key} = {n} on {host}");
        hosts.push(host);
    }

    let victim = hosts[0];
    let lost: Vec<&String> = keys
        .iter()
        .zip(&hosts)
        .filter(|(_, h)| **h == victim)
        .map(|(k, _)| k)
        .collect();
    let idx = nodes
        .iter()
        .position(|n| n.addr() == victim)
        .ok_or("the host of counter-0 is not one of our nodes")?;
    println!("\n-- killing {victim} (it hosted {lost:?}) --");
    nodes.remove(idx).kill().await;

    println!("\n-- {AFTER_CRASH} more increments per counter --");
    let mut wrong = Vec::new();
    for key in &keys {
        let (host, n) = increment(&client, key, AFTER_CRASH).await?;
        let moved = if lost.contains(&key) { " (moved)" } else { "" };
        println!("  {key} = {n} on {host}{moved}");
        if host == victim {
            wrong.push(format!("{key} still answered from the killed node {host}"));
        }
        if n != BEFORE_CRASH + AFTER_CRASH {
            wrong.push(format!(
                "{key} = {n}, expected {}",
                BEFORE_CRASH + AFTER_CRASH
            ));
        }
    }

    client.close().await;
    for node in nodes {
        node.shutdown().await;
    }
    if !wrong.is_empty() {
        return Err(format!("wrong counts after the crash: {}", wrong.join("; ")).into());
    }
    println!(
        "\nall {KEYS} counters = {} after the crash: state continued from the store",
        BEFORE_CRASH + AFTER_CRASH
    );
    Ok(())
}

/// Waits (on cluster events) until `node` sees `n` members Up.
async fn wait_members(node: &Node, n: usize) -> Result<(), Error> {
    let mut events = node.cluster().subscribe();
    let converged = tokio::time::timeout(ASK, async {
        while node.cluster().up_members().len() != n {
            if events.recv().await.is_none() {
                return false;
            }
        }
        true
    })
    .await;
    match converged {
        Ok(true) => Ok(()),
        _ => Err(format!("{} did not see {n} members Up", node.addr()).into()),
    }
}

#[tokio::main]
async fn main() {
    let outcome = match tokio::time::timeout(WHOLE_RUN, run()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("the demo did not finish within {WHOLE_RUN:?}").into()),
    };
    if let Err(e) = outcome {
        eprintln!("cluster_counter FAILED: {e}");
        std::process::exit(1);
    }
}
