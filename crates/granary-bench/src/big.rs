//! The `big` scenario (seed 000 §3.3.5–6): many-to-many pings among N actors on
//! three node processes on 127.0.0.1.
//!
//! - `distributed`: big actor `i` is spawned on node `i mod 3` explicitly, as a
//!   plain granary actor; the others reach it through remote refs (local refs on its
//!   own node);
//! - `virtual`: the big kind is hosted on every node; the framework places the
//!   actors.
//!
//! `--messages` is the number of pings of a run, shared out alike among all
//! (sender, receiver) pairs, at least one each (the paper sent 5,000 pings per
//! run). A warm-up round (one ping to every peer) runs
//! first with the same actors; `msgs_per_sec` is answered pings per second of the
//! measured run and the latencies are per ping-pong round trip.

pub(crate) mod actors;
pub(crate) mod drive;

use clap::Args;

use crate::suite_node::harness::{SuiteCluster, SuiteError};
use crate::suite_node::protocol::Command;
use crate::suite_node::rows::{runtime, sweep_reporter, Sweep, SweepArgs, SweepRow};
use crate::suite_node::{Mode, RUN_LIMIT};

/// Options of `granary-bench big`.
#[derive(Debug, Args)]
pub(crate) struct BigArgs {
    /// Modes, actors, payloads, `--quick` and `--csv`.
    #[command(flatten)]
    sweep: SweepArgs,
    /// Pings per run, shared out among all actor pairs, at least one each
    /// (paper: 5000; `--quick`: 300).
    #[arg(long)]
    messages: Option<u32>,
}

/// Runs `granary-bench big`.
pub(crate) fn run(args: BigArgs) -> Result<(), SuiteError> {
    let Sweep {
        modes,
        actors,
        payloads,
    } = args.sweep.sweep();
    let messages = args
        .messages
        .unwrap_or(if args.sweep.quick { 300 } else { 5000 });
    if actors.iter().any(|&n| n < 2) {
        return Err(SuiteError::Usage("big needs --actors of at least 2".into()));
    }
    runtime()?.block_on(async move {
        let steps = (modes.len() * actors.len() * payloads.len()) as u64;
        let mut reporter = sweep_reporter(args.sweep.csv.as_deref(), steps)?;
        let mut run = 0u64;
        for &mode in &modes {
            reporter
                .progress()
                .set_message(format!("big {}: starting 3 node processes", mode.name()));
            let mut cluster = SuiteCluster::start(mode, 3, "memory:").await?;
            for &n in &actors {
                for &payload in &payloads {
                    run += 1;
                    reporter
                        .progress()
                        .set_message(format!("big {} actors={n} payload={payload}", mode.name()));
                    // Every actor pings every other one alike, at least once.
                    let per_peer = (messages / (n * (n - 1))).max(1);
                    let nodes = match mode {
                        Mode::Distributed => {
                            let nodes = cluster.addrs().to_vec();
                            for index in 0..nodes.len() {
                                let spawn = Command::BigSpawn {
                                    run,
                                    actors: n,
                                    nodes: nodes.clone(),
                                };
                                cluster.request(index, spawn, RUN_LIMIT).await?;
                            }
                            Some(nodes)
                        }
                        Mode::Virtual => None,
                    };
                    let command = Command::BigRun {
                        run,
                        actors: n,
                        payload,
                        rounds: per_peer,
                        nodes,
                    };
                    let measured = cluster.request(0, command, RUN_LIMIT * 2).await?;
                    let expected = u64::from(per_peer) * u64::from(n) * u64::from(n - 1);
                    if measured.messages != expected {
                        return Err(SuiteError::Check(format!(
                            "big {} actors={n}: {} of {expected} pings answered",
                            mode.name(),
                            measured.messages
                        )));
                    }
                    reporter.emit(&SweepRow::new("big", mode, n, payload, &measured))?;
                    reporter.progress().inc(1);
                }
            }
        }
        reporter.finish();
        Ok(())
    })
}
