//! The host lease on the test bed (the process-level version of granary-virtual's
//! `host_lease.rs`, which stays as the fast in-process test): three node processes,
//! the node on h2 stopped with `SIGSTOP` for 5 s — longer than its 2 s lease — then
//! `SIGCONT`, and 10 s of load after. A paused process wakes with its old beliefs
//! (its activations, its view of the cluster); the lease is a clock it reads before
//! each message, so on waking it handles nothing until a majority renewed its lease.
//!
//! The fence semantics relied on (docs/semantics.md, "Host lease" and "What the
//! checker calls a double activation"): an activation handles a message only while its
//! node holds a host lease; a lease runs until `lease` after the start of the renewal
//! round a majority confirmed; the checker compares *handling* intervals, not
//! lifetimes, so the paused node's activations may live on (fenced) while a successor
//! handles. Lease transitions are recorded by polling every `LEASE_POLL` (10 ms), so a
//! handled operation may precede the recorded re-acquisition by at most that much.
//!
//! Two tests. The first proves the lease's promise about what a woken node *starts*
//! to handle, and that nothing acknowledged is lost or applied twice. The second asks
//! the checker's full question (no identity handled by two activations at once) under
//! a heavier load, with handlers slow enough that the stop catches some in flight: a
//! handler admitted just before the `SIGSTOP` finishes after waking, when the
//! majority's activation of its identity may already be handling. The lease fences
//! admission; the store's version check fences such a handler's write (`applied:
//! false`, the activation ends with `StateConflict`), and the checker leaves a handler
//! fenced that way out of the handling interval (docs/semantics.md, "A handler in
//! flight when its process stops is fenced by the store"). Any handler that *applied*
//! after a successor began is still a double activation.

mod proofs;

use std::time::Duration;

use granary_testbed::available_or_skip;
use granary_testbed::history::LEASE_POLL;
use granary_testbed::run::run_schedule;
use granary_testbed::schedule::Fault;
use granary_testbed::HostId;

use proofs::*;

/// How long h2 is stopped (the pause; > `LEASE`).
const PAUSE: Duration = Duration::from_secs(5);

#[test]
fn a_paused_node_handles_nothing_after_waking_until_its_lease_is_renewed() {
    let test = "host_lease_on_bed";
    if !available_or_skip(test) {
        return;
    }
    let config = config(3);
    let schedule = [Fault::Pause {
        host: HostId(1),
        hold: PAUSE,
    }];
    let outcome = run_schedule(&config, &schedule).unwrap_or_else(|e| panic!("{test}: {e}"));
    eprintln!(
        "{test}: {:.1} s, client {:?}\n{}",
        outcome.elapsed.as_secs_f64(),
        outcome.client,
        outcome.report
    );
    let report = &outcome.report;
    assert_eq!(
        (
            report.lost_writes(),
            report.applied_twice(),
            report.stale_reads(),
            report.invariant_violations()
        ),
        (0, 0, 0, 0),
        "{test}: lost, doubled or stale writes (run directory kept: {:?}):\n{report}",
        outcome.kept_run_dir
    );
    // Double activations are the second test's question; here every one reported must
    // be a handler of h2 caught by the stop (begun before it, ended after waking).
    let paused = fault_at(&outcome, "pause h2");
    let resumed = fault_at(&outcome, "resume h2");
    for anomaly in &report.anomalies {
        let spanning = handled(&outcome).iter().any(|(n, _, id, start, end)| {
            *n == "h2" && *id == anomaly.identity && *start < paused && *end > resumed
        });
        assert!(
            spanning,
            "{test}: an anomaly other than a handler caught by the stop:\n{report}"
        );
    }

    let handled = handled(&outcome);
    assert!(
        handled
            .iter()
            .any(|(n, _, _, start, _)| *n == "h2" && *start < paused),
        "h2 handled nothing before the pause: the test proves nothing"
    );
    // On waking, the lease is seen lapsed (it ran out while the process was stopped).
    let leases = leases(&outcome, "h2");
    let after: Vec<_> = leases.iter().filter(|(_, _, at)| *at >= resumed).collect();
    assert!(
        matches!(after.first(), Some((_, false, _))),
        "h2's first lease observation after waking is not `lapsed`: {after:?}"
    );
    let regained = after
        .iter()
        .find(|(_, held, _)| *held)
        .map(|(_, _, at)| *at);
    let fence_end = regained.map_or(u64::MAX, |at| at.mono_us - LEASE_POLL.as_micros() as u64);
    let early: Vec<_> = handled
        .iter()
        .filter(|(n, _, _, start, _)| *n == "h2" && *start >= resumed && start.mono_us < fence_end)
        .collect();
    assert!(
        early.is_empty(),
        "h2 handled {} operations after waking before its lease was renewed (at {regained:?}), \
         first: {:?}",
        early.len(),
        early.first()
    );
    // Handlers caught by the stop (begun before, ended after): allowed by the fence
    // (admitted while the lease held); the checker has already compared them with any
    // successor's handling.
    let spanning = handled
        .iter()
        .filter(|(n, _, _, start, end)| *n == "h2" && *start < paused && *end > resumed)
        .count();
    let moved: Vec<&str> = {
        let mut ids: Vec<&str> = handled
            .iter()
            .filter(|(n, _, _, start, _)| *n != "h2" && *start > paused && *start < resumed)
            .map(|(_, _, id, _, _)| *id)
            .filter(|id| {
                handled
                    .iter()
                    .any(|(n, _, i, s, _)| *n == "h2" && i == id && *s < paused)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    eprintln!(
        "{test}: lease renewed {:?} ms after waking; {spanning} handlers spanned the stop; \
         {} of h2's identities were handled elsewhere during the pause: {moved:?}",
        regained.map(|at| (at.mono_us - resumed.mono_us) / 1000),
        moved.len()
    );
    let last_ack = acks(&outcome, "c1").into_iter().max().expect("acks");
    assert!(
        last_ack.mono_us >= plus(resumed, SETTLE - Duration::from_secs(1)),
        "no acknowledgement in the last second of the settle period"
    );
}

/// The checker's full question across a pause, with handlers slow enough (200 ms
/// before their state write, 16 client tasks) that the stop catches some of h2's in
/// flight (see the module docs).
#[test]
fn no_identity_is_handled_by_two_activations_across_a_pause() {
    let test = "host_lease_on_bed (overlap)";
    if !available_or_skip(test) {
        return;
    }
    let mut config = config(3);
    // Slow handlers: the stop catches some of h2's in flight.
    config.handler_delay = Duration::from_millis(200);
    config.concurrency = 16;
    let schedule = [Fault::Pause {
        host: HostId(1),
        hold: PAUSE,
    }];
    let outcome = run_schedule(&config, &schedule).unwrap_or_else(|e| panic!("{test}: {e}"));
    let (paused, resumed) = (
        fault_at(&outcome, "pause h2"),
        fault_at(&outcome, "resume h2"),
    );
    let handled = handled(&outcome);
    let spanning: Vec<_> = handled
        .iter()
        .filter(|(n, _, _, start, end)| *n == "h2" && *start < paused && *end > resumed)
        .collect();
    eprintln!("{test}: handlers of h2 caught by the stop: {spanning:?}");
    assert_clean(test, &outcome);
}
