//! Failover on the test bed (the process-level version of granary-virtual's
//! `failover_and_passivation.rs`, which stays as the fast in-process test): three node
//! processes in their own network namespaces, a client on a fourth host, `kill -9` of
//! the node on h2 while it hosts identities, its restart on the same address with the
//! next incarnation, and 10 s of load after the restart is ready. The identities h2
//! hosted are handled again on the survivors while h2 is down; the restarted node
//! rejoins (holds a host lease); and the checker finds no acknowledged write lost,
//! nothing applied twice and no identity handled by two activations at once.

mod proofs;

use std::time::Duration;

use granary_testbed::available_or_skip;
use granary_testbed::run::run_schedule;
use granary_testbed::schedule::Fault;
use granary_testbed::HostId;

use proofs::*;

/// How long h2 stays down: longer than failure detection + `stable_after` +
/// `down_margin`, so the survivors place h2's identities before it comes back.
const DOWN_FOR: Duration = Duration::from_secs(6);

#[test]
fn a_killed_hosts_identities_reactivate_on_survivors_and_nothing_is_lost_or_doubled() {
    let test = "failover_on_bed";
    if !available_or_skip(test) {
        return;
    }
    let config = config(3);
    let schedule = [Fault::KillRestart {
        host: HostId(1),
        down_for: DOWN_FOR,
        slow_start: Duration::ZERO,
    }];
    let outcome = run_schedule(&config, &schedule).unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_clean(test, &outcome);

    let killed = fault_at(&outcome, "kill h2");
    let ready = fault_at(&outcome, "ready h2");
    let handled = handled(&outcome);
    // What h2's first incarnation handled before the kill: the identities to fail over.
    let mut victims: Vec<&str> = handled
        .iter()
        .filter(|(node, inc, _, start, _)| *node == "h2" && *inc == 0 && *start < killed)
        .map(|(_, _, identity, _, _)| *identity)
        .collect();
    victims.sort_unstable();
    victims.dedup();
    assert!(
        !victims.is_empty(),
        "h2 hosted nothing before the kill: the test proves nothing"
    );
    for identity in &victims {
        assert!(
            handled.iter().any(|(node, _, id, start, _)| id == identity
                && *node != "h2"
                && *start > killed
                && *start < ready),
            "{identity} (hosted by h2 before the kill) was not handled on a survivor \
             while h2 was down"
        );
    }
    // Nothing of the killed incarnation after the kill (it is gone).
    assert!(
        !handled
            .iter()
            .any(|(node, inc, _, start, _)| *node == "h2" && *inc == 0 && *start > killed),
        "the killed process recorded handling after the kill"
    );
    // The restart rejoined: its lease was granted by the members (the lease watcher
    // starts before the node prints `ready`, so this may precede the `ready` record).
    let rejoined = leases(&outcome, "h2")
        .iter()
        .any(|(inc, held, at)| *inc == 1 && *held && *at > killed);
    assert!(rejoined, "h2's second incarnation never held a host lease");
    // The load stayed on (and was acknowledged) for 10 s after the rejoin.
    let last_ack = acks(&outcome, "c1").into_iter().max().expect("acks");
    assert!(
        last_ack.mono_us >= plus(ready, SETTLE - Duration::from_secs(1)),
        "no acknowledgement in the last second of the settle period"
    );
    eprintln!(
        "{test}: {} identities failed over from h2: {victims:?}",
        victims.len()
    );
}
