//! The `sort` scenario (seed 000 §3.3.3–4): divide-and-conquer merge sort by
//! actors that create new actors for every half, on three node processes on
//! 127.0.0.1. It measures the cost of creating (activating) actors.
//!
//! - `distributed`: each node's sort actors create their children explicitly on the
//!   two other nodes (through each node's spawner), as plain granary actors;
//! - `virtual`: children are fresh identities of one virtual kind hosted on every
//!   node; the framework places them.
//!
//! A row per list length: `seconds` is the time of the whole sort, `messages` the
//! sort actors created, `msgs_per_sec` actors created per second. The sorted list
//! is checked against a local sort.

pub(crate) mod actors;

use std::path::PathBuf;

use clap::Args;

use crate::suite_node::harness::{SuiteCluster, SuiteError};
use crate::suite_node::protocol::Command;
use crate::suite_node::rows::{runtime, sweep_reporter, SweepRow};
use crate::suite_node::{Mode, RUN_LIMIT};

/// Options of `granary-bench sort`.
#[derive(Debug, Args)]
pub(crate) struct SortArgs {
    /// Placement modes to run, comma-separated (default both).
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Option<Vec<Mode>>,
    /// List lengths, comma-separated (paper: 1000,2000,4000,8000,12000; `--quick`: 1000).
    #[arg(long, value_delimiter = ',')]
    len: Option<Vec<usize>>,
    /// Small sizes, for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
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
    runtime()?.block_on(async move {
        let steps = (modes.len() * lens.len()) as u64;
        let mut reporter = sweep_reporter(args.csv.as_deref(), steps)?;
        let mut run = 0u64;
        for &mode in &modes {
            reporter
                .progress()
                .set_message(format!("sort {}: starting 3 node processes", mode.name()));
            let mut cluster = SuiteCluster::start(mode, 3, "memory:").await?;
            for &len in &lens {
                run += 1;
                reporter
                    .progress()
                    .set_message(format!("sort {} len={len}", mode.name()));
                let nodes = (mode == Mode::Distributed).then(|| cluster.addrs().to_vec());
                let measured = cluster
                    .request(0, Command::SortRun { run, len, nodes }, RUN_LIMIT * 2)
                    .await?;
                let row = SweepRow::new("sort", mode, measured.messages as u32, 0, &measured)
                    .with_list_len(len);
                reporter.emit(&row)?;
                reporter.progress().inc(1);
            }
        }
        reporter.finish();
        Ok(())
    })
}
