//! The `sort` scenario (seed 000 §3.3.3–4): divide-and-conquer merge sort by
//! actors that create new actors for every half, on three node processes on
//! 127.0.0.1. It measures the cost of creating (activating) actors.
//!
//! - `distributed`: each node's sort actors create their children explicitly on the
//!   two other nodes (through each node's spawner), as plain granary actors;
//! - `virtual`: children are fresh identities of one virtual kind hosted on every
//!   node; the framework places them.
//!
//! Each cluster first sorts a short list unmeasured (connections, first
//! activations). Then a row per list length: `seconds` is the time of one whole
//! sort (the mean of `--repeat` sorts of fresh random lists), `messages` the sort
//! actors created per sort, `msgs_per_sec` actors created per second. Every sorted
//! list is checked against a local sort. `--placement` picks how the virtual mode
//! places the fresh identities; each placement is a virtual run of its own.

pub(crate) mod actors;

use std::path::PathBuf;

use clap::Args;

use crate::suite_node::harness::{SuiteCluster, SuiteError};
use crate::suite_node::protocol::{Command, Measured};
use crate::suite_node::rows::{runtime, sweep_reporter, PlacementArgs, SweepRow};
use crate::suite_node::sweep::draw;
use crate::suite_node::{Mode, RUN_LIMIT};

/// The length of the unmeasured warm-up sort each cluster starts with.
const WARMUP_LEN: usize = 500;

/// Options of `granary-bench sort`.
#[derive(Debug, Args)]
pub(crate) struct SortArgs {
    /// Placement modes to run, comma-separated (default both).
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Option<Vec<Mode>>,
    /// Virtual mode: placements of the sort actors.
    #[command(flatten)]
    placement: PlacementArgs,
    /// List lengths, comma-separated (paper: 1000,2000,4000,8000,12000; `--quick`: 1000).
    #[arg(long, value_delimiter = ',')]
    len: Option<Vec<usize>>,
    /// Sorts per list length; the row has the mean time of one sort (default 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Small sizes, for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw PNG charts of the rows into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Runs `granary-bench sort`.
pub(crate) fn run(args: SortArgs) -> Result<(), SuiteError> {
    let modes = args
        .mode
        .unwrap_or_else(|| vec![Mode::Distributed, Mode::Virtual]);
    let lens = args.len.unwrap_or_else(|| {
        if args.quick {
            vec![1000]
        } else {
            vec![1000, 2000, 4000, 8000, 12000]
        }
    });
    let clusters = args.placement.clusters(&modes);
    let rows = runtime()?.block_on(async {
        let steps = (clusters.len() * lens.len()) as u64;
        let mut reporter = sweep_reporter(args.csv.as_deref(), steps)?;
        let mut run = 0u64;
        for &(mode, placement) in &clusters {
            reporter
                .progress()
                .set_message(format!("sort {}: starting 3 node processes", mode.name()));
            let mut cluster = SuiteCluster::start_placed(mode, 3, "memory:", placement).await?;
            let nodes = (mode == Mode::Distributed).then(|| cluster.addrs().to_vec());
            // One unmeasured sort first: connections, caches, the first activations.
            run += 1;
            let warmup = Command::SortRun {
                run,
                len: WARMUP_LEN,
                nodes: nodes.clone(),
            };
            cluster.request(0, warmup, RUN_LIMIT * 2).await?;
            for &len in &lens {
                reporter
                    .progress()
                    .set_message(format!("sort {} len={len}", mode.name()));
                let mut total = Measured::default();
                for _ in 0..args.repeat {
                    run += 1;
                    let command = Command::SortRun {
                        run,
                        len,
                        nodes: nodes.clone(),
                    };
                    let measured = cluster.request(0, command, RUN_LIMIT * 2).await?;
                    total.messages = measured.messages;
                    total.seconds += measured.seconds;
                }
                total.seconds /= f64::from(args.repeat);
                let actors = total.messages as u32;
                let row = SweepRow::new("sort", (mode, placement), actors, 0, &total)
                    .with_list_len(len)
                    .with_repeats(args.repeat);
                reporter.emit(&row)?;
                reporter.progress().inc(1);
            }
        }
        Ok::<_, SuiteError>(reporter.finish_rows())
    })?;
    draw("sort", &rows, args.plot.as_deref())
}
