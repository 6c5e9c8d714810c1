//! Fuzz the virtual-actor control protocol: a `ControlFrame` body as a node decodes it
//! off the wire. Any bytes decode or give a typed error, never a panic.
#![no_main]

use granary_remote::{type_tag, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let registry = Registry::global().expect("registry");
    let _ = registry.decode(type_tag("granary.virtual.ControlFrame"), data);
    // Naming the type links granary-virtual, whose registration the decode above needs.
    let _ = postcard::from_bytes::<granary_virtual::ControlFrame>(data);
});
