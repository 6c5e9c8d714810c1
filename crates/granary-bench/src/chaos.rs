//! The `chaos` scenario (issue 12): runs of the multi-host test bed
//! (`granary-testbed`): node processes in network namespaces, a workload client on a
//! host of its own, faults drawn from a seed (kill -9 + restart, 2|3 partition, A–C
//! cut, one-way cut, 5 s pause), ≥ 30 s of load after the last fault, then the
//! history checker. One row per run: faults applied, acknowledged operations, lost
//! writes, duplicates, stale reads, double-handled identities, recovery p50/p99/max
//! and the longest gap per fault kind, and how many Down verdicts the nodes saw.
//! The nodes run the fast-failover detector unless `--detector default`.
//!
//! Needs root and the `ip`, `nft`, `tc` tools, and the node binary
//! (`cargo build --release -p granary-testbed`, found next to this binary or by
//! `GRANARY_TESTBED_NODE`). Interrupting it (SIGINT, SIGTERM) removes its namespaces.
//! Exits non-zero, after writing every row, when a run's checker report is not clean;
//! the run directory of such a run is kept and named in its row (`run_dir`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use granary_testbed::history::Event;
use granary_testbed::run::{find_node_program, run_chaos, ChaosConfig, Detector, RunOutcome};
use granary_testbed::schedule::FaultMix;
use granary_testbed::workload::WorkloadPlacement;
use granary_testbed::BedError;
use serde::Serialize;

use crate::report::{contract_columns, ReportError, Reporter};

/// Options of `granary-bench chaos`.
#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Node hosts (the client runs on one more).
    #[arg(long, default_value_t = 5)]
    hosts: usize,
    /// Runs; run `i` uses seed `seed + i`.
    #[arg(long, default_value_t = 20)]
    runs: u64,
    /// The first run's seed (printed with each row; replays its schedule).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Workload: counters, register or saga.
    #[arg(long, default_value = "counters")]
    workload: String,
    /// How the workload kinds place new activations: `random` (the default) or
    /// `hash` (on the identity's directory owner; a member's first call goes there
    /// without a lookup — the saga's teller calls its accounts so).
    #[arg(long, value_enum, default_value_t = WorkloadPlacement::Random)]
    placement: WorkloadPlacement,
    /// Faults: mixed, kills, network, pauses, scatter (every node cut from every other:
    /// all go Down and must form the cluster again) or none.
    #[arg(long, default_value = "mixed")]
    faults: FaultMix,
    /// Faults per run.
    #[arg(long, default_value_t = 4)]
    fault_count: usize,
    /// Seconds of load after the last fault heals or the last restart is ready.
    #[arg(long, default_value_t = 30.0, value_parser = crate::seconds::parse_seconds)]
    settle: f64,
    /// Short runs (3 hosts, 2 short faults, 5 s settle), for smoke tests and the report.
    #[arg(long)]
    quick: bool,
    /// The nodes' failure-detection profile: `fast-failover`
    /// (`ClusterConfig::fast_failover`, the default here) or `default`.
    #[arg(long, value_enum, default_value_t = Detector::FastFailover)]
    detector: Detector,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write charts (PNG) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Keep every run's directory (logs, histories, faults), clean or not; its row
    /// names it.
    #[arg(long)]
    keep_run_dirs: bool,
    /// Also keep the directory of a clean run whose longest recovery gap is above
    /// this many seconds (5: the bar's line); its row names it.
    #[arg(long, value_name = "SECONDS", value_parser = crate::seconds::parse_seconds)]
    keep_slow_runs: Option<f64>,
}

/// Why `chaos` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChaosError {
    /// The test bed could not run.
    #[error("chaos run with seed {seed}")]
    Bed {
        /// The run's seed.
        seed: u64,
        /// What went wrong.
        #[source]
        source: BedError,
    },
    /// The machine cannot host the test bed.
    #[error("the chaos test bed is not available: {0}")]
    Unavailable(String),
    /// A row could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Charts could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// Some run's history has anomalies (its row says which, its run dir is kept).
    #[error("{0} of {1} runs had anomalies (see the rows' run_dir)")]
    Anomalies(u64, u64),
}

/// This scenario's columns after the contract's.
const OWN_COLUMNS: &[&str] = &[
    "run",
    "seed",
    "workload",
    "placement",
    "fault_mix",
    "faults_applied",
    "acked",
    "failed",
    "indeterminate",
    "lost",
    "duplicates",
    "stale_reads",
    "double_handled",
    "placed_under_lease",
    "invariant_violations",
    "recover_p50_ms",
    "recover_p99_ms",
    "recover_max_ms",
    "recover_kill_ms",
    "recover_partition_ms",
    "recover_cut_ms",
    "recover_one_way_ms",
    "recover_pause_ms",
    "downs",
    "detector",
    "clean",
    "run_dir",
];

/// One run's row.
#[derive(Debug, Serialize)]
struct ChaosRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: u64,
    actors: u64,
    payload_bytes: u64,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    run: u64,
    seed: u64,
    workload: String,
    placement: &'static str,
    fault_mix: String,
    faults_applied: u64,
    acked: u64,
    failed: u64,
    indeterminate: u64,
    lost: u64,
    duplicates: u64,
    stale_reads: u64,
    double_handled: u64,
    placed_under_lease: u64,
    invariant_violations: u64,
    recover_p50_ms: f64,
    recover_p99_ms: f64,
    recover_max_ms: f64,
    /// The longest gap after each kind of fault (0: none of that kind in the run).
    recover_kill_ms: f64,
    recover_partition_ms: f64,
    recover_cut_ms: f64,
    recover_one_way_ms: f64,
    recover_pause_ms: f64,
    /// Down verdicts: the most Down events any one node process recorded.
    downs: u64,
    detector: &'static str,
    clean: bool,
    run_dir: Option<String>,
}

/// Runs `granary-bench chaos`.
pub(crate) fn run(args: ChaosArgs) -> Result<(), ChaosError> {
    clean_up_on_interrupt();
    granary_testbed::available().map_err(ChaosError::Unavailable)?;
    let program = find_node_program().map_err(|source| ChaosError::Bed {
        seed: args.seed,
        source,
    })?;
    let mut reporter = Reporter::new(
        &contract_columns(OWN_COLUMNS),
        args.csv.as_deref(),
        args.runs,
    )?;
    let mut unclean = 0;
    for run in 0..args.runs {
        let seed = args.seed + run;
        let mut config = if args.quick {
            ChaosConfig::short(program.clone(), seed)
        } else {
            let mut config = ChaosConfig::new(program.clone(), args.hosts, seed);
            config.faults = args.fault_count;
            // Finite, 0 or more and at most a year: `parse_seconds` checked it.
            config.settle = Duration::from_secs_f64(args.settle);
            config
        };
        config.workload = args.workload.clone();
        config.placement = args.placement;
        config.mix = args.faults;
        config.detector = args.detector;
        config.keep_run_dir = args.keep_run_dirs;
        config.keep_if_recovery_over = args.keep_slow_runs.map(Duration::from_secs_f64);
        reporter
            .progress()
            .set_message(format!("seed {seed} ({} hosts)", config.nodes));
        reporter
            .progress()
            .println(format!("chaos: run {run}, seed {seed}"));
        let outcome = run_chaos(&config).map_err(|source| ChaosError::Bed { seed, source })?;
        let report = &outcome.report;
        if !report.is_clean() {
            unclean += 1;
            reporter
                .progress()
                .println(format!("chaos: seed {seed} is not clean:\n{report}"));
        }
        let seconds = outcome.elapsed.as_secs_f64();
        reporter.emit(&ChaosRow {
            scenario: "chaos",
            mode: "virtual",
            nodes: config.nodes as u64,
            actors: config.keys as u64,
            payload_bytes: 0,
            messages: outcome.client.invoked,
            seconds,
            msgs_per_sec: outcome.client.acked as f64 / seconds.max(f64::EPSILON),
            run,
            seed,
            workload: config.workload.clone(),
            placement: config.placement.as_str(),
            fault_mix: format!("{:?}", config.mix).to_lowercase(),
            faults_applied: outcome.faults.len() as u64,
            acked: outcome.client.acked,
            failed: outcome.client.failed,
            indeterminate: outcome.client.indeterminate,
            lost: report.lost_writes() as u64,
            duplicates: report.applied_twice() as u64,
            stale_reads: report.stale_reads() as u64,
            double_handled: report.double_activations() as u64,
            placed_under_lease: report.placed_under_lease() as u64,
            invariant_violations: report.invariant_violations() as u64,
            recover_p50_ms: report.recovery.p50_ms,
            recover_p99_ms: report.recovery.p99_ms,
            recover_max_ms: report.recovery.max_ms,
            recover_kill_ms: worst(report, "kill"),
            recover_partition_ms: worst(report, "partition"),
            recover_cut_ms: worst(report, "cut"),
            recover_one_way_ms: worst(report, "one-way"),
            recover_pause_ms: worst(report, "pause"),
            downs: downs(&outcome),
            detector: config.detector.as_str(),
            clean: report.is_clean(),
            run_dir: outcome.kept_run_dir.map(|d| d.display().to_string()),
        })?;
        reporter.progress().inc(1);
    }
    let rows = reporter.finish_rows();
    if let Some(dir) = &args.plot {
        for path in crate::plot::plot_rows("chaos", &rows, dir)? {
            eprintln!("chart: {}", path.display());
        }
    }
    if unclean > 0 {
        return Err(ChaosError::Anomalies(unclean, args.runs));
    }
    Ok(())
}

/// The longest gap after any fault of `kind` in the run (0 when there is none).
fn worst(report: &granary_testbed::checker::Report, kind: &str) -> f64 {
    report
        .recovery
        .faults
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.max_ms)
        .fold(0.0, f64::max)
}

/// How many Down verdicts the run had: the most `down` member events one node
/// process recorded (each process records each Down it learns once; a run without
/// faults must have none).
fn downs(outcome: &RunOutcome) -> u64 {
    let mut per_process: std::collections::HashMap<(&str, u64), u64> = Default::default();
    for e in &outcome.events {
        if let Event::Member {
            node,
            incarnation,
            status,
            ..
        } = e
        {
            if status == "down" {
                *per_process.entry((node, *incarnation)).or_default() += 1;
            }
        }
    }
    per_process.values().copied().max().unwrap_or(0)
}

/// On SIGINT or SIGTERM: remove every namespace this process created (killing the
/// node processes in them), then exit 130. The test beds' own guards do not run
/// when the process is interrupted.
fn clean_up_on_interrupt() {
    let spawned = std::thread::Builder::new()
        .name("chaos-signals".into())
        .spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                eprintln!("chaos: interrupted; removing the test bed's namespaces");
                granary_testbed::sweep_this_process();
                std::process::exit(130);
            });
        });
    if let Err(err) = spawned {
        eprintln!("chaos: no signal handler ({err}); an interrupted run leaves namespaces for the next run's sweep");
    }
}
