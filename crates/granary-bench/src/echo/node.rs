//! The hidden `echo-node` subcommand: one of the three node processes of `echo` and
//! `kvs` (seed 002 §6.2).
//!
//! Each node binds granary-remote's transport with the run's options, runs
//! granary-cluster membership on it (gossip and failure detection on the control
//! channel: the "ring gossip" of the paper) and sends background anti-entropy frames
//! to the other members (the paper's "metadata anti-entropy": on their own named
//! channel when channels are on, else on the data channel beside the requests). It
//! serves echo requests and hosts a key-value replica; node 0 also drives the load.
//!
//! Protocol with the parent (lines): the node prints `listening ADDR` once it serves.
//! On stdin: `members N` waits until N members are Up and answers `members N`;
//! `rtt MS` sets the simulated round trip (half on each direction, by the transport's
//! delay injection) and answers `ok`; `echo PAYLOAD CONCURRENCY SECONDS` and
//! `kvs PAYLOAD CONCURRENCY SECONDS` run the load from this node and answer
//! `result REQUESTS SECONDS P50 P99 P999 MAX` (latencies in µs) or `error TEXT`.
//! The node exits when its stdin closes.

use std::io::BufRead;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use granary_cluster::transport::tcp::TcpClusterTransport;
use granary_cluster::{Cluster, ClusterConfig, ClusterTransport, HashRing};
use granary_remote::faults::{FaultInjector, LinkFaults, Scope};
use granary_remote::TransportConfig;
use tokio::sync::mpsc;

use super::wire::{Inbound, Options, Wire, GOSSIP_CHANNEL, REQUEST_CHANNEL};
use super::EchoError;
use crate::kvs::replica::Replica;

/// Cluster name and secret of the node processes.
const CLUSTER: &str = "granary-bench-echo";
const SECRET: &[u8] = b"granary-bench-echo-secret";

/// The largest payload a run may use (frames up to this plus headers are accepted).
pub(crate) const MAX_PAYLOAD: usize = 8 << 20;

/// Limit of one request: a lost reply fails the run instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of the hidden `echo-node` subcommand.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Parallel connections per peer for requests.
    #[arg(long)]
    parallelism: usize,
    /// Requests and background traffic on their own named channels.
    #[arg(long, action = clap::ArgAction::Set)]
    channels: bool,
    /// Requests carry their partition as partition key.
    #[arg(long, action = clap::ArgAction::Set)]
    affinity: bool,
    /// A member to join through; none forms the cluster.
    #[arg(long)]
    seed: Option<SocketAddr>,
    /// The address to listen on (port 0: any free port); a test bed host's address
    /// when the nodes run on the chaos test bed (`--bed`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bytes of each background anti-entropy frame.
    #[arg(long, default_value_t = 256 * 1024)]
    background_bytes: usize,
    /// Milliseconds between background frames to each member.
    #[arg(long, default_value_t = 100)]
    background_every_ms: u64,
    /// Simulated storage delay of the key-value replica, microseconds.
    #[arg(long, default_value_t = 1000)]
    storage_delay_us: u64,
}

impl NodeArgs {
    /// The arguments that start a node with `options` listening on `listen`, joining
    /// through `seed`.
    pub(crate) fn command_line(
        options: Options,
        listen: SocketAddr,
        seed: Option<SocketAddr>,
    ) -> Vec<String> {
        let mut args = vec![
            "echo-node".to_string(),
            "--listen".into(),
            listen.to_string(),
            "--parallelism".into(),
            options.parallelism.to_string(),
            "--channels".into(),
            options.channels.to_string(),
            "--affinity".into(),
            options.affinity.to_string(),
        ];
        if let Some(seed) = seed {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        args
    }
}

fn transport_config(
    options: Options,
    listen: SocketAddr,
    faults: Arc<FaultInjector>,
) -> TransportConfig {
    let mut config = TransportConfig::new(CLUSTER, SECRET.to_vec())
        .with_listen(listen)
        .with_parallelism(options.parallelism)
        .with_affinity(options.affinity)
        .with_max_frame((MAX_PAYLOAD + 64 * 1024) as u32)
        // 64 requests of 8 MB may be in flight at once; backpressure is retried anyway.
        .with_queue_capacity(1 << 30)
        .with_faults(faults);
    if options.channels {
        config = config
            .with_channel(REQUEST_CHANNEL, options.parallelism)
            .with_channel(GOSSIP_CHANNEL, 1);
    }
    config
}

/// Runs `granary-bench echo-node`.
pub(crate) fn run_node(args: NodeArgs) -> Result<(), EchoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(EchoError::Runtime)?;
    runtime.block_on(async move {
        let options = Options {
            parallelism: args.parallelism,
            channels: args.channels,
            affinity: args.affinity,
        };
        let replica = Arc::new(Replica::new(
            Duration::from_micros(args.storage_delay_us),
            MAX_PAYLOAD,
        ));
        let wire = Wire::new(options, replica);
        let faults = FaultInjector::new(u64::from(std::process::id()));
        let transport = TcpClusterTransport::bind_with(
            transport_config(options, args.listen, faults.clone()),
            Arc::new(Inbound(wire.clone())),
        )
        .await
        .map_err(|e| EchoError::Node(format!("bind: {e}")))?;
        wire.attach(transport.transport().clone());
        let addr = transport.local_addr();
        let cluster = Cluster::start_with_seeds(
            ClusterConfig::default(),
            transport,
            args.seed.into_iter().collect(),
        )
        .await
        .map_err(|e| EchoError::Node(format!("cluster: {e}")))?;
        println!("listening {addr}");
        let background = tokio::spawn(anti_entropy(
            wire.clone(),
            cluster.clone(),
            args.background_bytes,
            Duration::from_millis(args.background_every_ms.max(1)),
        ));
        let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel();
        // A plain thread: stdin is blocking; the channel closes with stdin.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if stdin_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut ring: Option<Arc<HashRing>> = None;
        while let Some(line) = stdin_rx.recv().await {
            let answer = command(&line, &wire, &cluster, &faults, &mut ring).await;
            println!("{answer}");
        }
        background.abort();
        cluster.stop().await;
        Ok(())
    })
}

/// Runs one stdin command; the answer line.
async fn command(
    line: &str,
    wire: &Arc<Wire>,
    cluster: &Cluster,
    faults: &FaultInjector,
    ring: &mut Option<Arc<HashRing>>,
) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["members", n] => match n.parse::<usize>() {
            Ok(n) => match wait_members(cluster, n).await {
                // The ring is fixed for the run from here on: placement must not move
                // under the load if a busy node is briefly suspected.
                Ok(()) => {
                    *ring = Some(cluster.ring());
                    format!("members {n}")
                }
                Err(e) => format!("error {e}"),
            },
            Err(_) => format!("error bad member count {n:?}"),
        },
        ["rtt", ms] => match ms.parse::<f64>() {
            Ok(ms) if ms > 0.0 => {
                let one_way = Duration::from_secs_f64(ms / 2000.0);
                let range: Range<Duration> = one_way..one_way;
                faults.set(
                    Scope::all(),
                    LinkFaults {
                        drop_probability: 0.0,
                        delay: Some(range),
                    },
                );
                "ok".to_string()
            }
            Ok(_) => {
                faults.clear();
                "ok".to_string()
            }
            Err(_) => format!("error bad rtt {ms:?}"),
        },
        [workload @ ("echo" | "kvs"), payload, concurrency, seconds] => {
            let (Ok(payload), Ok(concurrency), Ok(seconds)) = (
                payload.parse::<usize>(),
                concurrency.parse::<usize>(),
                seconds.parse::<f64>(),
            ) else {
                return format!("error bad arguments in {line:?}");
            };
            if payload > MAX_PAYLOAD || concurrency == 0 || seconds.is_nan() || seconds <= 0.0 {
                return format!("error out of range: {line:?}");
            }
            let Some(ring) = ring.clone() else {
                return "error send `members N` first".to_string();
            };
            let load = super::driver::Load {
                payload,
                concurrency,
                duration: Duration::from_secs_f64(seconds),
                timeout: REQUEST_TIMEOUT,
            };
            let measured = if *workload == "echo" {
                super::driver::run(wire.clone(), ring, load).await
            } else {
                crate::kvs::driver::run(wire.clone(), ring, load).await
            };
            match measured {
                Ok(latencies) => {
                    let [p50, p99, p999, max] = latencies.latencies.summary_us();
                    format!(
                        "result {} {} {p50} {p99} {p999} {max}",
                        latencies.latencies.len(),
                        latencies.seconds
                    )
                }
                Err(e) => format!("error {e}"),
            }
        }
        _ => format!("error unknown command {line:?}"),
    }
}

/// Waits (polling membership, bounded) until `n` members are Up.
async fn wait_members(cluster: &Cluster, n: usize) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut events = cluster.subscribe();
    loop {
        if cluster.up_members().len() >= n && cluster.ring().len() >= n {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err("the cluster stopped".to_string()),
            Err(_) => {
                return Err(format!(
                    "only {} of {n} members Up after 30 s",
                    cluster.up_members().len()
                ))
            }
        }
    }
}

/// Background traffic: one frame of `bytes` to every other Up member per `every`.
async fn anti_entropy(wire: Arc<Wire>, cluster: Cluster, bytes: usize, every: Duration) {
    if bytes == 0 {
        return;
    }
    let body = Bytes::from(vec![0xae; bytes]);
    let me = wire.local_addr();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for member in cluster.up_members() {
            if Some(member.id.addr) != me {
                wire.background(member.id.addr, body.clone());
            }
        }
    }
}
