//! The `pingpong` scenario (seed 000 §3.3.1–2): ping actors each bounce a ball
//! with their own pong actor across three node processes on 127.0.0.1.
//!
//! - `distributed`: ping actors on node A, pong actors on node B, placed
//!   explicitly as plain granary actors and reached through remote refs;
//! - `virtual`: both kinds hosted on every node; the framework places them.
//!
//! `--messages` is the number of round trips of a run, shared out among the ping
//! actors (the paper sent 7,500 pings per run). Each run first plays a short
//! warm-up rally with the same actors (connections, activations), then the measured
//! one; `msgs_per_sec` is round trips per second of the measured rally and the
//! latencies are per round trip.

pub(crate) mod actors;
pub(crate) mod drive;

use clap::Args;

use crate::suite_node::harness::{SuiteCluster, SuiteError};
use crate::suite_node::protocol::Command;
use crate::suite_node::rows::{runtime, sweep_reporter, Sweep, SweepArgs, SweepRow};
use crate::suite_node::{Mode, RUN_LIMIT};

/// Options of `granary-bench pingpong`.
#[derive(Debug, Args)]
pub(crate) struct PingpongArgs {
    /// Modes, actors, payloads, `--quick` and `--csv`.
    #[command(flatten)]
    sweep: SweepArgs,
    /// Round trips per run, shared out among the ping actors (paper: 7500;
    /// `--quick`: 300).
    #[arg(long)]
    messages: Option<u32>,
}

/// Runs `granary-bench pingpong`.
pub(crate) fn run(args: PingpongArgs) -> Result<(), SuiteError> {
    let Sweep {
        modes,
        actors,
        payloads,
    } = args.sweep.sweep();
    let messages = args
        .messages
        .unwrap_or(if args.sweep.quick { 300 } else { 7500 });
    if actors.contains(&0) {
        return Err(SuiteError::Usage("--actors must be at least 1".into()));
    }
    runtime()?.block_on(async move {
        let steps = (modes.len() * actors.len() * payloads.len()) as u64;
        let mut reporter = sweep_reporter(args.sweep.csv.as_deref(), steps)?;
        let mut run = 0u64;
        for &mode in &modes {
            reporter.progress().set_message(format!(
                "pingpong {}: starting 3 node processes",
                mode.name()
            ));
            let mut cluster = SuiteCluster::start(mode, 3, "memory:").await?;
            for &n in &actors {
                for &payload in &payloads {
                    run += 1;
                    reporter.progress().set_message(format!(
                        "pingpong {} actors={n} payload={payload}",
                        mode.name()
                    ));
                    let rounds = (messages / n).max(1);
                    let pong_node = match mode {
                        Mode::Distributed => {
                            let ping_node = cluster.addrs()[0];
                            cluster
                                .request(
                                    1,
                                    Command::PingpongPongs {
                                        run,
                                        actors: n,
                                        ping_node,
                                    },
                                    RUN_LIMIT,
                                )
                                .await?;
                            Some(cluster.addrs()[1])
                        }
                        Mode::Virtual => None,
                    };
                    let command = Command::PingpongRun {
                        run,
                        actors: n,
                        payload,
                        rounds,
                        pong_node,
                    };
                    let measured = cluster.request(0, command, RUN_LIMIT * 2).await?;
                    let expected = u64::from(rounds) * u64::from(n);
                    if measured.messages != expected {
                        return Err(SuiteError::Check(format!(
                            "pingpong {} actors={n}: {} of {expected} round trips completed",
                            mode.name(),
                            measured.messages
                        )));
                    }
                    reporter.emit(&SweepRow::new("pingpong", mode, n, payload, &measured))?;
                    reporter.progress().inc(1);
                }
            }
        }
        reporter.finish();
        Ok(())
    })
}
