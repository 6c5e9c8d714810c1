//! Fuzz CRDT replication: the registered `CrdtFrame` body as a node decodes it, and
//! deltas that decode are merged into a replica (merging must not panic either).
#![no_main]

use granary_crdt::{Crdt, GCounter, ORSet, PNCounter};
use granary_remote::{type_tag, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let registry = Registry::global().expect("registry");
    let _ = registry.decode(type_tag("granary.crdt.CrdtFrame"), data);
    if let Ok(delta) = postcard::from_bytes::<<ORSet<u64> as Crdt>::Delta>(data) {
        ORSet::<u64>::default().merge_delta(&delta);
    }
    if let Ok(delta) = postcard::from_bytes::<<GCounter as Crdt>::Delta>(data) {
        GCounter::default().merge_delta(&delta);
    }
    if let Ok(delta) = postcard::from_bytes::<<PNCounter as Crdt>::Delta>(data) {
        PNCounter::default().merge_delta(&delta);
    }
});
