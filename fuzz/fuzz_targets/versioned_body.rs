//! Fuzz the versioned body decoder (contract version, then MessagePack with named
//! fields): any bytes a peer sends as a versioned body end in the registered type or a
//! typed `CodecError` (malformed, too new, too old), never a panic. The first byte picks
//! the type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = granary_remote::__fuzz::versioned_body(data);
});
