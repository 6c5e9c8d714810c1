//! A partial partition on the test bed (the process-level version of granary-cluster's
//! `partial_partition.rs`, which stays as the fast in-process test): three node
//! processes, nft rules cut h1 from h3 both ways for 8 s while h2 reaches both. The
//! cluster downs one of h1 and h3 (the fewest nodes that leave the rest fully
//! connected), so exactly one of them loses its host lease while h2 keeps its own;
//! after the heal (10 s of load) the downed one holds a lease again, and the checker
//! finds no double activation, no acknowledged write lost, nothing applied twice.
//!
//! `#[ignore]`d: it fails today. In two runs (8 s and 15 s cuts) neither h1 nor h3
//! lost its lease: nobody was downed, while the in-process test on the memory network
//! downs one within seconds. The load was served throughout and the checker's report
//! was clean, so this is about resolving the cut, not safety. Left for the cluster's
//! owner (`--ignored` runs it and prints every node's lease transitions).

mod proofs;

use std::time::Duration;

use granary_testbed::available_or_skip;
use granary_testbed::run::run_schedule;
use granary_testbed::schedule::Fault;
use granary_testbed::HostId;

use proofs::*;

/// How long the cut holds: well beyond failure detection + `stable_after`.
const HOLD: Duration = Duration::from_secs(15);

#[test]
#[ignore = "fails: on real processes an A-C cut downs neither A nor C within 15 s; run with --ignored"]
fn an_a_c_cut_downs_exactly_one_of_a_and_c_and_nothing_is_lost_or_doubled() {
    let test = "partial_partition_on_bed";
    if !available_or_skip(test) {
        return;
    }
    let config = config(3);
    let schedule = [Fault::PartialCut {
        a: HostId(0),
        c: HostId(2),
        hold: HOLD,
    }];
    let outcome = run_schedule(&config, &schedule).unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_clean(test, &outcome);

    let cut = fault_at(&outcome, "cut h1-h3");
    let healed = fault_at(&outcome, "heal");
    let lapsed = |node: &str| {
        leases(&outcome, node)
            .iter()
            .any(|(_, held, at)| !held && *at > cut && *at <= healed)
    };
    for node in ["h1", "h2", "h3"] {
        eprintln!("{test}: {node} leases {:?}", leases(&outcome, node));
    }
    eprintln!("{test}: cut at {} heal at {}", cut.mono_us, healed.mono_us);
    let downed: Vec<&str> = ["h1", "h3"].into_iter().filter(|n| lapsed(n)).collect();
    assert_eq!(
        downed.len(),
        1,
        "exactly one of h1 and h3 loses its lease during the cut, not {downed:?}"
    );
    assert!(!lapsed("h2"), "h2 reaches both sides and keeps its lease");
    let regained = leases(&outcome, downed[0])
        .iter()
        .any(|(_, held, at)| *held && *at > healed);
    assert!(
        regained,
        "{} never held a lease again after the heal",
        downed[0]
    );
    let last_ack = acks(&outcome, "c1").into_iter().max().expect("acks");
    assert!(
        last_ack.mono_us >= plus(healed, SETTLE - Duration::from_secs(1)),
        "no acknowledgement in the last second of the settle period"
    );
    eprintln!("{test}: {} was downed", downed[0]);
}
