//! Quick start: a cluster of three nodes hosting persisted `Counter` virtual actors.
//!
//! `cargo run --release --example quickstart` starts three nodes in this process on
//! 127.0.0.1, sharing the embedded file store in a temporary directory. A `Client`
//! (not a member) increments five counters and prints which node each one lives on.
//! Then one node is stopped abruptly (a simulated crash: nothing is saved, nobody is
//! told), and the client keeps incrementing: the counters the stopped node hosted
//! reactivate on the survivors from their last written state, and the counts go on
//! where they were. The demo checks the counts and exits 0 within seconds (non-zero
//! if a count is wrong; every wait is bounded).
//!
//! The same demo with one process per node (stop one with Ctrl-C):
//!
//! ```text
//! cargo run --release --example quickstart -- --node 1
//! cargo run --release --example quickstart -- --node 2 --seeds 127.0.0.1:7101
//! cargo run --release --example quickstart -- --node 3 --seeds 127.0.0.1:7101
//! cargo run --release --example quickstart -- --client --seeds 127.0.0.1:7101,127.0.0.1:7102
//! ```
//!
//! Node N listens on 127.0.0.1:7100+N and keeps state in `./granary-quickstart/`
//! (shared by the node processes; `--data DIR` to change it). The client increments
//! the counters once a second for 30 rounds and prints who answered.
//!
//! The local-actor (non-cluster) quick start is `crates/granary/examples/local_counter.rs`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use granary::prelude::*;
use serde::{Deserialize, Serialize};

/// The persisted state of one counter.
#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

/// A counter keyed by name; its state lives in the store, not in the node.
struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "quickstart.Counter";
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
register_message!(Increment, "quickstart.Increment");
register_message!(Result<(SocketAddr, u64), String>, "quickstart.IncrementReply");

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
const BEFORE_STOP: u64 = 4;
const AFTER_STOP: u64 = 3;
/// Bound on one request, including a failover's retries.
const ASK: Duration = Duration::from_secs(20);
/// Bound on the whole in-process demo: it never hangs.
const WHOLE_RUN: Duration = Duration::from_secs(90);
/// Rounds of the `--client` mode, one a second.
const CLIENT_ROUNDS: u32 = 30;

type Error = Box<dyn std::error::Error>;

/// A node hosting `Counter`, on the store `store`.
async fn start_node(bind: SocketAddr, seeds: Vec<SocketAddr>, store: &str) -> Result<Node, Error> {
    Ok(Node::builder()
        .bind(bind)
        .seeds(seeds)
        .store(store)
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await?)
}

/// One increment of `key`; answers (host, value).
async fn increment(client: &Client, key: &str) -> Result<(SocketAddr, u64), Error> {
    let reply = client
        .get::<Counter>(key.to_string())
        .ask_timeout(Increment(1), ASK)
        .await
        .map_err(|e| format!("{key}: {e}"))?;
    Ok(reply.map_err(|e| format!("{key}: {e}"))?)
}

/// `times` increments of `key`; answers the last (host, value).
async fn increment_times(
    client: &Client,
    key: &str,
    times: u64,
) -> Result<(SocketAddr, u64), Error> {
    let mut last = None;
    for _ in 0..times {
        last = Some(increment(client, key).await?);
    }
    Ok(last.ok_or("no increments sent")?)
}

/// The default mode: three nodes in this process, one stopped halfway.
async fn in_process() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let store = format!("file:{}", dir.path().join("counters.db").display());
    println!("store: {store}");

    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..3 {
        let seeds: Vec<SocketAddr> = nodes.first().map(Node::addr).into_iter().collect();
        let node = start_node("127.0.0.1:0".parse()?, seeds, &store).await?;
        println!("node started at {}", node.addr());
        nodes.push(node);
    }
    for node in &nodes {
        wait_members(node, nodes.len()).await?;
    }
    println!("cluster up: {} members", nodes.len());

    let client = Client::connect(nodes.iter().map(Node::addr)).await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("counter-{i}")).collect();

    println!("\n-- a client outside the cluster: {BEFORE_STOP} increments per counter --");
    let mut hosts = Vec::new();
    for key in &keys {
        let (host, n) = increment_times(&client, key, BEFORE_STOP).await?;
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
    println!("\n-- stopping {victim} abruptly (it hosted {lost:?}) --");
    nodes.remove(idx).kill().await;

    println!("\n-- {AFTER_STOP} more increments per counter --");
    let mut wrong = Vec::new();
    for key in &keys {
        let (host, n) = increment_times(&client, key, AFTER_STOP).await?;
        let moved = if lost.contains(&key) {
            " (reactivated here from the store)"
        } else {
            ""
        };
        println!("  {key} = {n} on {host}{moved}");
        if host == victim {
            wrong.push(format!("{key} still answered from the stopped node {host}"));
        }
        if n != BEFORE_STOP + AFTER_STOP {
            wrong.push(format!(
                "{key} = {n}, expected {}",
                BEFORE_STOP + AFTER_STOP
            ));
        }
    }

    client.close().await;
    for node in nodes {
        node.shutdown().await;
    }
    if !wrong.is_empty() {
        return Err(format!("wrong counts after the stop: {}", wrong.join("; ")).into());
    }
    println!(
        "\nall {KEYS} counters = {} after the stop: the counts went on from the stored state",
        BEFORE_STOP + AFTER_STOP
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

/// `--node N`: one node in this process, until the process is stopped.
async fn node_process(number: u16, seeds: Vec<SocketAddr>, data: PathBuf) -> Result<(), Error> {
    std::fs::create_dir_all(&data)?;
    let store = format!("file:{}", data.join("counters.db").display());
    let bind: SocketAddr = ([127, 0, 0, 1], 7100 + number).into();
    let node = start_node(bind, seeds, &store).await?;
    println!(
        "node {number} up at {} (store {store}); Ctrl-C stops it",
        node.addr()
    );
    let mut events = node.cluster().subscribe();
    while let Some(event) = events.recv().await {
        if let granary::cluster::ClusterEvent::Change { event, .. } = event {
            println!("  membership: {event:?}");
        }
    }
    Ok(())
}

/// `--client`: increments the counters once a second and prints who answered.
async fn client_process(seeds: Vec<SocketAddr>) -> Result<(), Error> {
    let client = Client::connect(seeds).await?;
    println!("client connected; members: {:?}", client.members());
    let keys: Vec<String> = (0..KEYS).map(|i| format!("counter-{i}")).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for round in 1..=CLIENT_ROUNDS {
        tick.tick().await;
        let mut line = format!("round {round:>2}:");
        for key in &keys {
            match increment(&client, key).await {
                Ok((host, n)) => line.push_str(&format!(" {key}={n}@{}", host.port())),
                Err(e) => line.push_str(&format!(" {key}=error({e})")),
            }
        }
        println!("{line}");
    }
    client.close().await;
    Ok(())
}

/// The command line: no flags, `--node N [--seeds A,B] [--data DIR]`, or
/// `--client --seeds A,B`.
enum Mode {
    InProcess,
    Node {
        number: u16,
        seeds: Vec<SocketAddr>,
        data: PathBuf,
    },
    Client {
        seeds: Vec<SocketAddr>,
    },
}

fn parse_args(args: &[String]) -> Result<Mode, Error> {
    let mut node = None;
    let mut client = false;
    let mut seeds = Vec::new();
    let mut data = PathBuf::from("granary-quickstart");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--node" => node = Some(value()?.parse::<u16>()?),
            "--client" => client = true,
            "--seeds" => {
                for s in value()?.split(',').filter(|s| !s.is_empty()) {
                    seeds.push(s.parse()?);
                }
            }
            "--data" => data = PathBuf::from(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other}; use --node N [--seeds A,B] [--data DIR] \
                     or --client --seeds A,B"
                )
                .into())
            }
        }
    }
    Ok(match (node, client) {
        (Some(_), true) => return Err("--node and --client exclude each other".into()),
        (Some(number), false) if (1..=99).contains(&number) => Mode::Node {
            number,
            seeds,
            data,
        },
        (Some(number), false) => return Err(format!("--node {number}: use 1 to 99").into()),
        (None, true) if seeds.is_empty() => return Err("--client needs --seeds".into()),
        (None, true) => Mode::Client { seeds },
        (None, false) => Mode::InProcess,
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match parse_args(&args) {
        Err(e) => Err(e),
        Ok(Mode::InProcess) => match tokio::time::timeout(WHOLE_RUN, in_process()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("the demo did not finish within {WHOLE_RUN:?}").into()),
        },
        Ok(Mode::Node {
            number,
            seeds,
            data,
        }) => node_process(number, seeds, data).await,
        Ok(Mode::Client { seeds }) => client_process(seeds).await,
    };
    if let Err(e) = outcome {
        eprintln!("quickstart FAILED: {e}");
        std::process::exit(1);
    }
}
