//! Fuzz the cluster's gossip messages as a node decodes them off the wire: the registered
//! `ClusterFrame` and `RelayFrame` bodies, and a bare `Envelope`. Any bytes decode or give
//! a typed error, never a panic.
#![no_main]

use granary_remote::{type_tag, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let registry = Registry::global().expect("registry");
    for name in ["granary.cluster.ClusterFrame", "granary.cluster.RelayFrame"] {
        let _ = registry.decode(type_tag(name), data);
    }
    let _ = postcard::from_bytes::<granary_cluster::Envelope>(data);
});
