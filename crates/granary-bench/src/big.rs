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
//! (sender, receiver) pairs and rounded up, at least one each (the paper sent 5,000
//! pings per run). Without `--quick` the sweep is the paper's: 3, 6, 12, 24 actors
//! and the 48 and 64 the paper attempted (its cluster could not finish them), each
//! with 0, 512, 1,024 and 2,048-byte payloads; `--plot DIR` charts throughput vs
//! actors per payload. A warm-up round (one ping to every peer) runs first with the
//! same actors; `msgs_per_sec` is answered pings per second of the
//! measured run and the latencies are per ping-pong round trip.

pub(crate) mod actors;
pub(crate) mod drive;

use clap::Args;

use crate::suite_node::harness::SuiteError;
use crate::suite_node::protocol::Command;
use crate::suite_node::rows::SweepArgs;
use crate::suite_node::sweep::{run_sweep, Point, PointSpec, Scenario};
use crate::suite_node::Mode;

/// Options of `granary-bench big`.
#[derive(Debug, Args)]
pub(crate) struct BigArgs {
    /// Modes, placements, actors, payloads, `--quick`, `--csv` and `--plot`.
    #[command(flatten)]
    sweep: SweepArgs,
    /// Pings per run, shared out alike among all actor pairs and rounded up, at
    /// least one each (paper: 5000; `--quick`: 300).
    #[arg(long)]
    messages: Option<u32>,
}

/// Runs `granary-bench big`.
pub(crate) fn run(args: BigArgs) -> Result<(), SuiteError> {
    let messages = args
        .messages
        .unwrap_or(if args.sweep.quick { 300 } else { 5000 });
    if args.sweep.sweep().actors.iter().any(|&n| n < 2) {
        return Err(SuiteError::Usage("big needs --actors of at least 2".into()));
    }
    let plan = |p: PointSpec<'_>| {
        let n = p.actors;
        // Every actor pings every other one alike, at least once, and the run
        // has at least `messages` pings.
        let per_peer = messages.div_ceil(n * (n - 1)).max(1);
        let (setup, nodes) = match p.mode {
            Mode::Distributed => {
                let spawn = |index| {
                    let command = Command::BigSpawn {
                        run: p.run,
                        actors: n,
                        nodes: p.nodes.to_vec(),
                    };
                    (index, command)
                };
                (
                    (0..p.nodes.len()).map(spawn).collect(),
                    Some(p.nodes.to_vec()),
                )
            }
            Mode::Virtual => (Vec::new(), None),
        };
        Point {
            setup,
            run: Command::BigRun {
                run: p.run,
                actors: n,
                payload: p.payload,
                rounds: per_peer,
                nodes,
            },
            expected: u64::from(per_peer) * u64::from(n) * u64::from(n - 1),
        }
    };
    let scenario = Scenario {
        name: "big",
        counted: "pings answered",
        plan,
    };
    run_sweep(scenario, &args.sweep)
}
