//! The `cluster` scenario: membership, failure detection and gossip cost (issue 5).
//!
//! Two tests:
//! - `processes`: real node processes on 127.0.0.x (this binary re-executed with the
//!   hidden `cluster-node` subcommand, granary-cluster over granary-remote's TCP
//!   transport, or with `--transport remote` on a granary-remote `RemoteNode` as an
//!   actor application runs it; default settings), N = 3, 10, 25: time for a joining node to be Up
//!   everywhere, false Downs in an idle window, gossip bytes per node per second, and
//!   after a `kill -9` the time until every survivor sees the node Down (p50 and max;
//!   `p50_us`/`max_us` carry the same figures). Children are killed on exit, on
//!   failure and on Ctrl-C, and exit by themselves when their stdin closes.
//! - `sim`: the same protocol in one process over the in-memory transport with a
//!   paused clock (`granary_cluster::sim::run`), N = 100 and 1,000: gossip rounds and
//!   time to converge after a join and after a failure, bytes per node per second.
//!
//! `--quick` runs N = 3 with a 3 s idle window and the N = 100 simulation.

mod child;
mod node;
mod processes;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use granary_cluster::sim::{SimConfig, SimError};
use granary_cluster::transport::tcp::TransportConfig;
use serde::Serialize;

use crate::report::{ReportError, Reporter};
pub(crate) use node::{run_node, NodeArgs};

/// Options of `granary-bench cluster`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// Process counts to measure, comma-separated (default 3,10,25; `--quick`: 3).
    /// `--nodes 0` skips the process test.
    #[arg(long, value_delimiter = ',')]
    nodes: Option<Vec<usize>>,
    /// Simulated cluster sizes, comma-separated (default 100,1000; `--quick`: 100).
    /// `--sim-nodes 0` skips the simulation.
    #[arg(long, value_delimiter = ',')]
    sim_nodes: Option<Vec<usize>>,
    /// What the node processes run the cluster on (default `tcp`).
    #[arg(long, value_enum, default_value_t = NodeTransport::Tcp)]
    transport: NodeTransport,
    /// Idle window in which any Down is a false Down, seconds (default 60; `--quick`: 3).
    #[arg(long, value_parser = crate::seconds::parse_seconds)]
    idle_secs: Option<f64>,
    /// Small sizes (well under a minute), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// The transport the node processes run the cluster protocol on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NodeTransport {
    /// `TcpClusterTransport`: a granary-remote `Transport` of its own.
    Tcp,
    /// `Cluster::start_on_remote`: on a `RemoteNode`, sharing its port with actors.
    Remote,
}

impl NodeTransport {
    /// The command-line spelling.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Remote => "remote",
        }
    }
}

/// Why the `cluster` scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterBenchError {
    /// The async runtime (or the path of this binary) could not be had.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A node process could not be started or fed.
    #[error(transparent)]
    NodeProcess(#[from] crate::child_process::NodeProcessError),
    /// A node printed something the bench does not understand.
    #[error("node process {index} printed `{line}`")]
    Protocol {
        /// Which node.
        index: usize,
        /// What it printed.
        line: String,
    },
    /// The node processes stopped printing while the bench waited.
    #[error("node processes went away while the bench waited for {0}")]
    NodeExited(String),
    /// A phase did not complete in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// Inside a node process: the cluster could not start.
    #[error("cluster node: {0}")]
    Node(String),
    /// Fewer than 3 processes were asked for (one joins, one is killed).
    #[error("the process test needs at least 3 nodes")]
    TooFewNodes,
    /// More processes than 127.0.0.2..=127.0.0.255 can hold.
    #[error("at most 254 node processes (one loopback address each)")]
    TooManyNodes,
    /// The simulation failed.
    #[error("simulation: {0}")]
    Sim(#[from] SimError),
    /// Writing the results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Transport settings of every node process (same cluster name and secret).
pub(crate) fn transport_config(listen: std::net::SocketAddr) -> TransportConfig {
    TransportConfig::new("granary-bench-cluster", b"bench-secret".to_vec()).with_listen(listen)
}

/// One output row (standard fields first, then the scenario's own).
#[derive(Debug, Clone, Default, Serialize)]
struct ClusterRow {
    scenario: &'static str,
    test: &'static str,
    mode: &'static str,
    transport: Option<&'static str>,
    nodes: u64,
    actors: u64,
    payload_bytes: u64,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: Option<f64>,
    max_us: Option<f64>,
    down_p50_ms: Option<f64>,
    down_max_ms: Option<f64>,
    join_up_ms: Option<f64>,
    false_downs: Option<u64>,
    idle_secs: Option<f64>,
    gossip_bytes_per_node_per_sec: f64,
    gossip_msgs_per_node_per_sec: f64,
    join_rounds: Option<f64>,
    join_ms: Option<f64>,
    failure_rounds: Option<f64>,
    failure_ms: Option<f64>,
    churn_bytes_per_node_per_sec: Option<f64>,
    bootstrap_secs: Option<f64>,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "test",
    "mode",
    "transport",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "seconds",
    "msgs_per_sec",
    "p50_us",
    "max_us",
    "down_p50_ms",
    "down_max_ms",
    "join_up_ms",
    "false_downs",
    "idle_secs",
    "gossip_bytes_per_node_per_sec",
    "gossip_msgs_per_node_per_sec",
    "join_rounds",
    "join_ms",
    "failure_rounds",
    "failure_ms",
    "churn_bytes_per_node_per_sec",
    "bootstrap_secs",
];

fn process_row(r: &processes::ProcessResult, transport: NodeTransport) -> ClusterRow {
    let p50 = r.down_ms.get(r.down_ms.len() / 2).copied();
    let max = r.down_ms.last().copied();
    let msgs_per_sec = r.idle_messages as f64 / r.idle_secs.max(f64::MIN_POSITIVE);
    ClusterRow {
        scenario: "cluster",
        test: "processes",
        mode: "distributed",
        transport: Some(transport.name()),
        nodes: r.nodes as u64,
        messages: r.idle_messages,
        seconds: r.idle_secs,
        msgs_per_sec,
        p50_us: p50.map(|ms| ms * 1e3),
        max_us: max.map(|ms| ms * 1e3),
        down_p50_ms: p50,
        down_max_ms: max,
        join_up_ms: Some(r.join_up_ms),
        false_downs: Some(r.false_downs),
        idle_secs: Some(r.idle_secs),
        gossip_bytes_per_node_per_sec: r.bytes_per_node_per_sec,
        gossip_msgs_per_node_per_sec: msgs_per_sec / r.nodes as f64,
        ..ClusterRow::default()
    }
}

fn sim_row(r: &granary_cluster::sim::SimReport) -> ClusterRow {
    ClusterRow {
        scenario: "cluster",
        test: "sim",
        mode: "local",
        nodes: r.nodes as u64,
        seconds: r.wall_time.as_secs_f64(),
        gossip_bytes_per_node_per_sec: r.steady_bytes_per_node_per_sec,
        gossip_msgs_per_node_per_sec: r.steady_messages_per_node_per_sec,
        join_rounds: Some(r.join_convergence_rounds),
        join_ms: Some(r.join_convergence_time.as_secs_f64() * 1e3),
        failure_rounds: Some(r.failure_convergence_rounds),
        failure_ms: Some(r.failure_convergence_time.as_secs_f64() * 1e3),
        churn_bytes_per_node_per_sec: Some(r.churn_bytes_per_node_per_sec),
        bootstrap_secs: Some(r.bootstrap_time.as_secs_f64()),
        ..ClusterRow::default()
    }
}

/// Runs `granary-bench cluster`.
pub(crate) fn run(args: ClusterArgs) -> Result<(), ClusterBenchError> {
    let process_sizes =
        args.nodes
            .unwrap_or_else(|| if args.quick { vec![3] } else { vec![3, 10, 25] });
    let sim_sizes = args.sim_nodes.unwrap_or_else(|| {
        if args.quick {
            vec![100]
        } else {
            vec![100, 1000]
        }
    });
    let idle = Duration::from_secs_f64(
        args.idle_secs
            .unwrap_or(if args.quick { 3.0 } else { 60.0 })
            .max(0.0),
    );
    // Debug builds of 25 processes on two shared cores start slowly.
    let limit = Duration::from_secs(120);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ClusterBenchError::Runtime)?;
    runtime.block_on(async move {
        child::kill_children_on_ctrl_c();
        let steps = (process_sizes.len() + sim_sizes.len()) as u64;
        let mut reporter = Reporter::new(COLUMNS, args.csv.as_deref(), steps)?;
        for &n in process_sizes.iter().filter(|&&n| n > 0) {
            reporter
                .progress()
                .set_message(format!("processes N={n} (idle {idle:?})"));
            let result = processes::measure(n, args.transport, idle, limit).await?;
            reporter.emit(&process_row(&result, args.transport))?;
            reporter.progress().inc(1);
        }
        for &n in sim_sizes.iter().filter(|&&n| n > 0) {
            reporter.progress().set_message(format!("simulation N={n}"));
            // `sim::run` blocks; it runs its own paused-clock runtime on a thread.
            let report =
                tokio::task::spawn_blocking(move || granary_cluster::sim::run(SimConfig::new(n)))
                    .await
                    .map_err(|_| ClusterBenchError::Sim(SimError::Panicked))??;
            reporter.emit(&sim_row(&report))?;
            reporter.progress().inc(1);
        }
        reporter.finish();
        Ok(())
    })
}
