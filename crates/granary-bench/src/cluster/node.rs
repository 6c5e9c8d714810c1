//! The hidden `cluster-node` subcommand: one cluster member of the `cluster` scenario.
//!
//! Protocol with the parent (lines on stdout, times in microseconds since the Unix
//! epoch so the parent can compare them with its own clock on the same machine):
//! - `starting T` just before `Cluster::start`;
//! - `up T ADDR` once the node is Up (`ADDR` is its listen address);
//! - `member T STATUS ADDR` for every member of the first snapshot and for every
//!   change after it (`STATUS` is `Joining`, `Up`, `Down`, ...);
//! - `stats SENT_BYTES SENT_MESSAGES` in answer to `stats` on stdin.
//!
//! The node runs with default cluster settings (the bar is "with default settings") on
//! the chosen transport (`--transport tcp|remote`) and exits when its stdin closes.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use granary::core::ActorSystem;
use granary_cluster::transport::remote::RemoteClusterTransport;
use granary_cluster::transport::tcp::TcpClusterTransport;
use granary_cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterTransport, Member};
use granary_remote::RemoteNode;
use tokio::sync::mpsc;

use super::{transport_config, ClusterBenchError, NodeTransport};

/// Options of the hidden `cluster-node` subcommand.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long)]
    listen: SocketAddr,
    /// Seed node to join through; none forms a new cluster.
    #[arg(long)]
    seed: Option<SocketAddr>,
    /// What to run the cluster on.
    #[arg(long, value_enum, default_value_t = NodeTransport::Tcp)]
    transport: NodeTransport,
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn print_member(member: &Member) {
    println!(
        "member {} {:?} {}",
        now_micros(),
        member.status,
        member.id.addr
    );
}

fn node_error(error: impl std::fmt::Display) -> ClusterBenchError {
    ClusterBenchError::Node(error.to_string())
}

/// Starts the cluster on `transport` with default settings.
async fn start<T: ClusterTransport>(
    transport: T,
    seeds: Vec<SocketAddr>,
) -> Result<Cluster, ClusterBenchError> {
    Cluster::start_with_seeds(ClusterConfig::default(), transport, seeds)
        .await
        .map_err(node_error)
}

/// Runs `granary-bench cluster-node`.
pub(crate) fn run_node(args: NodeArgs) -> Result<(), ClusterBenchError> {
    // One thread: up to 25 of these share two cores, and the protocol is light.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterBenchError::Runtime)?;
    runtime.block_on(async {
        println!("starting {}", now_micros());
        let seeds: Vec<SocketAddr> = args.seed.into_iter().collect();
        let (cluster, traffic, _remote) = match args.transport {
            NodeTransport::Tcp => {
                let transport = TcpClusterTransport::bind(transport_config(args.listen))
                    .await
                    .map_err(node_error)?;
                let traffic = transport.traffic();
                (start(transport, seeds).await?, traffic, None)
            }
            NodeTransport::Remote => {
                let node = RemoteNode::start(ActorSystem::new(), transport_config(args.listen))
                    .await
                    .map_err(node_error)?;
                let transport = RemoteClusterTransport::start(&node).map_err(node_error)?;
                let traffic = transport.traffic();
                (start(transport, seeds).await?, traffic, Some(node))
            }
        };
        let addr = cluster.local_id().addr;
        println!("up {} {addr}", now_micros());
        let mut events = cluster.subscribe();
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
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(ClusterEvent::Snapshot(snapshot)) => {
                        snapshot.members.iter().for_each(print_member);
                    }
                    Some(ClusterEvent::Change { event, .. }) => print_member(event.member()),
                    None => break,
                },
                line = stdin_rx.recv() => match line.as_deref() {
                    Some("stats") => {
                        let stats = traffic.snapshot();
                        println!("stats {} {}", stats.sent_bytes, stats.sent_messages);
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        cluster.stop().await;
        Ok(())
    })
}
