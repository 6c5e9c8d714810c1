//! The `crdt` scenario: bytes on the wire for delta-state vs full-state gossip
//! (seed 003 §2.9, issue 7's bar).
//!
//! `--nodes` in-process nodes (a RemoteNode on 127.0.0.1 TCP, a Cluster on it and a
//! granary-crdt `Replicator` each) replicate one `ORSet<String>`. Node 0 first fills it
//! with `--elements` elements and every node waits until it holds them all; then
//! `--ops` random operations (half adds of an element drawn from twice the initial
//! range, half removes) are spread over the nodes at `--rate` operations per second,
//! and the run waits until every node holds the same set. The replicators count every
//! frame they hand to the transport (header plus body); a row gives the bytes of the
//! operation phase only.
//!
//! It runs twice on fresh nodes with the same seed: once with `Dissemination::Deltas`,
//! once with `Dissemination::FullState` (same pushes and acknowledgements, but each
//! carries the whole state). The full-state row carries the ratio of the two; the
//! bar is a ratio of at least 10.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use granary::cluster::{Cluster, ClusterConfig};
use granary::crdt::{Dissemination, ORSet, Replicator, ReplicatorConfig, ReplicatorStats};
use granary::remote::{RemoteNode, TransportConfig};
use granary::ActorSystem;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::report::{ReportError, Reporter};

/// Options of `granary-bench crdt`.
#[derive(Debug, Args)]
pub(crate) struct CrdtArgs {
    /// Nodes replicating the set. Default 5.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Elements the set holds before the measured operations. Default 10,000;
    /// `--quick`: 3,000.
    #[arg(long)]
    elements: Option<usize>,
    /// Measured operations. Default 10,000; `--quick`: 1,500.
    #[arg(long)]
    ops: Option<usize>,
    /// Operations per second over all nodes. Default 5,000.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// The replicators' push round interval, milliseconds. Default 100.
    #[arg(long, default_value_t = 100)]
    delta_interval_ms: u64,
    /// Seed of the operation draws.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A short run for tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Why the scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CrdtBenchError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A node could not start.
    #[error("cannot start a node: {0}")]
    Start(String),
    /// The replicas did not converge in time.
    #[error("the replicas did not converge within {0:?}")]
    NoConvergence(Duration),
    /// A replicator refused an operation.
    #[error(transparent)]
    Replicator(#[from] granary::crdt::ReplicatorError),
    /// Writing a row failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// One measured run.
#[derive(Debug, Serialize)]
struct Row {
    scenario: &'static str,
    mode: &'static str,
    gossip: &'static str,
    nodes: usize,
    actors: usize,
    payload_bytes: usize,
    messages: usize,
    seconds: f64,
    msgs_per_sec: f64,
    elements: usize,
    delta_interval_ms: u64,
    bytes_sent: u64,
    frames_sent: u64,
    delta_payloads: u64,
    full_state_payloads: u64,
    bytes_per_op: f64,
    converge_ms: f64,
    final_elements: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_over_delta_bytes: Option<f64>,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "mode",
    "gossip",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "seconds",
    "msgs_per_sec",
    "elements",
    "delta_interval_ms",
    "bytes_sent",
    "frames_sent",
    "delta_payloads",
    "full_state_payloads",
    "bytes_per_op",
    "converge_ms",
    "final_elements",
    "full_over_delta_bytes",
];

/// How long the replicas may take to agree after the last operation.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// Runs `granary-bench crdt`.
pub(crate) fn run(args: CrdtArgs) -> Result<(), CrdtBenchError> {
    let elements = args
        .elements
        .unwrap_or(if args.quick { 3_000 } else { 10_000 });
    let ops = args.ops.unwrap_or(if args.quick { 1_500 } else { 10_000 });
    if args.nodes < 2 || elements == 0 || ops == 0 || args.rate == 0 || args.delta_interval_ms == 0
    {
        return Err(CrdtBenchError::Options(
            "need at least 2 nodes and positive --elements, --ops, --rate, --delta-interval-ms"
                .into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CrdtBenchError::Runtime)?;
    let mut reporter = Reporter::new(COLUMNS, args.csv.as_deref(), 2)?;
    let mut delta_bytes = None;
    for (gossip, mode) in [
        ("delta", Dissemination::Deltas),
        ("full_state", Dissemination::FullState),
    ] {
        reporter.progress().set_message(format!("{gossip} gossip"));
        let mut row = runtime.block_on(measure(&args, elements, ops, mode))?;
        row.gossip = gossip;
        match delta_bytes {
            None => delta_bytes = Some(row.bytes_sent),
            Some(delta) => {
                row.full_over_delta_bytes = Some(row.bytes_sent as f64 / delta.max(1) as f64)
            }
        }
        reporter.emit(&row)?;
        reporter.progress().inc(1);
    }
    reporter.finish();
    Ok(())
}

/// One node of the run.
struct Node {
    remote: RemoteNode,
    cluster: Cluster,
    replicator: Replicator,
}

async fn start_nodes(n: usize, config: &ReplicatorConfig) -> Result<Vec<Node>, CrdtBenchError> {
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..n {
        let transport = TransportConfig::new("granary-bench-crdt", b"bench".to_vec());
        let remote = RemoteNode::start(ActorSystem::new(), transport)
            .await
            .map_err(|e| CrdtBenchError::Start(e.to_string()))?;
        let seeds = nodes
            .first()
            .map(|s| vec![s.remote.local_addr()])
            .unwrap_or_default();
        let cluster = Cluster::start_on_remote(ClusterConfig::default(), &remote, seeds)
            .await
            .map_err(|e| CrdtBenchError::Start(e.to_string()))?;
        let replicator = Replicator::start(&remote, &cluster, config.clone())
            .map_err(|e| CrdtBenchError::Start(e.to_string()))?;
        nodes.push(Node {
            remote,
            cluster,
            replicator,
        });
    }
    let ready = poll_until(Duration::from_secs(30), || {
        nodes
            .iter()
            .all(|node| node.cluster.up_members().len() == n)
    })
    .await;
    if !ready {
        return Err(CrdtBenchError::Start(
            "the nodes did not all see each other Up in 30 s".into(),
        ));
    }
    Ok(nodes)
}

/// Polls `condition` every 5 ms; false if it still fails after `limit`.
async fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        poll.tick().await;
    }
}

fn element(i: usize) -> String {
    format!("element-{i:06}")
}

fn sum(stats: &[ReplicatorStats], field: fn(&ReplicatorStats) -> u64) -> u64 {
    stats.iter().map(field).sum()
}

async fn measure(
    args: &CrdtArgs,
    elements: usize,
    ops: usize,
    dissemination: Dissemination,
) -> Result<Row, CrdtBenchError> {
    let config = ReplicatorConfig {
        delta_interval: Duration::from_millis(args.delta_interval_ms),
        dissemination,
        ..ReplicatorConfig::default()
    };
    let nodes = start_nodes(args.nodes, &config).await?;
    let sets = nodes
        .iter()
        .map(|node| node.replicator.crdt::<ORSet<String>>("bench-set"))
        .collect::<Result<Vec<_>, _>>()?;

    // Fill on node 0; wait until every node has every element.
    for i in 0..elements {
        sets[0].update(|set, me| set.add(me, element(i)))?;
    }
    let filled = poll_until(CONVERGE_LIMIT, || {
        sets.iter()
            .all(|s| s.with_state(|set| set.len() == elements).unwrap_or(false))
    })
    .await;
    if !filled {
        return Err(CrdtBenchError::NoConvergence(CONVERGE_LIMIT));
    }
    let before: Vec<ReplicatorStats> = nodes.iter().map(|n| n.replicator.stats()).collect();

    // The measured operations, paced in 10 ms steps.
    let mut rng = StdRng::seed_from_u64(args.seed);
    let step = Duration::from_millis(10);
    let per_step = ((args.rate as f64 * step.as_secs_f64()).ceil() as usize).max(1);
    let mut pace = tokio::time::interval(step);
    let started = Instant::now();
    let mut done = 0;
    while done < ops {
        pace.tick().await;
        for _ in 0..per_step.min(ops - done) {
            let at = rng.random_range(0..nodes.len());
            let target = element(rng.random_range(0..2 * elements));
            if rng.random_bool(0.5) {
                sets[at].update(|set, me| set.add(me, target))?;
            } else {
                sets[at].update(|set, _| set.remove(&target))?;
            }
            done += 1;
        }
    }
    let issued = started.elapsed();
    let converge_started = Instant::now();
    let converged = poll_until(CONVERGE_LIMIT, || {
        let Ok(reference) = sets[0].with_state(|set| set.clone()) else {
            return false;
        };
        sets[1..]
            .iter()
            .all(|s| s.with_state(|set| *set == reference).unwrap_or(false))
    })
    .await;
    if !converged {
        return Err(CrdtBenchError::NoConvergence(CONVERGE_LIMIT));
    }
    let converge = converge_started.elapsed();
    let after: Vec<ReplicatorStats> = nodes.iter().map(|n| n.replicator.stats()).collect();
    let final_elements = sets[0].with_state(|set| set.len())?;
    for node in &nodes {
        node.replicator.stop();
        node.cluster.stop().await;
        node.remote.shutdown();
    }

    let bytes_sent = sum(&after, |s| s.bytes_sent) - sum(&before, |s| s.bytes_sent);
    let seconds = issued.as_secs_f64() + converge.as_secs_f64();
    Ok(Row {
        scenario: "crdt",
        mode: "distributed",
        gossip: "",
        nodes: args.nodes,
        actors: 0,
        payload_bytes: 0,
        messages: ops,
        seconds,
        msgs_per_sec: ops as f64 / issued.as_secs_f64(),
        elements,
        delta_interval_ms: args.delta_interval_ms,
        bytes_sent,
        frames_sent: sum(&after, |s| s.frames_sent) - sum(&before, |s| s.frames_sent),
        delta_payloads: sum(&after, |s| s.deltas_sent) - sum(&before, |s| s.deltas_sent),
        full_state_payloads: sum(&after, |s| s.full_states_sent)
            - sum(&before, |s| s.full_states_sent),
        bytes_per_op: bytes_sent as f64 / ops as f64,
        converge_ms: converge.as_secs_f64() * 1000.0,
        final_elements,
        full_over_delta_bytes: None,
    })
}
