//! Fuzz the connection handshake: any bytes from an unauthenticated peer, on either side
//! of the handshake, end in a typed `HandshakeError` (or a finished handshake), never a
//! panic. The first byte picks the side.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&side, rest)) = data.split_first() else {
        return;
    };
    if side & 1 == 0 {
        let _ = granary_remote::__fuzz::handshake_accept(rest);
    } else {
        let _ = granary_remote::__fuzz::handshake_dial(rest);
    }
});
