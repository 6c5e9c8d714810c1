//! The hidden `remote-node` subcommand: the peer side of the `remote` scenario.
//!
//! Protocol with the parent (lines): the node prints `listening ADDR` once it
//! serves; `expect N` on stdin sets how many one-way messages the receiver counts
//! before it prints `done` (answered with `ready`); when stdin closes (the parent
//! went away, however it ended) the process exits.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Args;

use super::{granary, ractor_remote, raw, std_tcp, Framework, RemoteError};

/// Options of the hidden `remote-node` subcommand.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// What to serve: `granary`, `raw-tcp`, `std-tcp` or `ractor_cluster`.
    #[arg(long)]
    framework: Framework,
    /// granary: parallel data connections per peer.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// granary: choose the connection by (sender, recipient).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    affinity: bool,
    /// granary: large frames on a separate per-peer bulk lane.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    bulk_lane: bool,
    /// granary: echo actors exposed as `echo-0` ... for `pairs`.
    #[arg(long, default_value_t = 64)]
    pairs: usize,
    /// granary: metrics and tracing on ([`crate::observe`]).
    #[arg(long)]
    observe: bool,
    /// granary: the highest protocol version offered (4: postcard bodies).
    #[arg(long, default_value_t = granary_remote::wire::PROTOCOL_VERSION)]
    max_protocol: u8,
    /// Serve on a tokio current-thread runtime (granary, `raw-tcp`, `ractor_cluster`).
    #[arg(long)]
    current_thread: bool,
}

/// The runtime of a process of the `remote` scenario: multi-thread with 2
/// workers, or everything on the calling thread.
pub(crate) fn runtime(current_thread: bool) -> Result<tokio::runtime::Runtime, RemoteError> {
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    builder.enable_all().build().map_err(RemoteError::Runtime)
}

/// How many one-way messages the receiver waits for before it prints `done`.
#[derive(Debug, Default)]
pub(crate) struct Expected(AtomicU64);

impl Expected {
    /// The count set by the last `expect N`.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Transport settings of a granary node, the same on both sides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GranaryConfig {
    /// Data connections per peer.
    pub(crate) parallelism: usize,
    /// Affinity on or off.
    pub(crate) affinity: bool,
    /// Bulk lane on or off.
    pub(crate) bulk_lane: bool,
    /// The highest protocol version offered: 4 speaks postcard, 5 the versioned
    /// encoding.
    pub(crate) max_protocol: u8,
}

impl GranaryConfig {
    /// The arguments that start a peer with this configuration.
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--parallelism".into(),
            self.parallelism.to_string(),
            "--affinity".into(),
            self.affinity.to_string(),
            "--bulk-lane".into(),
            self.bulk_lane.to_string(),
            "--max-protocol".into(),
            self.max_protocol.to_string(),
        ]
    }
}

/// Runs `granary-bench remote-node`.
pub(crate) fn run_node(args: NodeArgs) -> Result<(), RemoteError> {
    if args.observe {
        crate::observe::install();
    }
    let runtime = runtime(args.current_thread)?;
    let expected = Arc::new(Expected::default());
    runtime.block_on(async {
        let config = GranaryConfig {
            parallelism: args.parallelism,
            affinity: args.affinity,
            bulk_lane: args.bulk_lane,
            max_protocol: args.max_protocol,
        };
        // Keep whatever serves alive until stdin closes (dropping it stops serving).
        let mut _granary = None;
        let mut _raw = None;
        let mut _ractor = None;
        match args.framework {
            Framework::Granary => {
                _granary = Some(granary::serve(config, args.pairs, expected.clone()).await?)
            }
            Framework::RawTcp => _raw = Some(raw::serve(expected.clone()).await?),
            Framework::StdTcp => std_tcp::serve(expected.clone())?,
            Framework::RactorCluster => {
                _ractor = Some(ractor_remote::serve(expected.clone()).await?)
            }
            Framework::Erlang => {
                return Err(RemoteError::Erlang(
                    "the Erlang peer is an `erl` node, not `remote-node`".into(),
                ))
            }
        }
        let commands = expected.clone();
        let stdin = tokio::task::spawn_blocking(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("expect ")
                    .and_then(|n| n.trim().parse().ok())
                {
                    commands.0.store(n, Ordering::Relaxed);
                    println!("ready");
                }
            }
        });
        let _ = stdin.await;
        Ok(())
    })
}
