//! A 2 | 3 partition on the test bed (the process-level version of granary-virtual's
//! `partition.rs` and granary-cluster's `partition_keep_majority.rs`, which stay as the
//! fast in-process tests): five node processes, nft rules cut h1, h2 from h3, h4, h5
//! for 8 s. One client loads from its own host (with the majority), a second from h1
//! (in the minority, on keys of its own), so both sides keep calling. The minority's
//! host lease lapses within `LEASE` of the cut and it handles nothing after that until
//! the heal; the majority keeps serving; after the heal (10 s of load) the minority
//! rejoins, the minority's client is served again, and the checker finds no double
//! activation, no acknowledged write lost, nothing applied twice.

mod proofs;

use std::time::Duration;

use granary_testbed::available_or_skip;
use granary_testbed::run::run_schedule;
use granary_testbed::schedule::Fault;
use granary_testbed::HostId;

use proofs::*;

/// How long the partition holds: longer than failure detection + `stable_after` +
/// `down_margin`, so each side downs the other and the majority places the
/// minority's identities.
const HOLD: Duration = Duration::from_secs(8);

#[test]
fn the_minority_of_a_two_three_split_stops_handling_and_nothing_is_lost_or_doubled() {
    let test = "partition_on_bed";
    if !available_or_skip(test) {
        return;
    }
    let mut config = config(5);
    config.clients_on = vec![HostId(0)]; // c2, on h1: the minority side
    let minority = [HostId(0), HostId(1)];
    let schedule = [Fault::Partition {
        minority: minority.to_vec(),
        hold: HOLD,
    }];
    let outcome = run_schedule(&config, &schedule).unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_clean(test, &outcome);

    let cut = fault_at(&outcome, "partition");
    let healed = fault_at(&outcome, "heal");
    // The fence: a cut-off node's lease lapses at most LEASE after the partition.
    let fenced_by = plus(cut, LEASE + SLACK);
    let handled = handled(&outcome);
    for node in ["h1", "h2"] {
        let late: Vec<_> = handled
            .iter()
            .filter(|(n, _, _, start, _)| {
                *n == node && start.mono_us > fenced_by && *start < healed
            })
            .collect();
        assert!(
            late.is_empty(),
            "{node} (minority) handled {} operations more than {LEASE:?} after the cut, \
             first: {:?}",
            late.len(),
            late.first()
        );
        let lapsed = leases(&outcome, node)
            .iter()
            .any(|(_, held, at)| !held && *at > cut && at.mono_us <= fenced_by);
        assert!(
            lapsed,
            "{node}'s lease did not lapse within {LEASE:?} of the cut"
        );
        let regained = leases(&outcome, node)
            .iter()
            .any(|(_, held, at)| *held && *at > healed);
        assert!(regained, "{node} never held a lease again after the heal");
    }
    // Both sides kept calling: the majority served, the minority's client was not.
    let c1 = acks(&outcome, "c1");
    let c2 = acks(&outcome, "c2");
    assert!(
        c1.iter().any(|t| t.mono_us > fenced_by && *t < healed),
        "the majority served nothing during the partition"
    );
    assert!(
        !c2.iter().any(|t| t.mono_us > fenced_by && *t < healed),
        "the minority's client was acknowledged while cut off from the majority"
    );
    // After the heal, the minority's client is served again, to the end of the load.
    let last_c2 = c2.iter().max().copied().expect("c2 acks");
    assert!(
        last_c2.mono_us >= plus(healed, SETTLE - Duration::from_secs(1)),
        "the minority's client was not served in the last second of the settle period"
    );
}
