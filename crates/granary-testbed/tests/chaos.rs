//! The short chaos test CI runs (with `CI=true`): three seeds of a short run on the
//! test bed — 3 node processes, a client host, two faults each drawn from the seed
//! (kill -9 + restart, partition, A–C cut, one-way cut, pause) — and the checker's
//! report must be clean; the last seed's run directory is kept as a slow run's would be
//! (`ChaosConfig::keep_if_recovery_over`). Well under 3 minutes in total.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use granary_testbed::available_or_skip;
use granary_testbed::run::{run_chaos, ChaosConfig};

/// The seeds CI runs (printed with each run; `--seed` of `granary-bench chaos`
/// replays one).
const SEEDS: [u64; 3] = [1, 2, 3];
/// The whole test's budget.
const BUDGET: Duration = Duration::from_secs(180);

#[test]
fn short_chaos_runs_are_clean() {
    if !available_or_skip("short_chaos_runs_are_clean") {
        return;
    }
    let program = PathBuf::from(env!("CARGO_BIN_EXE_granary-testbed-node"));
    let started = Instant::now();
    let mut failures = Vec::new();
    for seed in SEEDS {
        // The last seed keeps its directory however fast it recovered (every gap is
        // above zero), the others only if they are not clean.
        let keep_slow = SEEDS.last() == Some(&seed);
        let mut config = ChaosConfig::short(program.clone(), seed);
        if keep_slow {
            config.keep_if_recovery_over = Some(Duration::ZERO);
        }
        let outcome = run_chaos(&config).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        eprintln!(
            "seed {seed}: {:.1} s, faults {:?}, client {:?}\n{}",
            outcome.elapsed.as_secs_f64(),
            outcome.faults,
            outcome.client,
            outcome.report
        );
        assert_eq!(
            outcome.faults.len(),
            config.faults,
            "seed {seed}: every fault applied"
        );
        assert!(
            outcome.client.acked > 0,
            "seed {seed}: the workload made progress"
        );
        if outcome.report.is_clean() {
            assert_eq!(
                outcome.kept_run_dir.is_some(),
                keep_slow,
                "seed {seed}: a clean run's directory is kept only when asked for"
            );
            if let Some(dir) = &outcome.kept_run_dir {
                assert!(dir.is_dir(), "seed {seed}: {} kept", dir.display());
                std::fs::remove_dir_all(dir).expect("the kept run directory removed");
            }
        } else {
            failures.push(format!(
                "seed {seed} (run directory kept: {:?}):\n{}",
                outcome.kept_run_dir, outcome.report
            ));
        }
    }
    assert!(started.elapsed() <= BUDGET, "took {:?}", started.elapsed());
    assert!(failures.is_empty(), "anomalies:\n{}", failures.join("\n"));
}
