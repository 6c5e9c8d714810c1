//! granary-bench: the benchmark binary of granary.
//!
//! Every scenario of `/docs/BENCHMARKS.md` is one subcommand of this binary, so
//! anyone can rerun the numbers with one documented command, for example
//! `cargo run --release -p granary-bench -- local`.
//!
//! What it is for: measuring granary against itself over time and against the Rust
//! actor crates people use today (ractor, actix, kameo). It sits on top of the
//! `granary` facade crate and uses only its public API; it must not reach into the
//! internals of any granary crate, so what it measures is what users get.
//!
//! Output contract (shared by all scenarios, see [`report`]): one JSON object per
//! measured configuration on stdout, one per line; a readable table and a progress
//! bar on stderr; `--csv FILE` appends the same rows as CSV.
//!
//! Adding a scenario: write a module (`src/foo.rs` + `src/foo/*.rs`), add one
//! variant to [`Command`] and one arm to the `match` in `main`.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod big;
mod chaos;
mod child_process;
mod cluster;
mod counter;
mod crdt;
mod echo;
mod failover;
mod iot;
mod kvs;
mod latency;
mod local;
mod observe;
mod overlay;
mod pingpong;
mod plot;
mod remote;
mod report;
mod seconds;
mod selection;
mod sort;
mod storage;
mod suite_node;
mod suite_report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The command line: one subcommand per scenario.
#[derive(Debug, Parser)]
#[command(name = "granary-bench", version, about = "granary benchmark suite")]
struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    command: Command,
}

/// The scenarios. Add a variant here and an arm in `main` for a new scenario.
#[derive(Debug, Subcommand)]
enum Command {
    /// In-process baselines: granary against ractor, actix and kameo
    /// (tell, pingpong, fanin, spawn).
    Local(local::LocalArgs),
    /// Internal: one `local` measurement in a fresh process, so no framework
    /// inherits another's allocator state (see `local`).
    #[command(hide = true)]
    LocalChild(local::ChildArgs),
    /// StateStore providers: read-modify-write throughput and latency
    /// (`--store URL`, repeatable, or `--store all`).
    Storage(storage::StorageArgs),
    /// Two processes on 127.0.0.1: granary remote pingpong, oneway and pairs
    /// against raw TCP and Distributed Erlang.
    Remote(remote::RemoteArgs),
    /// Internal: the peer process of `remote`.
    #[command(hide = true)]
    RemoteNode(remote::NodeArgs),
    /// Internal: one `remote --observe` measurement (granary `oneway`) in a fresh
    /// driver process against a fresh peer process.
    #[command(hide = true)]
    RemoteChild(remote::ChildArgs),
    /// Cluster membership: node processes on 127.0.0.x (join, kill -9, false Downs,
    /// gossip bytes) and the one-process simulation at N = 100 and 1,000.
    Cluster(cluster::ClusterArgs),
    /// Internal: one node process of `cluster`.
    #[command(hide = true)]
    ClusterNode(cluster::NodeArgs),
    /// Ping actors bouncing a ball with pong actors on 3 node processes,
    /// `--mode distributed|virtual` (seed 000 §3.3.1–2).
    Pingpong(pingpong::PingpongArgs),
    /// Divide-and-conquer merge sort by actors creating actors on 3 node processes,
    /// `--mode distributed|virtual` (seed 000 §3.3.3–4).
    Sort(sort::SortArgs),
    /// Many-to-many pings among N actors on 3 node processes,
    /// `--mode distributed|virtual` (seed 000 §3.3.5–6).
    Big(big::BigArgs),
    /// Persisted virtual counters under load while a node is killed with `kill -9`
    /// and restarted: lost increments, duplicate activations, recovery time.
    Failover(failover::FailoverArgs),
    /// Internal: one node process of `pingpong`, `sort`, `big` and `failover`.
    #[command(hide = true)]
    Node(suite_node::NodeArgs),
    /// Request/response echo across 3 node processes with Partisan's options
    /// (parallelism, named channels, affinity) on and off, simulated RTT, background
    /// gossip (seed 002 §6.2.2).
    Echo(echo::WorkloadArgs),
    /// Quorum key-value store (3 replicas, answer after 2, last writer wins) on the
    /// same 3 node processes and options as `echo` (seed 002 §6.2.3).
    Kvs(echo::WorkloadArgs),
    /// Internal: one node process of `echo` and `kvs`.
    #[command(hide = true)]
    EchoNode(echo::NodeArgs),
    /// Serverless counter: a virtual actor vs a stateless function on the same store
    /// (seed 001 §5).
    Counter(counter::CounterArgs),
    /// External devices report to servers (1,000 i64 per report), with message drops
    /// and client/server kills by MTTF (seed 003 §5.3–5.4).
    Iot(iot::IotArgs),
    /// Internal: one server or client process of `iot`.
    #[command(hide = true)]
    IotNode(iot::NodeArgs),
    /// Delta-state vs full-state gossip of a replicated ORSet: bytes sent by 5 nodes
    /// for 10,000 operations on 10,000 elements (seed 003 §2.9).
    Crdt(crdt::CrdtArgs),
    /// Multi-host chaos runs on network namespaces (kill -9 + restart, partitions,
    /// cuts, pauses) with the history checker: lost writes, duplicates, stale reads,
    /// double activations, recovery times. Needs root.
    Chaos(chaos::ChaosArgs),
    /// Lasp's advertisement counter on the client-server and peer-to-peer overlays
    /// (HyParView + Plumtree) at 32 to 1,024 nodes on real sockets: bytes, connections,
    /// time to reach every node, reach after kills (seed 002 §6.3).
    Overlay(overlay::OverlayArgs),
    /// PNG charts from saved JSON rows (`--rows FILE.jsonl --out DIR`).
    Plot(plot::PlotArgs),
    /// Short sweep of every scenario in this build; writes README.md, rows and charts.
    Report(suite_report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Local(args) => local::run(args).map_err(Into::into),
        Command::LocalChild(args) => local::run_child(args).map_err(Into::into),
        Command::Storage(args) => storage::run(args).map_err(Into::into),
        Command::Remote(args) => remote::run(args).map_err(Into::into),
        Command::RemoteNode(args) => remote::run_node(args).map_err(Into::into),
        Command::RemoteChild(args) => remote::run_child(args).map_err(Into::into),
        Command::Cluster(args) => cluster::run(args).map_err(Into::into),
        Command::Iot(args) => iot::run(args).map_err(Into::into),
        Command::IotNode(args) => iot::run_node(args).map_err(Into::into),
        Command::ClusterNode(args) => cluster::run_node(args).map_err(Into::into),
        Command::Pingpong(args) => pingpong::run(args).map_err(Into::into),
        Command::Sort(args) => sort::run(args).map_err(Into::into),
        Command::Big(args) => big::run(args).map_err(Into::into),
        Command::Failover(args) => failover::run(args).map_err(Into::into),
        Command::Node(args) => suite_node::run_node(args).map_err(Into::into),
        Command::Echo(args) => echo::run(args).map_err(Into::into),
        Command::Kvs(args) => kvs::run(args).map_err(Into::into),
        Command::EchoNode(args) => echo::run_node(args).map_err(Into::into),
        Command::Counter(args) => counter::run(args).map_err(Into::into),
        Command::Crdt(args) => crdt::run(args).map_err(Into::into),
        Command::Chaos(args) => chaos::run(args).map_err(Into::into),
        Command::Overlay(args) => overlay::run(args).map_err(Into::into),
        Command::Plot(args) => plot::run(args).map_err(Into::into),
        Command::Report(args) => {
            let scenarios = <Cli as clap::CommandFactory>::command()
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name().to_string())
                .collect::<Vec<_>>();
            suite_report::run(args, &scenarios).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("granary-bench: error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
