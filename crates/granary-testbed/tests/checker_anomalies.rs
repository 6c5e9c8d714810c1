//! The checker on hand-written histories: one clean history passes, and each anomaly
//! (double activation, placed under a lease, lost acknowledged write, applied twice,
//! stale read, a broken saga invariant) is detected in a history that contains
//! exactly it.

use granary_testbed::checker::{check, AnomalyKind};
use granary_testbed::history::{Event, Operation, Outcome, Stamp};

const C: &str = "tb.Counter/k1";
const R: &str = "tb.Register/k1";

fn start(node: &str, act: &str, id: &str, at: u64) -> Event {
    Event::ActivationStart {
        node: node.into(),
        incarnation: 0,
        identity: id.into(),
        activation: act.into(),
        at: Stamp::at(at),
    }
}

fn end(node: &str, act: &str, id: &str, at: u64) -> Event {
    Event::ActivationEnd {
        node: node.into(),
        incarnation: 0,
        identity: id.into(),
        activation: act.into(),
        reason: "deactivate".into(),
        at: Stamp::at(at),
    }
}

fn end_because(node: &str, act: &str, id: &str, reason: &str, at: u64) -> Event {
    Event::ActivationEnd {
        node: node.into(),
        incarnation: 0,
        identity: id.into(),
        activation: act.into(),
        reason: reason.into(),
        at: Stamp::at(at),
    }
}

fn handled(node: &str, act: &str, id: &str, op: u64, applied: bool, from: u64, to: u64) -> Event {
    Event::Handled {
        node: node.into(),
        incarnation: 0,
        identity: id.into(),
        activation: act.into(),
        op,
        applied,
        repeat: false,
        start: Stamp::at(from),
        end: Stamp::at(to),
    }
}

/// A handling that found `op` already applied in the state its activation loaded.
fn repeated(node: &str, act: &str, id: &str, op: u64, from: u64, to: u64) -> Event {
    let mut event = handled(node, act, id, op, false, from, to);
    if let Event::Handled { repeat, .. } = &mut event {
        *repeat = true;
    }
    event
}

fn lease(node: &str, held: bool, at: u64, lapsed_at: Option<u64>) -> Event {
    Event::Lease {
        node: node.into(),
        incarnation: 0,
        held,
        at: Stamp::at(at),
        lapsed_at: lapsed_at.map(Stamp::at),
    }
}

fn invoke(op: u64, id: &str, operation: Operation, at: u64) -> Event {
    Event::Invoke {
        client: "c1".into(),
        op,
        identity: id.into(),
        operation,
        at: Stamp::at(at),
    }
}

fn ok(op: u64, value: Option<u64>, version: Option<u64>, at: u64) -> Event {
    Event::Complete {
        client: "c1".into(),
        op,
        outcome: Outcome::Ok { value, version },
        at: Stamp::at(at),
    }
}

fn fin(id: &str, value: u64, applied: &[u64], version: Option<u64>, at: u64) -> Event {
    Event::Final {
        identity: id.into(),
        value,
        applied: applied.to_vec(),
        version,
        at: Stamp::at(at),
    }
}

/// Two increments on one activation, a kill (fault), a failover to another
/// activation, one more increment, the final state: everything in order.
fn clean_counter_history() -> Vec<Event> {
    vec![
        invoke(1, C, Operation::Increment, 100),
        start("h1", "h1:0:0", C, 110),
        handled("h1", "h1:0:0", C, 1, true, 120, 150),
        ok(1, Some(1), None, 160),
        invoke(2, C, Operation::Increment, 200),
        handled("h1", "h1:0:0", C, 2, true, 210, 240),
        ok(2, Some(2), None, 250),
        Event::Fault {
            what: "kill h1".into(),
            at: Stamp::at(300),
        },
        invoke(3, C, Operation::Increment, 400),
        start("h2", "h2:0:0", C, 2_000),
        handled("h2", "h2:0:0", C, 3, true, 2_010, 2_050),
        ok(3, Some(3), None, 2_060),
        handled("h2", "h2:0:0", C, 4, false, 3_000, 3_010),
        fin(C, 3, &[1, 2, 3], None, 3_020),
    ]
}

#[test]
fn a_clean_history_passes() {
    let report = check(&clean_counter_history());
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.acked, 3);
    assert_eq!(report.invoked, 3);
    assert_eq!(report.faults, 1);
    // After the kill at 300 µs the next ack is at 2 060 µs: a 1.76 ms gap.
    assert_eq!(report.recovery.samples, 1);
    assert!((report.recovery.max_ms - 1.76).abs() < 1e-9, "{report}");
}

#[test]
fn two_activations_handling_at_once_are_a_double_activation() {
    let mut h = clean_counter_history();
    // h1's activation was never told: it handles op 5 while h2's activation handles.
    h.push(invoke(5, C, Operation::Increment, 2_020));
    h.push(handled("h1", "h1:0:0", C, 5, true, 2_030, 2_040));
    h.push(ok(5, Some(3), None, 2_045));
    // (op 5's effect is in neither final: add it so only the double activation shows.)
    let Some(Event::Final { applied, .. }) =
        h.iter_mut().find(|e| matches!(e, Event::Final { .. }))
    else {
        unreachable!()
    };
    applied.push(5);
    let report = check(&h);
    assert_eq!(report.double_activations(), 1, "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    let a = &report.anomalies[0];
    assert_eq!(a.identity, C);
    assert!(
        a.detail.contains("h1:0:0") && a.detail.contains("h2:0:0"),
        "{}",
        a.detail
    );
    assert!(!a.excerpt.is_empty());
    assert!(report
        .to_string()
        .contains("DoubleActivation on tb.Counter/k1"));
}

#[test]
fn a_fenced_activation_that_lives_on_without_handling_is_no_double_activation() {
    let mut h = clean_counter_history();
    // h1's activation only ends (fenced, then deactivated) long after h2's started.
    h.push(end("h1", "h1:0:0", C, 5_000));
    let report = check(&h);
    assert!(report.is_clean(), "{report}");
}

/// h1 was paused in the middle of handling op 5 (admitted at 290 µs, before the
/// kill-like fault), h2 took over; h1 woke and its handler returned at 2 040 µs.
fn paused_mid_handler(applied: bool, reason: &str, ended_after_us: u64) -> Vec<Event> {
    let mut h = clean_counter_history();
    h.push(invoke(5, C, Operation::Increment, 280));
    h.push(handled("h1", "h1:0:0", C, 5, applied, 290, 2_040));
    h.push(end_because(
        "h1",
        "h1:0:0",
        C,
        reason,
        2_040 + ended_after_us,
    ));
    if applied {
        final_of(&mut h).1.push(5);
    }
    h
}

/// The history's final state: (value, applied ops).
fn final_of(h: &mut [Event]) -> (&mut u64, &mut Vec<u64>) {
    match h.iter_mut().find(|e| matches!(e, Event::Final { .. })) {
        Some(Event::Final { value, applied, .. }) => (value, applied),
        _ => unreachable!("every history here has a final state"),
    }
}

#[test]
fn a_handler_in_flight_whose_write_the_store_refused_is_fenced() {
    let report = check(&paused_mid_handler(false, "StateConflict", 90));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_handler_in_flight_when_its_lease_lapsed_that_applied_nothing_is_fenced() {
    let report = check(&paused_mid_handler(false, "HostLeaseLost", 90));
    assert!(report.is_clean(), "{report}");
}

/// Chaos seed 2933: a handler waited on calls across a partition past its node's lease
/// and returned having applied nothing; the activation ended with `HostLeaseLost` only
/// when the node downed itself, 250 ms later.
fn returned_past_its_lease(lapsed_at: u64) -> Vec<Event> {
    ended_with_lease_lost(250_000, lapsed_at)
}

/// `paused_mid_handler` (applied nothing), its activation ended with `HostLeaseLost`
/// `ended_after_us` after the handler returned; h1's lease held from 10 µs and lapsed
/// at `lapsed_at`.
fn ended_with_lease_lost(ended_after_us: u64, lapsed_at: u64) -> Vec<Event> {
    let mut h = paused_mid_handler(false, "HostLeaseLost", ended_after_us);
    h.push(lease("h1", true, 10, None));
    h.push(lease("h1", false, lapsed_at + 8, Some(lapsed_at)));
    h
}

#[test]
fn a_handler_that_returned_after_its_lease_lapsed_is_fenced_however_late_it_ended() {
    let report = check(&returned_past_its_lease(1_000));
    assert_eq!(report.double_activations(), 0, "{report}");
}

#[test]
fn a_handler_that_returned_before_its_lease_lapsed_is_not() {
    let report = check(&returned_past_its_lease(2_100));
    assert_eq!(report.double_activations(), 1, "{report}");
}

#[test]
fn a_handler_in_flight_that_applied_is_a_double_activation() {
    for reason in ["StateConflict", "HostLeaseLost"] {
        let report = check(&paused_mid_handler(true, reason, 90));
        assert_eq!(report.double_activations(), 1, "{reason}: {report}");
    }
}

/// Chaos seed 2938: h1 applied op 5 and made its write, then was paused before its
/// handler returned (at 2 040 µs); h2's activation found op 5 already applied when the
/// client retried it (2 010 µs). With `seen_applied` false, h2 applied the retry
/// itself: the two handlings overlap with nothing to order them.
fn applied_then_paused_before_returning(seen_applied: bool) -> Vec<Event> {
    let mut h = clean_counter_history();
    h.push(invoke(5, C, Operation::Increment, 280));
    h.push(handled("h1", "h1:0:0", C, 5, true, 290, 2_040));
    h.push(end("h1", "h1:0:0", C, 2_100));
    let retry = if seen_applied {
        repeated("h2", "h2:0:0", C, 5, 2_005, 2_008)
    } else {
        handled("h2", "h2:0:0", C, 5, true, 2_005, 2_008)
    };
    h.push(retry);
    h.push(ok(5, Some(4), None, 2_009));
    let (value, applied) = final_of(&mut h);
    applied.push(5);
    *value = 4;
    h
}

#[test]
fn a_handler_whose_write_a_successor_found_applied_is_not_a_second_writer() {
    let report = check(&applied_then_paused_before_returning(true));
    assert_eq!(report.double_activations(), 0, "{report}");
}

#[test]
fn a_handler_that_began_after_the_successor_is_not_cut_short_by_its_repeat() {
    // h1's handler of op 5 began (2 006 µs) after h2 began handling (2 005 µs): it
    // cannot have made the write h2 loaded, so it overlaps h2 as any handler would.
    let mut h = applied_then_paused_before_returning(true);
    for e in &mut h {
        if let Event::Handled {
            activation,
            op: 5,
            start,
            ..
        } = e
        {
            if activation == "h1:0:0" {
                *start = Stamp::at(2_006);
            }
        }
    }
    let report = check(&h);
    assert_eq!(report.double_activations(), 1, "{report}");
}

#[test]
fn a_handler_whose_op_a_successor_applied_again_is_a_double_activation() {
    let report = check(&applied_then_paused_before_returning(false));
    assert_eq!(report.double_activations(), 1, "{report}");
}

#[test]
fn a_refused_handler_is_fenced_only_if_its_activation_ended_for_it() {
    // Ended for another reason, or long after the handler returned: not the store's
    // refusal of this handler's write, so the overlap counts.
    let report = check(&paused_mid_handler(false, "Idle", 90));
    assert_eq!(report.double_activations(), 1, "{report}");
    let report = check(&paused_mid_handler(false, "StateConflict", 500_000));
    assert_eq!(report.double_activations(), 1, "{report}");
}

/// h1 admitted op 5 at 290 µs, then was cut off; h2's activation began handling
/// at 2 010 µs. h1's handler waited across the cut and returned having applied
/// nothing (fenced), its activation ending with `HostLeaseLost`.
fn cut_off_mid_handler(lapsed_at: u64) -> Vec<Event> {
    ended_with_lease_lost(90, lapsed_at)
}

#[test]
fn an_activation_begun_while_the_old_host_held_its_lease_is_placed_under_a_lease() {
    // h1's lease ran out at 2 500 µs, after h2's activation began at 2 010 µs: h1
    // could have admitted op 6 in that half-millisecond.
    let report = check(&cut_off_mid_handler(2_500));
    assert_eq!(report.placed_under_lease(), 1, "{report}");
    assert_eq!(report.double_activations(), 0, "{report}");
    assert!(report.anomalies[0].detail.contains("h2:0:0"), "{report}");
    // Run out at 2 000 µs, before h2 began: the fence held.
    let report = check(&cut_off_mid_handler(2_000));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_lease_regained_after_the_last_admission_or_never_seen_lapsing_is_not_counted() {
    // The lease lapsed at 1 000 µs and was held again (a rejoin) from 1 500 µs:
    // not held without a break since h1's admission at 290 µs.
    let mut h = cut_off_mid_handler(2_500);
    h.push(lease("h1", false, 1_008, Some(1_000)));
    h.push(lease("h1", true, 1_500, None));
    assert!(check(&h).is_clean(), "{}", check(&h));
    // No lapse recorded after h2 began (the process was killed holding it).
    let mut h = paused_mid_handler(false, "HostLeaseLost", 90);
    h.push(lease("h1", true, 10, None));
    assert!(check(&h).is_clean(), "{}", check(&h));
}

#[test]
fn an_acknowledged_increment_missing_from_the_final_is_a_lost_write() {
    let mut h = clean_counter_history();
    h.retain(|e| !matches!(e, Event::Final { .. }));
    h.push(fin(C, 2, &[1, 3], None, 3_020));
    let report = check(&h);
    assert_eq!(report.lost_writes(), 1, "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(report.anomalies[0].detail.contains("op 2"));
}

#[test]
fn no_final_state_at_all_loses_every_acknowledged_write() {
    let mut h = clean_counter_history();
    h.retain(|e| !matches!(e, Event::Final { .. }));
    let report = check(&h);
    assert_eq!(report.lost_writes(), 3, "{report}");
}

#[test]
fn an_op_twice_in_the_final_is_applied_twice() {
    let mut h = clean_counter_history();
    h.retain(|e| !matches!(e, Event::Final { .. }));
    h.push(fin(C, 4, &[1, 2, 2, 3], None, 3_020));
    let report = check(&h);
    assert_eq!(report.applied_twice(), 1, "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
}

#[test]
fn an_op_applied_by_two_handlings_is_applied_twice() {
    let mut h = clean_counter_history();
    // The retried op 2 is applied again by h2's activation, after h1's.
    h.push(handled("h2", "h2:0:0", C, 2, true, 2_100, 2_120));
    let report = check(&h);
    assert_eq!(report.applied_twice(), 1, "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(report.anomalies[0].detail.contains("h1:0:0"));
}

fn register_history(read_version: u64) -> Vec<Event> {
    vec![
        invoke(1, R, Operation::Write { value: 11 }, 100),
        start("h1", "h1:0:0", R, 105),
        handled("h1", "h1:0:0", R, 1, true, 110, 120),
        ok(1, None, Some(1), 130),
        invoke(2, R, Operation::Write { value: 22 }, 200),
        handled("h1", "h1:0:0", R, 2, true, 210, 220),
        ok(2, None, Some(2), 230),
        // Invoked after write 2 was acknowledged: must see version 2 or later.
        invoke(3, R, Operation::Read, 300),
        handled("h1", "h1:0:0", R, 3, false, 310, 315),
        ok(
            3,
            Some(if read_version == 2 { 22 } else { 11 }),
            Some(read_version),
            320,
        ),
        fin(R, 22, &[1, 2], Some(2), 400),
    ]
}

#[test]
fn a_register_history_with_fresh_reads_passes() {
    let report = check(&register_history(2));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_read_older_than_an_acknowledged_write_is_stale() {
    let report = check(&register_history(1));
    assert_eq!(report.stale_reads(), 1, "{report}");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(report.anomalies[0].detail.contains("write 2"));
}

#[test]
fn a_read_invoked_before_the_write_was_acknowledged_may_be_old() {
    let mut h = register_history(1);
    // The read now starts before write 2's acknowledgement: concurrent, not stale.
    for e in &mut h {
        if let Event::Invoke { op: 3, at, .. } = e {
            *at = Stamp::at(225);
        }
    }
    let report = check(&h);
    assert!(report.is_clean(), "{report}");
}

const A: &str = "tb.Account/a0";
const B: &str = "tb.Account/a1";
const T: &str = "tb.Teller/t0";

fn transfer(op: u64, amount: u64, at: u64) -> Event {
    invoke(
        op,
        T,
        Operation::Transfer {
            from: A.into(),
            to: B.into(),
            amount,
        },
        at,
    )
}

fn saga_history(a_applied: &[u64], a_balance: u64) -> Vec<Event> {
    vec![
        Event::Accounts {
            client: "c1".into(),
            accounts: vec![A.into(), B.into()],
            initial_balance: 100,
            at: Stamp::at(1),
        },
        transfer(1, 30, 100),
        ok(1, None, None, 200),
        transfer(2, 500, 300),
        Event::Complete {
            client: "c1".into(),
            op: 2,
            outcome: Outcome::Failed {
                reason: "refused".into(),
            },
            at: Stamp::at(400),
        },
        fin(A, a_balance, a_applied, None, 500),
        fin(B, 130, &[1], None, 510),
        fin(T, 0, &[1, 2], None, 520),
    ]
}

#[test]
fn a_saga_whose_transfers_balance_passes() {
    let report = check(&saga_history(&[1], 70));
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_transfer_applied_on_one_side_breaks_the_saga_invariant() {
    // The debit of transfer 1 is missing from a0: lost, one-sided, and the sum is off.
    let report = check(&saga_history(&[], 100));
    assert_eq!(report.lost_writes(), 1, "{report}");
    assert!(report.invariant_violations() >= 2, "{report}");
    assert!(report.to_string().contains("sum to 230"), "{report}");
}

#[test]
fn a_balance_that_disagrees_with_its_applied_ops_breaks_the_saga_invariant() {
    let report = check(&saga_history(&[1], 60));
    assert_eq!(report.invariant_violations(), 2, "{report}");
    assert_eq!(report.anomalies.len(), 2, "{report}");
}

#[test]
fn a_report_round_trips_through_json() {
    let report = check(&register_history(1));
    let json = serde_json::to_string(&report).unwrap();
    let back: granary_testbed::checker::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.count(AnomalyKind::StaleRead), 1);
}

#[test]
fn a_gap_across_a_fault_heal_counts_whole_and_is_named_per_fault() {
    // The clean history with the kill replaced by a pause that resumes in the
    // middle of the gap: the gap from the pause to the next ack is one sample.
    let mut events = clean_counter_history();
    for e in &mut events {
        if let Event::Fault { what, .. } = e {
            *what = "pause h1".into();
        }
    }
    events.push(Event::Fault {
        what: "resume h1".into(),
        at: Stamp::at(1_000),
    });
    let report = check(&events);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.recovery.samples, 1, "{report}");
    assert!((report.recovery.max_ms - 1.76).abs() < 1e-9, "{report}");
    let per_fault = &report.recovery.faults;
    assert_eq!(per_fault.len(), 1, "{report}");
    assert_eq!(per_fault[0].kind, "pause");
    assert_eq!(per_fault[0].slowest, C);
    assert!((per_fault[0].max_ms - 1.76).abs() < 1e-9, "{report}");
}

/// The clean history with a pause of h2 added at `at` µs: each fault's kind and the
/// largest of its identities' longest gaps (ms), in the order applied.
fn recovery_with_a_pause_at(at: u64) -> Vec<(String, f64)> {
    let mut events = clean_counter_history();
    events.push(Event::Fault {
        what: "pause h2".into(),
        at: Stamp::at(at),
    });
    let report = check(&events);
    assert!(report.is_clean(), "{report}");
    let per_fault = report.recovery.faults.iter();
    per_fault.map(|f| (f.kind.clone(), f.max_ms)).collect()
}

/// Whether `got` names the kinds of `want` in order, with the same gaps.
fn same_recovery(got: &[(String, f64)], want: &[(&str, f64)]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((kind, ms), (k, m))| kind == k && (ms - m).abs() < 1e-9)
}

#[test]
fn an_outage_across_two_faults_counts_whole_for_the_first() {
    // A second fault before the identity answers again: its wait from the kill at
    // 300 µs to the ack at 2 060 µs is not cut at the pause (1 000 µs).
    let got = recovery_with_a_pause_at(1_000);
    assert!(
        same_recovery(&got, &[("kill", 1.76), ("pause", 1.06)]),
        "{got:?}"
    );
}

#[test]
fn a_wait_that_began_after_an_answer_is_the_next_faults() {
    // A fault before the identity's ack at 250 µs and the kill at 300 µs: the pause's
    // window holds an answer, so its open wait is cut at the kill (50 µs after the
    // ack), and the kill's window measures its own.
    let got = recovery_with_a_pause_at(200);
    assert!(
        same_recovery(&got, &[("pause", 0.05), ("kill", 1.76)]),
        "{got:?}"
    );
}
