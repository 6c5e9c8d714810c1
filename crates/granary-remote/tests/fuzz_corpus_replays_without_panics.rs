//! Replays the frame decoder's fuzz corpus (`fuzz/corpus/frame_decoder`) in the normal test
//! suite, plus seeded mutations of it, through the same steps as the fuzz target: the
//! decoder, then the chunk reassembler (chunk pieces count once their frame is whole).

use std::path::PathBuf;

use bytes::BytesMut;
use granary_remote::wire::{FrameDecoder, Reassembler};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, PartialEq)]
enum Outcome {
    Frames(usize),
    Incomplete(usize),
    Error,
}

/// The fuzz target's body: first byte is the read-split size.
fn run(data: &[u8]) -> Outcome {
    let Some((&split, rest)) = data.split_first() else {
        return Outcome::Incomplete(0);
    };
    let decoder = FrameDecoder::new(64 * 1024);
    let _ = decoder.decode_exact(rest);
    let mut reassembler = Reassembler::new(64 * 1024);
    let mut buf = BytesMut::new();
    let mut frames = 0;
    for piece in rest.chunks(usize::from(split).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => match reassembler.push(frame) {
                    Ok(Some(frame)) => {
                        let _ = (frame.sender(), frame.recipient(), frame.body.len());
                        frames += 1;
                    }
                    Ok(None) => {}
                    Err(_) => return Outcome::Error,
                },
                Ok(None) => break,
                Err(_) => return Outcome::Error,
            }
            assert!(decoder.pending(&buf) >= buf.len());
            assert!(reassembler.buffered() <= 64 * 1024);
        }
    }
    if buf.is_empty() && !reassembler.in_progress() {
        Outcome::Frames(frames)
    } else {
        Outcome::Incomplete(frames)
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/frame_decoder");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_corpus_decodes_to_frames_or_typed_errors() {
    let files = corpus();
    assert!(files.len() >= 20, "corpus has {} inputs", files.len());
    for (name, data) in &files {
        let outcome = run(data);
        if name.starts_with("valid-") {
            assert!(
                matches!(outcome, Outcome::Frames(n) if n > 0),
                "{name}: {outcome:?}"
            );
        } else if name.starts_with("bad-") {
            assert!(
                matches!(outcome, Outcome::Error | Outcome::Incomplete(0)),
                "{name}: {outcome:?}"
            );
        }
    }
    let outcome = |name: &str| run(&files.iter().find(|(n, _)| n == name).unwrap().1);
    assert_eq!(outcome("valid-three-frames"), Outcome::Frames(3));
    // Chunks are rebuilt: one frame out of three pieces, and a whole frame between
    // the pieces of another comes out first.
    assert_eq!(outcome("valid-chunk"), Outcome::Frames(1));
    assert_eq!(outcome("valid-chunk-interleaved"), Outcome::Frames(2));
    assert_eq!(outcome("valid-chunk-split-3"), Outcome::Frames(1));
    for bad in [
        "bad-chunk-rebuilt-short",
        "bad-chunk-inside-chunk",
        "bad-chunk-rebuilt-too-large",
        "bad-chunk-rebuilt-bad-kind",
    ] {
        assert_eq!(outcome(bad), Outcome::Error, "{bad}");
    }
}

#[test]
fn seeded_mutations_of_the_corpus_never_panic_the_decoder() {
    let files = corpus();
    let mut rng = SmallRng::seed_from_u64(0x6772_616e);
    for _ in 0..20_000 {
        let (_, base) = &files[rng.random_range(0..files.len())];
        let mut data = base.clone();
        for _ in 0..rng.random_range(1..6) {
            match rng.random_range(0..4) {
                0 if !data.is_empty() => {
                    let i = rng.random_range(0..data.len());
                    data[i] = rng.random();
                }
                1 if !data.is_empty() => data.truncate(rng.random_range(0..data.len())),
                2 => data.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>())),
                _ => {
                    let (_, other) = &files[rng.random_range(0..files.len())];
                    data.extend_from_slice(other.get(1..).unwrap_or_default());
                }
            }
        }
        let _ = run(&data);
    }
}

/// Every input of the handshake target's corpus (`fuzz/corpus/handshake`), through the
/// target's body: the first byte picks the side, the rest is what the other side sends.
#[test]
fn handshake_corpus_ends_in_typed_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/handshake");
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "empty corpus at {}", dir.display());
    // Seeds built here too, so the replay covers a whole Hello even with a thin corpus.
    for name in ["fuzz", "other", &"n".repeat(60_000)] {
        for side in [0u8, 1] {
            let mut input = vec![side];
            input.extend(granary_remote::__fuzz::hello_frame(name));
            inputs.push(input);
        }
    }
    for input in &inputs {
        let Some((&side, rest)) = input.split_first() else {
            continue;
        };
        let outcome = if side & 1 == 0 {
            granary_remote::__fuzz::handshake_accept(rest)
        } else {
            granary_remote::__fuzz::handshake_dial(rest)
        };
        // No input finishes a handshake: it would need the secret's proof.
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
