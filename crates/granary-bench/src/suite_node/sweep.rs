//! The harness loop `pingpong` and `big` share: for each cluster of the sweep (one
//! distributed, one virtual per placement) start three node processes, then for
//! each actor count and payload send the point's set-up commands, run it from
//! node 0, check that no message was lost and emit its row; `--plot` draws the
//! charts at the end.

use std::net::SocketAddr;
use std::path::Path;

use super::harness::{SuiteCluster, SuiteError};
use super::protocol::Command;
use super::rows::{runtime, sweep_reporter, Sweep, SweepArgs, SweepRow};
use super::{Mode, RUN_LIMIT};
use crate::plot::Row;

/// One point of a sweep: where it runs and what it measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PointSpec<'a> {
    /// The mode of the cluster.
    pub(crate) mode: Mode,
    /// Run number, unique within the sweep (part of every actor name).
    pub(crate) run: u64,
    /// Actors.
    pub(crate) actors: u32,
    /// Payload bytes.
    pub(crate) payload: usize,
    /// The node processes' addresses, by slot.
    pub(crate) nodes: &'a [SocketAddr],
}

/// What the nodes are asked for one point.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    /// Commands sent first, in order, each to the node of that slot (the
    /// distributed mode's explicit spawns).
    pub(crate) setup: Vec<(usize, Command)>,
    /// The measured command, sent to node 0.
    pub(crate) run: Command,
    /// The messages the run must report; anything else fails the sweep.
    pub(crate) expected: u64,
}

/// A scenario of the shared sweep.
pub(crate) struct Scenario<P> {
    /// Its name (rows, progress, charts).
    pub(crate) name: &'static str,
    /// What its messages are, in the "N of M …" failure (`pings answered`).
    pub(crate) counted: &'static str,
    /// The commands of one point.
    pub(crate) plan: P,
}

/// Runs `scenario` over the sweep `args` asks for.
pub(crate) fn run_sweep<P>(scenario: Scenario<P>, args: &SweepArgs) -> Result<(), SuiteError>
where
    P: Fn(PointSpec<'_>) -> Point,
{
    let Sweep {
        modes,
        actors,
        payloads,
    } = args.sweep();
    let name = scenario.name;
    let clusters = args.placement.clusters(&modes);
    let rows = runtime()?.block_on(async {
        let steps = (clusters.len() * actors.len() * payloads.len()) as u64;
        let mut reporter = sweep_reporter(args.csv.as_deref(), steps)?;
        let mut run = 0u64;
        for &(mode, placement) in &clusters {
            reporter
                .progress()
                .set_message(format!("{name} {}: starting 3 node processes", mode.name()));
            let mut cluster = SuiteCluster::start_placed(mode, 3, "memory:", placement).await?;
            for &n in &actors {
                for &payload in &payloads {
                    run += 1;
                    reporter.progress().set_message(format!(
                        "{name} {} actors={n} payload={payload}",
                        mode.name()
                    ));
                    let point = (scenario.plan)(PointSpec {
                        mode,
                        run,
                        actors: n,
                        payload,
                        nodes: cluster.addrs(),
                    });
                    for (index, command) in point.setup {
                        cluster.request(index, command, RUN_LIMIT).await?;
                    }
                    let measured = cluster.request(0, point.run, RUN_LIMIT * 2).await?;
                    if measured.messages != point.expected {
                        return Err(SuiteError::Check(format!(
                            "{name} {} actors={n}: {} of {} {}",
                            mode.name(),
                            measured.messages,
                            point.expected,
                            scenario.counted
                        )));
                    }
                    let row = SweepRow::new(name, (mode, placement), n, payload, &measured);
                    reporter.emit(&row)?;
                    reporter.progress().inc(1);
                }
            }
        }
        Ok::<_, SuiteError>(reporter.finish_rows())
    })?;
    draw(name, &rows, args.plot.as_deref())
}

/// With `--plot DIR`, draws the charts of `name`'s `rows` into `DIR`.
pub(crate) fn draw(name: &str, rows: &[Row], plot: Option<&Path>) -> Result<(), SuiteError> {
    if let Some(dir) = plot {
        for path in crate::plot::plot_rows(name, rows, dir)? {
            eprintln!("chart: {}", path.display());
        }
    }
    Ok(())
}
