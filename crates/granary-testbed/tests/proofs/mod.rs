//! What the bed versions of the failover, partition and host-lease proofs share: a
//! short run's configuration with a fixed schedule, and readers of the merged
//! history (who handled what, when a fault was applied, lease transitions).

#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::time::Duration;

use granary_testbed::history::{Event, Outcome, Stamp};
use granary_testbed::run::{ChaosConfig, RunOutcome};

/// The host lease of the bed's nodes: `downing.stable_after` (1 s by default) plus
/// `down_margin` (by default `stable_after`), see docs/semantics.md, "Host lease".
pub const LEASE: Duration = Duration::from_secs(2);
/// Load kept on after the last fault healed or the last restart is ready.
pub const SETTLE: Duration = Duration::from_secs(10);
/// Scheduling slack between a lease check and the handler's start stamp on a loaded
/// 2-core machine (both are in the same task, microseconds apart when idle).
pub const SLACK: Duration = Duration::from_millis(250);

/// A short run of `nodes` node processes with the counters workload, 10 s of load
/// after the fault.
pub fn config(nodes: usize) -> ChaosConfig {
    let program = PathBuf::from(env!("CARGO_BIN_EXE_granary-testbed-node"));
    let mut config = ChaosConfig::short(program, 0);
    config.nodes = nodes;
    config.settle = SETTLE;
    config.warmup = Duration::from_secs(3);
    config.keys = 12;
    config
}

/// The stamp of the first fault record whose text starts with `what`.
pub fn fault_at(outcome: &RunOutcome, what: &str) -> Stamp {
    outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::Fault { what: w, at } if w.starts_with(what) => Some(*at),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no fault record `{what}` in the history"))
}

/// One handled operation: (node, incarnation, identity, start, end).
pub type Handled<'a> = (&'a str, u64, &'a str, Stamp, Stamp);

/// Every handled operation, in start order.
pub fn handled(outcome: &RunOutcome) -> Vec<Handled<'_>> {
    outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Handled {
                node,
                incarnation,
                identity,
                start,
                end,
                ..
            } => Some((node.as_str(), *incarnation, identity.as_str(), *start, *end)),
            _ => None,
        })
        .collect()
}

/// The lease transitions `node` recorded (any incarnation): (incarnation, held, at).
pub fn leases(outcome: &RunOutcome, node: &str) -> Vec<(u64, bool, Stamp)> {
    outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Lease {
                node: n,
                incarnation,
                held,
                at,
                ..
            } if n == node => Some((*incarnation, *held, *at)),
            _ => None,
        })
        .collect()
}

/// The times client `client`'s operations were acknowledged.
pub fn acks(outcome: &RunOutcome, client: &str) -> Vec<Stamp> {
    outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Complete {
                client: c,
                outcome: Outcome::Ok { .. },
                at,
                ..
            } if c == client => Some(*at),
            _ => None,
        })
        .collect()
}

/// `t + d`.
pub fn plus(t: Stamp, d: Duration) -> u64 {
    t.mono_us + d.as_micros() as u64
}

/// Prints the run's summary (always) and fails with the checker's report when it
/// is not clean.
pub fn assert_clean(test: &str, outcome: &RunOutcome) {
    eprintln!(
        "{test}: {:.1} s, faults {:?}, client {:?}, other clients {:?}\n{}",
        outcome.elapsed.as_secs_f64(),
        outcome.faults,
        outcome.client,
        outcome.other_clients,
        outcome.report
    );
    assert!(
        outcome.report.is_clean(),
        "{test}: the checker found anomalies (run directory kept: {:?}):\n{}",
        outcome.kept_run_dir,
        outcome.report
    );
}

/// The times the processes of `node` (any incarnation) saw themselves go Down (a
/// `Member` event about their own address).
pub fn own_downs(outcome: &RunOutcome, node: &str) -> Vec<Stamp> {
    outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Member {
                node: n,
                own: true,
                status,
                at,
                ..
            } if n == node && status == "down" => Some(*at),
            _ => None,
        })
        .collect()
}
