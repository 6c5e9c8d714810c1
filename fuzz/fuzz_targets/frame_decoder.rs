//! Fuzz the frame decoder and the chunk reassembler: any byte stream, fed in arbitrary
//! pieces, must decode to frames (chunks rebuilt into whole frames, as the transport's
//! reader does) or a typed error, never panic, and never buffer past the configured
//! maximum.
#![no_main]

use bytes::BytesMut;
use granary_remote::wire::{FrameDecoder, Reassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the split size so partial reads are exercised too.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let decoder = FrameDecoder::new(64 * 1024);
    let _ = decoder.decode_exact(rest);
    let mut reassembler = Reassembler::new(64 * 1024);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => match reassembler.push(frame) {
                    Ok(Some(frame)) => {
                        let _ = (frame.sender(), frame.recipient(), frame.body.len());
                    }
                    Ok(None) => {}
                    Err(_) => return,
                },
                Ok(None) => break,
                Err(_) => return,
            }
            // What the transport counts against the node's reassembly budget: never
            // less than what is buffered, never a rebuilt frame past the maximum.
            assert!(decoder.pending(&buf) >= buf.len());
            assert!(reassembler.buffered() <= 64 * 1024);
        }
    }
});
