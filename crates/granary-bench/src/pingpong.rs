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

use crate::suite_node::harness::SuiteError;
use crate::suite_node::protocol::Command;
use crate::suite_node::rows::SweepArgs;
use crate::suite_node::sweep::{run_sweep, Point, PointSpec, Scenario};
use crate::suite_node::Mode;

/// Options of `granary-bench pingpong`.
#[derive(Debug, Args)]
pub(crate) struct PingpongArgs {
    /// Modes, placements, actors, payloads, `--quick`, `--csv` and `--plot`.
    #[command(flatten)]
    sweep: SweepArgs,
    /// Round trips per run, shared out among the ping actors (paper: 7500;
    /// `--quick`: 300).
    #[arg(long)]
    messages: Option<u32>,
}

/// Runs `granary-bench pingpong`.
pub(crate) fn run(args: PingpongArgs) -> Result<(), SuiteError> {
    let messages = args
        .messages
        .unwrap_or(if args.sweep.quick { 300 } else { 7500 });
    if args.sweep.sweep().actors.contains(&0) {
        return Err(SuiteError::Usage("--actors must be at least 1".into()));
    }
    let plan = |p: PointSpec<'_>| {
        let rounds = (messages / p.actors).max(1);
        let (setup, pong_node) = match p.mode {
            Mode::Distributed => (
                vec![(
                    1,
                    Command::PingpongPongs {
                        run: p.run,
                        actors: p.actors,
                        ping_node: p.nodes[0],
                    },
                )],
                Some(p.nodes[1]),
            ),
            Mode::Virtual => (Vec::new(), None),
        };
        Point {
            setup,
            run: Command::PingpongRun {
                run: p.run,
                actors: p.actors,
                payload: p.payload,
                rounds,
                pong_node,
            },
            expected: u64::from(rounds) * u64::from(p.actors),
        }
    };
    let scenario = Scenario {
        name: "pingpong",
        counted: "round trips completed",
        plan,
    };
    run_sweep(scenario, &args.sweep)
}
