//! Replays the `crdt_delta` fuzz target's corpus (`fuzz/corpus/crdt_delta`) in the normal
//! test suite, through the same steps as the target (`fuzz/fuzz_targets/crdt_delta.rs`):
//! the registered `CrdtFrame` body, and `ORSet<u64>`, `GCounter` and `PNCounter` deltas
//! that decode are merged into a replica; plus seeded mutations of the corpus and of real
//! deltas built here. Nothing panics.

use std::path::PathBuf;

use granary_crdt::{Crdt, GCounter, ORSet, PNCounter, ReplicaId};
use granary_remote::{type_tag, Registry};

/// The fuzz target's body; how many of the deltas decoded (and were merged).
fn run(data: &[u8]) -> usize {
    let registry = Registry::global().expect("registry");
    let _ = registry.decode(type_tag("granary.crdt.CrdtFrame"), data);
    let mut merged = 0;
    if let Ok(delta) = postcard::from_bytes::<<ORSet<u64> as Crdt>::Delta>(data) {
        ORSet::<u64>::default().merge_delta(&delta);
        merged += 1;
    }
    if let Ok(delta) = postcard::from_bytes::<<GCounter as Crdt>::Delta>(data) {
        GCounter::default().merge_delta(&delta);
        merged += 1;
    }
    if let Ok(delta) = postcard::from_bytes::<<PNCounter as Crdt>::Delta>(data) {
        PNCounter::default().merge_delta(&delta);
        merged += 1;
    }
    merged
}

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    granary_remote::__fuzz::corpus(&root, "crdt_delta")
        .unwrap_or_else(|e| panic!("the crdt_delta corpus under {}: {e}", root.display()))
}

/// Real deltas, encoded as replication sends them.
fn seeds() -> Vec<Vec<u8>> {
    let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
    let mut set = ORSet::<u64>::default();
    let added = set.add(a, 7);
    let removed = set.remove(&7);
    let mut counter = GCounter::default();
    let counted = counter.increment(b, 5);
    let mut pn = PNCounter::default();
    let pn_delta = pn.increment(a, 3);
    vec![
        postcard::to_allocvec(&added).unwrap(),
        postcard::to_allocvec(&removed).unwrap(),
        postcard::to_allocvec(&counted).unwrap(),
        postcard::to_allocvec(&pn_delta).unwrap(),
    ]
}

#[test]
fn crdt_corpus_and_real_deltas_decode_and_merge_or_fail_typed() {
    let files = corpus();
    assert!(
        files.len() >= 100,
        "crdt_delta corpus has {} inputs",
        files.len()
    );
    for data in &files {
        run(data);
    }
    for seed in seeds() {
        assert!(run(&seed) >= 1, "a real delta must decode: {seed:?}");
    }
}

#[test]
fn seeded_mutations_of_deltas_never_panic() {
    let mut inputs = corpus();
    inputs.extend(seeds());
    granary_remote::__fuzz::mutations(&inputs, 0x6372_6474, 20_000, |data| {
        run(data);
    });
}
