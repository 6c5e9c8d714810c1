//! The hidden `node` subcommand: one node process of the virtual-actor suite
//! (`pingpong`, `sort`, `big`, `failover`), and the harness side that starts three
//! of them ([`harness::SuiteCluster`]).
//!
//! The harness runs this same binary as its node processes, so every node has
//! every scenario's actors and message types. A node starts in one mode:
//! - `distributed`: a plain `granary-remote` node; the scenarios spawn ordinary
//!   actors on the nodes the harness names and reach them through remote refs;
//! - `virtual`: a `granary-virtual` [`Node`] hosting every suite kind; the framework
//!   places the actors.
//!
//! It prints `listening ADDR`, then serves the harness's [`protocol::Request`]s
//! (one JSON line each on stdin) and answers each with a `reply` line. It exits
//! when stdin closes (a virtual node shuts down gracefully first), which also
//! covers a harness killed with SIGKILL.

pub(crate) mod collect;
pub(crate) mod drive;
pub(crate) mod harness;
pub(crate) mod protocol;
pub(crate) mod rows;
pub(crate) mod sweep;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use granary::prelude::*;
use granary::virtual_actors::Node;
use granary_remote::{RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::latency::Latencies;
use protocol::{reply_line, Command, Measured, Reply, Request};

/// Cluster name and secret of every suite node (and of the `failover` client).
pub(crate) const CLUSTER: &str = "granary-bench-suite";
/// See [`CLUSTER`].
pub(crate) const SECRET: &[u8] = b"granary-bench-suite-secret";

/// The longest one measured command may take before the node gives up on it.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(300);

/// How the actors of a scenario are placed (seed 000 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Plain actors spawned explicitly on chosen nodes, reached by remote refs.
    Distributed,
    /// Virtual actor kinds hosted on every node; the framework places them.
    Virtual,
}

impl Mode {
    /// The name in result rows and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Distributed => "distributed",
            Mode::Virtual => "virtual",
        }
    }
}

/// How a virtual node places new activations of the suite's scenario kinds
/// (`pingpong`, `sort`, `big`); the collector stays `PreferLocal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PlacementArg {
    /// A random Up member hosting the kind (Orleans' default, the paper's setting).
    #[default]
    Random,
    /// Members in turn, per directory owner (Proto.Actor's default).
    RoundRobin,
    /// The node whose call caused the activation.
    PreferLocal,
    /// The identity's directory owner: the lookup and the activation are one hop.
    Hash,
    /// The less loaded of two random members.
    LeastLoaded,
}

impl PlacementArg {
    /// The name in result rows and on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PlacementArg::Random => "random",
            PlacementArg::RoundRobin => "round-robin",
            PlacementArg::PreferLocal => "prefer-local",
            PlacementArg::Hash => "hash",
            PlacementArg::LeastLoaded => "least-loaded",
        }
    }

    /// granary-virtual's placement of this name.
    pub(crate) fn placement(self) -> Placement {
        match self {
            PlacementArg::Random => Placement::Random,
            PlacementArg::RoundRobin => Placement::RoundRobin,
            PlacementArg::PreferLocal => Placement::PreferLocal,
            PlacementArg::Hash => Placement::Hash,
            PlacementArg::LeastLoaded => Placement::LeastLoaded,
        }
    }
}

/// Options of the hidden `node` subcommand.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// How actors are placed.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Virtual mode: a member to join through (none forms a new cluster).
    #[arg(long)]
    seed: Option<SocketAddr>,
    /// Virtual mode: the state store URL (`memory:` unless a scenario keeps state).
    #[arg(long, default_value = "memory:")]
    store: String,
    /// Virtual mode: directory of the node's own files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Virtual mode: placement of the `pingpong`, `sort` and `big` kinds.
    #[arg(long, value_enum, default_value_t = PlacementArg::Random)]
    placement: PlacementArg,
}

/// Why a node process could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    /// The async runtime could not be built.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// The node could not start.
    #[error("cannot start the node: {0}")]
    Start(String),
}

/// What a node process serves with.
enum Host {
    Distributed(RemoteNode),
    Virtual(Node),
}

/// Runs `granary-bench node`.
pub(crate) fn run_node(args: NodeArgs) -> Result<(), NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    runtime.block_on(async move {
        let host = match args.mode {
            Mode::Distributed => {
                let config =
                    TransportConfig::new(CLUSTER, SECRET.to_vec()).with_listen(args.listen);
                let remote = RemoteNode::start(ActorSystem::new(), config)
                    .await
                    .map_err(|e| NodeError::Start(e.to_string()))?;
                crate::sort::actors::expose_spawner(&remote).map_err(NodeError::Start)?;
                Host::Distributed(remote)
            }
            Mode::Virtual => Host::Virtual(start_virtual(&args).await?),
        };
        let addr = match &host {
            Host::Distributed(remote) => remote.local_addr(),
            Host::Virtual(node) => node.addr(),
        };
        println!("listening {addr}");
        let host = Arc::new(host);
        let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
        // A plain thread: stdin is blocking; the channel closes with stdin.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = lines.recv().await {
            let host = host.clone();
            // Each request on its own task: a long run must not block the next one.
            tokio::spawn(async move {
                let (id, reply) = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => (request.id, serve(&host, request.command).await),
                    Err(e) => (0, Err(format!("bad request `{line}`: {e}"))),
                };
                println!("{}", reply_line(id, &reply));
            });
        }
        if let Ok(Host::Virtual(node)) = Arc::try_unwrap(host) {
            node.shutdown().await;
        }
        Ok(())
    })
}

async fn start_virtual(args: &NodeArgs) -> Result<Node, NodeError> {
    let mut builder = Node::builder()
        .bind(args.listen)
        .seeds(args.seed)
        .store(args.store.clone())
        .cluster_secret(CLUSTER, SECRET.to_vec())
        // A sort of 12,000 numbers asks through thousands of fresh actors.
        .ask_timeout(Duration::from_secs(60))
        .host(collect::collector_kind());
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    let placement = args.placement.placement();
    builder = crate::pingpong::actors::kinds(builder, &placement);
    builder = crate::sort::actors::kinds(builder, &placement);
    builder = crate::big::actors::kinds(builder, &placement);
    builder = crate::failover::counter::kinds(builder);
    builder
        .start()
        .await
        .map_err(|e| NodeError::Start(e.to_string()))
}

async fn serve(host: &Host, command: Command) -> Reply {
    match (host, command) {
        (Host::Virtual(node), Command::AwaitMembers { members }) => {
            await_members(node, members).await
        }
        (
            Host::Distributed(remote),
            Command::PingpongPongs {
                run,
                actors,
                ping_node,
            },
        ) => crate::pingpong::drive::spawn_pongs(remote, run, actors, ping_node)
            .map(|()| Measured::default()),
        (
            Host::Distributed(remote),
            Command::PingpongRun {
                run,
                actors,
                payload,
                rounds,
                pong_node: Some(pong_node),
            },
        ) => {
            crate::pingpong::drive::run_distributed(remote, run, actors, payload, rounds, pong_node)
                .await
        }
        (
            Host::Virtual(node),
            Command::PingpongRun {
                run,
                actors,
                payload,
                rounds,
                pong_node: None,
            },
        ) => crate::pingpong::drive::run_virtual(node, run, actors, payload, rounds).await,
        (
            Host::Distributed(remote),
            Command::SortRun {
                run,
                len,
                nodes: Some(nodes),
            },
        ) => crate::sort::actors::run_distributed(remote, run, len, &nodes).await,
        (
            Host::Virtual(node),
            Command::SortRun {
                run,
                len,
                nodes: None,
            },
        ) => crate::sort::actors::run_virtual(node, run, len).await,
        (Host::Distributed(remote), Command::BigSpawn { run, actors, nodes }) => {
            crate::big::drive::spawn(remote, run, actors, &nodes).map(|()| Measured::default())
        }
        (
            Host::Distributed(remote),
            Command::BigRun {
                run,
                actors,
                payload,
                rounds,
                nodes: Some(nodes),
            },
        ) => crate::big::drive::run_distributed(remote, run, actors, payload, rounds, &nodes).await,
        (
            Host::Virtual(node),
            Command::BigRun {
                run,
                actors,
                payload,
                rounds,
                nodes: None,
            },
        ) => crate::big::drive::run_virtual(node, run, actors, payload, rounds).await,
        (_, command) => Err(format!("this node's mode cannot serve {command:?}")),
    }
}

/// Waits (polling membership with a deadline) until `node` sees `members` Up.
async fn await_members(node: &Node, members: usize) -> Reply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let up = node
            .cluster()
            .members()
            .iter()
            .filter(|m| m.status == granary_cluster::MemberStatus::Up)
            .count();
        if up >= members {
            return Ok(Measured::default());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("only {up} of {members} members Up after 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails a run that takes longer than [`RUN_LIMIT`].
pub(crate) async fn within_run_limit<T>(
    work: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(RUN_LIMIT, work)
        .await
        .map_err(|_| format!("the run took longer than {RUN_LIMIT:?}"))
}

/// The measured figures of a run with these round-trip latencies.
pub(crate) fn measured(latencies_us: Vec<u32>, seconds: f64) -> Measured {
    let latency_us = Latencies::new(Duration::from_secs(600))
        .ok()
        .filter(|_| !latencies_us.is_empty())
        .map(|mut record| {
            for micros in &latencies_us {
                record.record(Duration::from_micros(u64::from(*micros)));
            }
            record.summary_us()
        });
    Measured {
        messages: latencies_us.len() as u64,
        seconds,
        latency_us,
    }
}
