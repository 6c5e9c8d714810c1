//! The result rows of `pingpong`, `big` and `sort` (the output contract's standard
//! fields plus the virtual placement, and the list length and repeats of `sort`),
//! the sweep flags, and the runtime the harness runs on.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::harness::SuiteError;
use super::protocol::Measured;
use super::{Mode, PlacementArg};
use crate::report::{contract_columns, ReportError, Reporter};

/// The sweep flags `pingpong` and `big` share.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Placement modes to run, comma-separated (default both).
    #[arg(long, value_enum, value_delimiter = ',')]
    mode: Option<Vec<Mode>>,
    /// Virtual mode: placements of the actors, comma-separated, one virtual run each
    /// (default random, as in the paper's Orleans runs).
    #[command(flatten)]
    pub(crate) placement: PlacementArgs,
    /// Actors, comma-separated (paper: 3,6,12,24,48,64; `--quick`: 3).
    #[arg(long, value_delimiter = ',')]
    actors: Option<Vec<u32>>,
    /// Payload bytes, comma-separated (paper: 0,512,1024,2048; `--quick`: 0).
    #[arg(long, value_delimiter = ',')]
    payload: Option<Vec<usize>>,
    /// Small sizes, for smoke tests.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    pub(crate) csv: Option<PathBuf>,
    /// Draw PNG charts of the rows into this directory.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
}

/// The `--placement` flag of `pingpong`, `sort` and `big`.
#[derive(Debug, Args)]
pub(crate) struct PlacementArgs {
    /// Virtual mode: placements of the scenario's actors, comma-separated; the
    /// virtual runs are repeated for each (default random, the paper's Orleans
    /// setting; `hash` activates on the directory owner, saving a hop).
    #[arg(long, value_enum, value_delimiter = ',')]
    placement: Option<Vec<PlacementArg>>,
}

impl PlacementArgs {
    /// The clusters a sweep of `modes` starts, in order: one distributed, one
    /// virtual per placement.
    pub(crate) fn clusters(&self, modes: &[Mode]) -> Vec<(Mode, PlacementArg)> {
        let placements = self
            .placement
            .clone()
            .unwrap_or_else(|| vec![PlacementArg::default()]);
        modes
            .iter()
            .flat_map(|&mode| match mode {
                Mode::Distributed => vec![(mode, PlacementArg::default())],
                Mode::Virtual => placements.iter().map(|&p| (mode, p)).collect(),
            })
            .collect()
    }
}

/// What a sweep covers: the flags given, else the paper's sweep, or one small point
/// with `--quick`.
pub(crate) struct Sweep {
    /// Placement modes.
    pub(crate) modes: Vec<Mode>,
    /// Actor counts.
    pub(crate) actors: Vec<u32>,
    /// Payload sizes in bytes.
    pub(crate) payloads: Vec<usize>,
}

impl SweepArgs {
    /// The modes, actor counts and payloads this run covers.
    pub(crate) fn sweep(&self) -> Sweep {
        let (actors, payloads) = if self.quick {
            (vec![3], vec![0])
        } else {
            (vec![3, 6, 12, 24, 48, 64], vec![0, 512, 1024, 2048])
        };
        Sweep {
            modes: self
                .mode
                .clone()
                .unwrap_or_else(|| vec![Mode::Distributed, Mode::Virtual]),
            actors: self.actors.clone().unwrap_or(actors),
            payloads: self.payload.clone().unwrap_or(payloads),
        }
    }
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &["placement", "list_len", "repeats"];

/// One measured configuration of `pingpong`, `big` or `sort`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SweepRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: u64,
    actors: u64,
    payload_bytes: u64,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    max_us: Option<f64>,
    placement: Option<&'static str>,
    list_len: Option<u64>,
    repeats: Option<u32>,
}

impl SweepRow {
    /// The row of a run of `scenario` with `actors` actors and `payload` bytes on
    /// three nodes; virtual rows name their `placement`.
    pub(crate) fn new(
        scenario: &'static str,
        (mode, placement): (Mode, PlacementArg),
        actors: u32,
        payload: usize,
        measured: &Measured,
    ) -> Self {
        let [p50, p99, p999, max] = measured.latency_us.map_or([None; 4], |l| l.map(Some));
        Self {
            scenario,
            mode: mode.name(),
            nodes: 3,
            actors: u64::from(actors),
            payload_bytes: payload as u64,
            messages: measured.messages,
            seconds: measured.seconds,
            msgs_per_sec: measured.messages as f64 / measured.seconds.max(f64::MIN_POSITIVE),
            p50_us: p50,
            p99_us: p99,
            p999_us: p999,
            max_us: max,
            placement: (mode == Mode::Virtual).then(|| placement.name()),
            list_len: None,
            repeats: None,
        }
    }

    /// Adds the list length (`sort`).
    pub(crate) fn with_list_len(mut self, len: usize) -> Self {
        self.list_len = Some(len as u64);
        self
    }

    /// Adds how many runs the row's figures are the mean of (`sort`).
    pub(crate) fn with_repeats(mut self, repeats: u32) -> Self {
        self.repeats = Some(repeats);
        self
    }
}

/// A reporter for sweep rows.
pub(crate) fn sweep_reporter(csv: Option<&Path>, steps: u64) -> Result<Reporter, ReportError> {
    Reporter::new(&contract_columns(OWN_COLUMNS), csv, steps)
}

/// The harness's runtime: two workers, as many as the machine's cores.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, SuiteError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SuiteError::Runtime)
}
