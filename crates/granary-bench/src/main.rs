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

mod child_process;
mod cluster;
mod latency;
mod local;
mod remote;
mod report;
mod selection;
mod storage;

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
    /// Cluster membership: node processes on 127.0.0.x (join, kill -9, false Downs,
    /// gossip bytes) and the one-process simulation at N = 100 and 1,000.
    Cluster(cluster::ClusterArgs),
    /// Internal: one node process of `cluster`.
    #[command(hide = true)]
    ClusterNode(cluster::NodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Local(args) => local::run(args).map_err(Into::into),
        Command::LocalChild(args) => local::run_child(args).map_err(Into::into),
        Command::Storage(args) => storage::run(args).map_err(Into::into),
        Command::Remote(args) => remote::run(args).map_err(Into::into),
        Command::RemoteNode(args) => remote::run_node(args).map_err(Into::into),
        Command::Cluster(args) => cluster::run(args).map_err(Into::into),
        Command::ClusterNode(args) => cluster::run_node(args).map_err(Into::into),
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
